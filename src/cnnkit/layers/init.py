"""Weight initialisers: Keras's defaults, the textbook's normal(0.1), and torch's own.

- ``keras``: Glorot-uniform weights and zero biases (Keras's Conv2D/Dense defaults; what
  :mod:`cnnkit.layers` gives every layer it builds).
- ``normal``: weights ~ N(0, 0.1²) and biases ~ N(0, 1), as the TensorFlow textbook does.
- ``torch``: torch's default (Kaiming-uniform) initialisation, as ``reset_parameters()``.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from cnnkit.errors import ModelError

INIT_SCHEMES = ("keras", "normal", "torch")
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
M = TypeVar("M", bound=nn.Module)


def initialize(model: M, scheme: str) -> M:
    """Re-initialise every conv and dense layer of ``model`` in place; returns ``model``."""
    _check_scheme(scheme)
    for module in model.modules():
        if isinstance(module, WEIGHTED):
            initialize_module(module, scheme)
    return model


def initialize_module(module: nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear, scheme: str) -> None:
    """Re-initialise one conv or dense module's weight and bias in place."""
    _check_scheme(scheme)
    if scheme == "torch":
        module.reset_parameters()
    elif scheme == "keras":
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    else:
        nn.init.normal_(module.weight, std=0.1)
        if module.bias is not None:
            nn.init.normal_(module.bias, std=1.0)


def _check_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise ModelError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
