"""Convolution and pooling layers: Conv1D/2D/3D, Max/AveragePooling1D/2D/3D, global pooling.

Padding ``valid`` uses no padding; ``same`` pads as TensorFlow/Keras does, so the output has
ceil(n/stride) cells and an odd total padding puts the extra cell *after* (a 4x4 kernel at
stride 1 pads 1 before and 2 after). Symmetric padding is passed to the torch module;
asymmetric padding is an explicit pad module in front of it (no torch ``padding='same'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from cnnkit.errors import ConfigError, ModelError
from cnnkit.layers.base import Layer, Shape, format_shape, make_activation
from cnnkit.layers.init import initialize_module
from cnnkit.ops import output_size, same_padding

PaddingMode = Literal["valid", "same"]

# torch's module class per spatial rank
_CONV: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_PAD: dict[int, Any] = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}
_MAX: dict[int, Any] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG: dict[int, Any] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_LAYOUT = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}


def _tuple(value: int | Sequence[int], rank: int, what: str, kind: str) -> tuple[int, ...]:
    values = (value,) * rank if isinstance(value, int) else tuple(value)
    if len(values) != rank or any(not isinstance(v, int) or v < 1 for v in values):
        raise ModelError(
            f"{kind}: {what} must be a positive integer or {rank} of them, got {value!r}"
        )
    return values


def _padding(value: str, kind: str) -> PaddingMode:
    if value not in ("valid", "same"):
        raise ModelError(f"{kind}: padding must be 'valid' or 'same', got {value!r}")
    return "same" if value == "same" else "valid"


class _Windowed(Layer):
    """Shared by conv and pooling layers: the window geometry and its padding."""

    rank: ClassVar[int]

    def _geometry(
        self,
        shape: Shape,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        padding: PaddingMode,
    ) -> tuple[Shape, list[tuple[int, int]]]:
        """Output spatial shape and ``(before, after)`` padding per axis for input ``shape``."""
        self.expect_rank(shape, self.rank + 1, _LAYOUT[self.rank])
        spatial = shape[1:]
        try:
            out = tuple(
                output_size(n, k, s, padding)
                for n, k, s in zip(spatial, kernel, strides, strict=True)
            )
            pads = [
                same_padding(n, k, s) if padding == "same" else (0, 0)
                for n, k, s in zip(spatial, kernel, strides, strict=True)
            ]
        except ConfigError as exc:
            raise ModelError(f"{self.describe()}: {exc}") from None
        if any(n < 1 for n in out):
            window = "x".join(map(str, kernel))
            raise ModelError(
                f"{self.describe()}: a {window} window (strides {strides}, padding "
                f"{padding!r}) does not fit the input {format_shape(shape)}; it would give "
                f"{format_shape(out)}. Use padding='same', fewer pooling steps or larger images"
            )
        return out, pads

    def _pad_module(self, pads: list[tuple[int, int]], value: float) -> nn.Module:
        """A pad module for asymmetric padding (torch lists the *last* axis first)."""
        if all(b == 0 and a == 0 for b, a in pads):
            return nn.Identity()
        flat = [n for before, after in reversed(pads) for n in (before, after)]
        return _PAD[self.rank](tuple(flat), value)


class _Conv(_Windowed):
    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        activation: str | None = None,
        use_bias: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(filters, int) or filters < 1:
            raise ModelError(f"{self.kind}: filters must be a positive integer, got {filters!r}")
        self.filters = filters
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", self.kind)
        self.strides = _tuple(strides, self.rank, "strides", self.kind)
        self.padding = _padding(padding, self.kind)
        self.activation = make_activation(activation)
        self.use_bias = bool(use_bias)
        self._remember(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            activation=activation,
            use_bias=use_bias,
        )

    def _build(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        out, pads = self._geometry(shape, self.kernel_size, self.strides, self.padding)
        symmetric = all(b == a for b, a in pads)
        self.pad = nn.Identity() if symmetric else self._pad_module(pads, 0.0)
        self.conv = _CONV[self.rank](
            shape[0],
            self.filters,
            self.kernel_size,
            stride=self.strides,
            padding=tuple(b for b, _ in pads) if symmetric else 0,
            bias=self.use_bias,
        )
        initialize_module(self.conv, "keras")
        return (self.filters, *out)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(self.pad(inputs[0])))


class Conv1D(_Conv):
    """1-D convolution over ``(C, L)``: ``Conv1D(filters, kernel_size, strides, padding)``."""

    rank = 1


class Conv2D(_Conv):
    """2-D convolution over ``(C, H, W)``.

    Args:
        filters: output channels.
        kernel_size: window, one int or ``(kh, kw)``.
        strides: step, one int or ``(sh, sw)``.
        padding: ``valid`` (none) or ``same`` (output ceil(n/stride), Keras's rule).
        activation: a name from :data:`~cnnkit.layers.base.ACTIVATIONS`, or None.
        use_bias: add a learnt bias per filter.
        name: layer name (default: Keras's, ``conv2d``, ``conv2d_1``, ...).
    """

    rank = 2


class Conv3D(_Conv):
    """3-D convolution over ``(C, D, H, W)``."""

    rank = 3


class _Pool(_Windowed):
    op: ClassVar[str]

    def __init__(
        self,
        pool_size: int | Sequence[int] = 2,
        strides: int | Sequence[int] | None = None,
        padding: str = "valid",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.pool_size = _tuple(pool_size, self.rank, "pool_size", self.kind)
        self.strides = (
            self.pool_size if strides is None else _tuple(strides, self.rank, "strides", self.kind)
        )
        self.padding = _padding(padding, self.kind)
        self._remember(pool_size=pool_size, strides=strides, padding=padding)

    def _build(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        out, pads = self._geometry(shape, self.pool_size, self.strides, self.padding)
        table = _MAX if self.op == "max" else _AVG
        self.pool = table[self.rank](self.pool_size, self.strides)
        # padded cells never win a max, and (Keras's rule) never count in an average
        self.pad = self._pad_module(pads, float("-inf") if self.op == "max" else 0.0)
        real = None
        if self.op == "avg" and not isinstance(self.pad, nn.Identity):
            real = self.pool(self.pad(torch.ones(1, 1, *shape[1:])))[0]
        self.register_buffer("real_fraction", real, persistent=False)
        return (shape[0], *out)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.pad(inputs[0]))
        return pooled if self.real_fraction is None else pooled / self.real_fraction


class MaxPooling1D(_Pool):
    """Max over windows of ``(C, L)``; strides default to the window (no overlap)."""

    rank, op = 1, "max"


class MaxPooling2D(_Pool):
    """Max over windows of ``(C, H, W)``: ``MaxPooling2D(pool_size=2, strides=None,
    padding="valid")``; strides default to the window (no overlap)."""

    rank, op = 2, "max"


class MaxPooling3D(_Pool):
    """Max over windows of ``(C, D, H, W)``."""

    rank, op = 3, "max"


class AveragePooling1D(_Pool):
    """Mean over windows of ``(C, L)``."""

    rank, op = 1, "avg"


class AveragePooling2D(_Pool):
    """Mean over windows of ``(C, H, W)``; with ``same`` padding the padded cells do not
    count (Keras's rule)."""

    rank, op = 2, "avg"


class AveragePooling3D(_Pool):
    """Mean over windows of ``(C, D, H, W)``."""

    rank, op = 3, "avg"


class _GlobalPool(Layer):
    rank: ClassVar[int]
    op: ClassVar[str]

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    def _build(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        self.expect_rank(shape, self.rank + 1, _LAYOUT[self.rank])
        return (shape[0],)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        axes = tuple(range(2, 2 + self.rank))
        x = inputs[0]
        return x.mean(dim=axes) if self.op == "avg" else x.amax(dim=axes)


class GlobalAveragePooling1D(_GlobalPool):
    """``(C, L)`` -> ``(C,)``: the mean of each channel."""

    rank, op = 1, "avg"


class GlobalAveragePooling2D(_GlobalPool):
    """``(C, H, W)`` -> ``(C,)``: the mean of each channel."""

    rank, op = 2, "avg"


class GlobalMaxPooling1D(_GlobalPool):
    """``(C, L)`` -> ``(C,)``: the maximum of each channel."""

    rank, op = 1, "max"


class GlobalMaxPooling2D(_GlobalPool):
    """``(C, H, W)`` -> ``(C,)``: the maximum of each channel."""

    rank, op = 2, "max"
