"""The layer base class, symbolic tensors for the functional API, and activations.

A :class:`Layer` works as a Keras layer does: its constructor stores hyper-parameters, and
:meth:`Layer.build` creates the weights once the input shape is known, checking the shape and
returning the output shape. Built, it is an ordinary ``torch.nn.Module``.

Shapes are per sample and channels-first, as torch lays tensors out: ``(C, H, W)`` for an
image, ``(features,)`` for a vector. (Keras writes ``(H, W, C)``; ``cnnkit summary --layout
nhwc`` shows shapes that way.)
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from cnnkit.errors import ModelError

Shape = tuple[int, ...]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras 3's activation default slope
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),  # over the channel / class axis
    "gelu": nn.GELU,  # exact (erf), as Keras's default
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # Keras's other name for silu
    "selu": nn.SELU,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "relu6": nn.ReLU6,
    "hard_sigmoid": nn.Hardsigmoid,  # relu6(x + 3) / 6, as Keras 3
    "mish": nn.Mish,
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALLS = itertools.count()  # symbolic calls in program order: a topological order of the graph


def make_activation(name: str | None) -> nn.Module:
    """The module for a Keras activation name (None and ``linear`` mean none)."""
    if name is None:
        return nn.Identity()
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ModelError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        ) from None


def format_shape(shape: Sequence[int]) -> str:
    """``(64, 7, 7)``; a one-dimensional shape keeps its comma: ``(784,)``."""
    return str(tuple(shape))


def snake_case(kind: str) -> str:
    """Keras's default layer names: ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", kind)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(
            f"layer name {name!r} must start with a letter or '_' and hold only letters, "
            "digits and '_'"
        )
    return name


class SymbolicTensor:
    """What ``Input(...)`` and a layer called on one return: a shape and where it came from.

    It holds no data; calling layers on symbolic tensors records the graph that
    :class:`~cnnkit.layers.Model` turns into a module.
    """

    __slots__ = ("inputs", "layer", "shape")

    def __init__(self, shape: Shape, layer: Layer, inputs: tuple[SymbolicTensor, ...]) -> None:
        self.shape = shape
        self.layer = layer
        self.inputs = inputs

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.layer}>"


class Layer(nn.Module):
    """Base class of the Keras-vocabulary layers.

    Subclasses store their hyper-parameters in ``__init__`` (recorded by
    :meth:`_remember` for :meth:`get_config`) and implement :meth:`_build`, which checks the
    input shape(s), creates the torch sub-modules and returns the output shape.
    """

    #: how many inputs the layer takes (None: two or more, as Add and Concatenate)
    arity: ClassVar[int | None] = 1

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        self.name = None if name is None else check_name(name)
        self.input_shapes: tuple[Shape, ...] | None = None
        self.output_shape: Shape | None = None
        self.symbolic_output: SymbolicTensor | None = None
        self.call_index = -1
        self._config: dict[str, Any] = {}

    # -- configuration ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """The Keras class name, e.g. ``Conv2D``."""
        return type(self).__name__

    def _remember(self, **config: Any) -> None:
        self._config = config

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that differ from their defaults, plus the name."""
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self)).parameters.values()
            if p.default is not p.empty
        }
        config = {k: _plain(v) for k, v in self._config.items() if defaults.get(k, ...) != v}
        if self.name is not None:
            config["name"] = self.name
        return config

    def describe(self) -> str:
        """``layer 'conv2d_1' (Conv2D)``, or ``layer Conv2D(filters=64, ...)`` before naming."""
        if self.name is not None:
            return f"layer {self.name!r} ({self.kind})"
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"layer {self.kind}({args})"

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())

    # -- building -----------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        return self.output_shape is not None

    def build(self, *input_shapes: Shape) -> Shape:
        """Create the weights for these input shapes and return the output shape.

        Raises:
            ModelError: the layer is already built, or the shapes do not suit it (the message
                names the layer, the shape it expects and the shape it got).
        """
        if self.built:
            raise ModelError(
                f"{self.describe()} is already built for input "
                f"{', '.join(map(format_shape, self.input_shapes or ()))}; create a new layer"
            )
        shapes = tuple(tuple(int(n) for n in s) for s in input_shapes)
        if self.arity is not None and len(shapes) != self.arity:
            raise ModelError(f"{self.describe()} takes {self.arity} input, got {len(shapes)}")
        if self.arity is None and len(shapes) < 2:
            raise ModelError(f"{self.describe()} combines two or more inputs, got {len(shapes)}")
        output = self._build(*shapes)
        self.input_shapes, self.output_shape = shapes, output
        return output

    def _build(self, *input_shapes: Shape) -> Shape:
        raise NotImplementedError

    def expect_rank(self, shape: Shape, rank: int, layout: str, hint: str = "") -> None:
        """Fail unless ``shape`` has ``rank`` axes; ``layout`` reads e.g. ``(C, H, W)``."""
        if len(shape) != rank:
            raise ModelError(
                f"{self.describe()} expects input shape {layout} but got "
                f"{format_shape(shape)}{'; ' + hint if hint else ''}"
            )

    # -- calling ------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """On symbolic tensors: build and record a graph node. On tensors: run the layer."""
        inputs = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
        if inputs and all(isinstance(a, SymbolicTensor) for a in inputs):
            return self._call_symbolic(tuple(inputs))
        if not self.built:  # called eagerly, as Keras allows: build for these tensors
            self.build(*(tuple(t.shape[1:]) for t in inputs))
            self.to(inputs[0].device)
        return super().__call__(*inputs, **kwargs)

    def _call_symbolic(self, inputs: tuple[SymbolicTensor, ...]) -> SymbolicTensor:
        if self.symbolic_output is not None:
            raise ModelError(
                f"{self.describe()} has already been called; cnnkit does not share a layer "
                "between calls: create a new layer for each use"
            )
        shape = self.build(*(t.shape for t in inputs))
        self.symbolic_output = SymbolicTensor(shape, self, inputs)
        self.call_index = next(_CALLS)
        return self.symbolic_output

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class InputLayer(Layer):
    """The source of a graph: declares the per-sample input shape ``(C, H, W)``."""

    arity = 0

    def __init__(self, shape: Sequence[int], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(shape, int):
            shape = (shape,)
        if not shape or any(not isinstance(n, int) or n < 1 for n in shape):
            raise ModelError(
                f"Input shape must be positive integers such as (1, 28, 28), got {shape!r}"
            )
        self.shape: Shape = tuple(shape)
        self._remember(shape=list(self.shape))
        self.output_shape = self.shape
        self.input_shapes = ()
        self.tensor = SymbolicTensor(self.shape, self, ())
        self.symbolic_output = self.tensor
        self.call_index = next(_CALLS)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return inputs[0]


def Input(shape: Sequence[int], *, name: str | None = None) -> SymbolicTensor:
    """The start of a model: ``x = Input((1, 28, 28))``, channels first, no batch axis."""
    return InputLayer(shape, name=name).tensor


def _plain(value: Any) -> Any:
    """Tuples become lists so configs read the same from Python, YAML and JSON."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value
