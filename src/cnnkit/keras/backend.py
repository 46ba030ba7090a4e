"""``keras.backend``: the image data format, and the few session functions textbooks call.

cnnkit runs every model channels-first inside (torch's layout, on its NHWC fast path where that
is faster); the data format only says how the *user's* arrays and shapes are written. It is
read when a model's input is declared (``keras.Input``, ``input_shape=``) and kept by the model.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from cnnkit.errors import ConfigError
from cnnkit.keras.unsupported import missing

FORMATS = ("channels_last", "channels_first")
_SETTINGS = {"image_data_format": "channels_last"}


def image_data_format() -> str:
    """``channels_last`` (Keras's default: ``(H, W, C)``) or ``channels_first``."""
    return _SETTINGS["image_data_format"]


def set_image_data_format(data_format: str) -> None:
    """Declare how image arrays are laid out for models declared from now on."""
    _SETTINGS["image_data_format"] = check_format(data_format)


def check_format(data_format: str | None) -> str:
    """``data_format`` itself when valid; None means the current default."""
    if data_format is None:
        return image_data_format()
    if data_format not in FORMATS:
        raise ConfigError(f"data_format must be one of {', '.join(FORMATS)}, got {data_format!r}")
    return data_format


def floatx() -> str:
    """cnnkit keeps weights in float32 (matmuls may run in bf16, see cnnkit's precision)."""
    return "float32"


def clear_session() -> None:
    """Nothing to clear: cnnkit keeps no global graph, and layer names are given per model."""


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (weights, dropout, and the shuffling ``fit`` draws)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_internal(shape: tuple[int, ...], data_format: str) -> tuple[int, ...]:
    """A per-sample shape as written by the user -> cnnkit's channels-first shape."""
    if data_format == "channels_last" and len(shape) >= 2:
        return (shape[-1], *shape[:-1])
    return tuple(shape)


def to_user(shape: tuple[int, ...], data_format: str) -> tuple[int, ...]:
    """cnnkit's channels-first per-sample shape -> the shape as the user writes it."""
    if data_format == "channels_last" and len(shape) >= 2:
        return (*shape[1:], shape[0])
    return tuple(shape)


__getattr__ = missing(
    __name__,
    {
        "get_value": "read the number directly, e.g. model.optimizer.learning_rate",
        "set_value": "assign directly: model.optimizer.learning_rate = 1e-4",
        "set_floatx": "cnnkit keeps float32 weights; its fit picks bf16 arithmetic where native",
        "backend": "cnnkit.keras always runs on PyTorch",
    },
)
