"""``keras.activations``: each callable on a symbolic tensor (adds an ``Activation`` layer, as
``keras.activations.relu(x)`` does in a functional model), on a torch tensor, or on an array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cnnkit.keras.layers import Activation, activation_name
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.layers.base import SymbolicTensor, make_activation


def _apply(name: str, x: Any, **options: Any) -> Any:
    defaults = {k: v for k, v in options.items() if v not in (None, 0, 0.0, -1)}
    if defaults:
        raise unsupported(
            f"keras.activations.{name}({', '.join(f'{k}={v!r}' for k, v in defaults.items())})",
            f"use keras.activations.{name}(x) with its defaults",
        )
    if isinstance(x, SymbolicTensor):
        return Activation(name)(x)
    module = make_activation(name)
    if name in ("softmax", "log_softmax"):  # Keras: over the last axis
        function = torch.log_softmax if name == "log_softmax" else torch.softmax
        return _run(lambda t: function(t, dim=-1), x)
    return _run(module, x)


def _run(function: Callable[[torch.Tensor], torch.Tensor], x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return function(x)
    return function(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


def _make(name: str) -> Callable[..., Any]:
    def activation(x: Any, **options: Any) -> Any:
        return _apply(name, x, **options)

    activation.__name__ = activation.__qualname__ = name
    activation.__doc__ = f"The ``{name}`` activation on a symbolic tensor, tensor or array."
    return activation


relu = _make("relu")
sigmoid = _make("sigmoid")
softmax = _make("softmax")
tanh = _make("tanh")
elu = _make("elu")
selu = _make("selu")
gelu = _make("gelu")
silu = _make("silu")
swish = _make("swish")
softplus = _make("softplus")
softsign = _make("softsign")
relu6 = _make("relu6")
leaky_relu = _make("leaky_relu")
hard_sigmoid = _make("hard_sigmoid")
mish = _make("mish")
log_softmax = _make("log_softmax")
linear = _make("linear")


def get(identifier: str | Callable[..., Any] | None) -> Callable[..., Any]:
    """The activation function for a name (``keras.activations.get("relu")``)."""
    name = activation_name(identifier) or "linear"
    return globals()[name]  # type: ignore[no-any-return]


def serialize(activation: Callable[..., Any]) -> str | None:
    return activation_name(activation)


__getattr__ = missing(
    __name__,
    {
        "exponential": "use a named activation such as 'elu' or 'softplus'",
        "hard_silu": "use 'silu' (swish)",
        "hard_swish": "use 'silu' (swish)",
        "softmax_cross_entropy": "use keras.losses.CategoricalCrossentropy",
    },
)
