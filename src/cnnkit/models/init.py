"""Weight initialisers: Keras's defaults, the textbook's normal(0.1), and torch's own.

- ``keras``: Glorot-uniform weights and zero biases (Keras's Conv2D/Dense defaults).
- ``normal``: weights ~ N(0, 0.1²) and biases ~ N(0, 1), as the TensorFlow textbook does.
- ``torch``: leave torch's default (Kaiming-uniform) initialisation in place.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from cnnkit.errors import ModelError

INIT_SCHEMES = ("keras", "normal", "torch")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
M = TypeVar("M", bound=nn.Module)


def initialize(model: M, scheme: str) -> M:
    """Re-initialise every conv and dense layer of ``model`` in place; returns ``model``."""
    if scheme not in INIT_SCHEMES:
        raise ModelError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    if scheme == "torch":
        return model
    for module in model.modules():
        if not isinstance(module, _WEIGHTED):
            continue
        if scheme == "keras":
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        else:
            nn.init.normal_(module.weight, std=0.1)
            if module.bias is not None:
                nn.init.normal_(module.bias, std=1.0)
    return model
