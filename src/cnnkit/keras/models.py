"""``keras.models``: ``Sequential``, ``Model``, and the models rebuilt from their description.

A model's description (``model.get_config()``, what ``model.save`` and ``model.save_run``
record) becomes a model again here: :func:`load_model` for a file ``model.save`` wrote,
:func:`model_from_config` for the description alone, and the registered model ``keras`` (left
out of ``cnnkit models``) for a run folder ``model.save_run`` wrote, which the run loader
rebuilds behind :class:`~cnnkit.keras.bridge.RunModel`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnkit.errors import ModelError, RunError
from cnnkit.keras import losses, metrics, optimizers
from cnnkit.keras.bridge import NAME, RunModel
from cnnkit.keras.layers import LAYERS, InputLayer
from cnnkit.keras.network import KerasModel, Model, Sequential
from cnnkit.keras.saving import FORMAT, apply_weights, read_model_file
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.models.registry import register_model

__all__ = ["Model", "Sequential", "load_model", "model_from_config"]


def model_from_config(
    config: dict[str, Any], custom_objects: Any = None, *, where: str = "the model config"
) -> KerasModel:
    """The model ``config`` describes (``model.get_config()``), freshly initialised, not
    compiled.

    Raises:
        RunError: naming ``where``, when the description is of another format or malformed.
    """
    if custom_objects:
        raise unsupported("model_from_config(custom_objects=...)", "use cnnkit.keras layers")
    if config.get("format") != FORMAT:
        raise RunError(f"{where}: model format {config.get('format')!r} is not {FORMAT}")
    try:
        given = config["input"]
        source = InputLayer(given["shape"], name=given["name"], data_format=given["data_format"])
        tensors = {source.name: source.tensor}
        made = []
        for entry in config["layers"]:
            layer = LAYERS[entry["class"]](**entry["config"])
            made.append(layer)
            if config["kind"] == "functional":
                inputs = [tensors[name] for name in entry["inbound"]]
                tensors[layer.name] = layer(inputs if len(inputs) > 1 else inputs[0])
        if config["kind"] == "functional":
            return Model(source.tensor, tensors[made[-1].name], name=config["name"])
        return Sequential([source.tensor, *made], name=config["name"])
    except (KeyError, TypeError) as exc:
        raise RunError(
            f"{where}: the model description is incomplete or malformed ({exc})"
        ) from exc


def load_model(
    filepath: str | os.PathLike[str],
    custom_objects: Any = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> KerasModel:
    """Rebuild a model ``model.save`` wrote, with its weights (and compiled, as saved)."""
    path = Path(filepath)
    spec, data = read_model_file(path)
    if spec is None:
        raise RunError(
            f"{path} holds weights only (save_weights); rebuild the model in code and call "
            "model.load_weights(path)"
        )
    model = model_from_config(spec, custom_objects, where=str(path))
    apply_weights(model, path, data)
    if compile and spec.get("compile"):
        settings = spec["compile"]
        loss = settings["loss"]
        model.compile(
            optimizer=optimizers.get(settings["optimizer"]),
            loss=None if loss is None else losses.CLASSES[loss["class"]](**loss["config"]),
            metrics=[metrics.CLASSES[m["class"]](**m["config"]) for m in settings["metrics"]],
        )
    return model


@register_model(
    NAME,
    description="A cnnkit.keras model (its Keras description): what model.save_run writes",
    listed=False,
)
def keras_model(
    *, input_shape: tuple[int, int, int], num_classes: int, config: dict[str, Any] | None = None
) -> RunModel:
    """The model a run card's ``config`` describes, behind :class:`RunModel`."""
    if config is None:
        raise ModelError(
            "the model 'keras' is rebuilt from runs that cnnkit.keras's model.save_run wrote; "
            "build models with keras.Sequential / keras.Model, or pick one from `cnnkit models`"
        )
    wrapped = RunModel(model_from_config(config, where="run card model.options.config"))
    classes = 2 if wrapped.binary else int(wrapped.model._outputs())
    if classes != num_classes:
        raise ModelError(f"the Keras model has {classes} outputs, the run {num_classes} classes")
    return wrapped


__getattr__ = missing(
    __name__,
    {
        "model_from_json": "use keras.models.load_model on a file model.save wrote",
        "clone_model": "build the model again in code (or save and load_model it)",
        "save_model": "use model.save(path)",
    },
)
