"""``keras.models``: ``Sequential``, ``Model``, ``load_model``."""

from __future__ import annotations

from cnnkit.keras.network import Model, Sequential
from cnnkit.keras.saving import load_model
from cnnkit.keras.unsupported import missing

__all__ = ["Model", "Sequential", "load_model"]

__getattr__ = missing(
    __name__,
    {
        "model_from_json": "use keras.models.load_model on a file model.save wrote",
        "clone_model": "build the model again in code (or save and load_model it)",
        "save_model": "use model.save(path)",
    },
)
