"""Reference convolution and pooling math in NumPy: the operations the textbooks draw by hand.

Two families live here.

*Signal processing* (:func:`convolve`, :func:`correlate`): any number of dimensions, modes
``full`` / ``valid`` / ``same`` with exactly NumPy's and SciPy's meaning (``same`` keeps the
size of the first input and is centred on the ``full`` result as ``scipy.signal`` centres it).
True *convolution* flips the kernel before sliding it; *cross-correlation* does not. Deep
learning "convolution" layers compute cross-correlation: the kernel is learnt, so flipping it
would change nothing but the name.

*Deep-learning layers* (:func:`conv`, :func:`max_pool`, :func:`avg_pool`): cross-correlation
of a batch ``(N, C_in, *spatial)`` with filters ``(C_out, C_in, *kernel)``, with strides and
zero padding, exactly what ``torch.nn.functional.conv2d`` and Keras's ``Conv2D`` compute.
Padding is a number of cells (symmetric, as torch) or TensorFlow's ``"valid"`` / ``"same"``.

:func:`output_size` and :func:`same_padding` give the sizes: without padding a kernel of size
k shrinks n to n-k+1; with stride s and padding p the output is floor((n+2p-k)/s)+1;
TensorFlow's SAME gives ceil(n/s) and VALID ceil((n-k+1)/s). :func:`conv_steps` and
:func:`pool_steps` list every window of the sliding-window algorithm (``cnnkit conv`` prints
them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnkit.errors import ConfigError

Mode = Literal["full", "valid", "same"]
Padding = int | Sequence[int] | Literal["valid", "same"]
PoolOp = Literal["max", "avg"]

__all__ = [
    "WindowStep",
    "avg_pool",
    "conv",
    "conv_steps",
    "convolve",
    "correlate",
    "max_pool",
    "output_size",
    "pool_steps",
    "same_padding",
]


# -- sizes --------------------------------------------------------------------------------


def output_size(n: int, kernel: int, stride: int = 1, padding: int | str = 0) -> int:
    """Length of one output axis of a convolution or pooling window sliding over ``n`` cells.

    Args:
        n: input length.
        kernel: window length.
        stride: step between windows.
        padding: zero cells added on *each* side (floor((n+2p-k)/s)+1), or TensorFlow's
            ``"valid"`` (ceil((n-k+1)/s)) or ``"same"`` (ceil(n/s)).

    Raises:
        ConfigError: a non-positive size or stride, or an unknown padding.
    """
    _check_positive(n=n, kernel=kernel, stride=stride)
    if padding == "same":
        return -(-n // stride)
    if padding == "valid":
        return max(-(-(n - kernel + 1) // stride), 0)
    if isinstance(padding, str) or padding < 0:
        raise ConfigError(f"padding must be 'valid', 'same' or a count >= 0, got {padding!r}")
    return max((n + 2 * padding - kernel) // stride + 1, 0)


def same_padding(n: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """Cells TensorFlow's ``SAME`` adds ``(before, after)`` one axis of length ``n``.

    The output has ceil(n/s) cells; the padding needed for that is split with the extra cell
    *after* (so an even 4-wide kernel at stride 1 gets 1 before and 2 after).
    """
    _check_positive(n=n, kernel=kernel, stride=stride)
    total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


# -- signal processing: convolve / correlate ------------------------------------------------


def correlate(x: np.ndarray, kernel: np.ndarray, mode: Mode = "full") -> np.ndarray:
    """Cross-correlation of ``x`` with ``kernel`` (any equal number of dimensions).

    ``full[j] = sum_i x[i + j - (k - 1)] * conj(kernel[i])``, as ``scipy.signal.correlate``;
    ``same`` and ``valid`` are the same slices of it SciPy takes.

    Raises:
        ConfigError: the inputs have different numbers of dimensions, are empty, the mode is
            unknown, or ``valid`` is asked of inputs neither of which contains the other.
    """
    x, kernel = _signal_inputs(x, kernel, mode)
    return _slice_mode(_correlate_full(x, np.conj(kernel)), x.shape, kernel.shape, mode)


def convolve(x: np.ndarray, kernel: np.ndarray, mode: Mode = "full") -> np.ndarray:
    """True convolution: the kernel flipped along every axis, then slid as in :func:`correlate`.

    ``full[j] = sum_i x[i] * kernel[j - i]``, as ``numpy.convolve`` (1-D) and
    ``scipy.signal.convolve`` (n-D).
    """
    x, kernel = _signal_inputs(x, kernel, mode)
    flipped = np.flip(kernel, axis=tuple(range(kernel.ndim)))
    return _slice_mode(_correlate_full(x, flipped), x.shape, kernel.shape, mode)


def _signal_inputs(x: np.ndarray, kernel: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    x, kernel = np.asarray(x), np.asarray(kernel)
    if mode not in ("full", "valid", "same"):
        raise ConfigError(f"mode must be 'full', 'valid' or 'same', got {mode!r}")
    if x.ndim != kernel.ndim:
        raise ConfigError(
            f"input and kernel need the same number of dimensions, got {x.shape} and "
            f"{kernel.shape}; reshape the kernel (e.g. kernel[None, :])"
        )
    if x.size == 0 or kernel.size == 0:
        raise ConfigError(f"input {x.shape} and kernel {kernel.shape} must not be empty")
    if mode == "valid":
        bigger = [a >= b for a, b in zip(x.shape, kernel.shape, strict=True)]
        smaller = [a <= b for a, b in zip(x.shape, kernel.shape, strict=True)]
        if not (all(bigger) or all(smaller)):
            raise ConfigError(
                f"mode 'valid' needs one input at least as large as the other on every axis, "
                f"got {x.shape} and {kernel.shape}"
            )
    return x, kernel


def _correlate_full(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Every overlap of ``kernel`` sliding over ``x`` zero-padded by k-1 cells on each side."""
    padded = np.pad(x, [(k - 1, k - 1) for k in kernel.shape])
    windows = sliding_window_view(padded, kernel.shape)
    axes = tuple(range(kernel.ndim))
    return np.tensordot(windows, kernel, axes=(tuple(a + kernel.ndim for a in axes), axes))


def _slice_mode(
    full: np.ndarray, x_shape: tuple[int, ...], k_shape: tuple[int, ...], mode: str
) -> np.ndarray:
    if mode == "full":
        return full
    if mode == "same":  # SciPy: the size of x, centred on the full result
        starts = [(k - 1) // 2 for k in k_shape]
        lengths = list(x_shape)
    else:  # valid: only the positions where one input covers the other completely
        starts = [min(n, k) - 1 for n, k in zip(x_shape, k_shape, strict=True)]
        lengths = [abs(n - k) + 1 for n, k in zip(x_shape, k_shape, strict=True)]
    return full[tuple(slice(s, s + n) for s, n in zip(starts, lengths, strict=True))]


# -- deep-learning layers: conv / pooling ---------------------------------------------------


def conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
) -> np.ndarray:
    """A convolution layer's forward pass (cross-correlation), 1-, 2- or 3-D.

    Args:
        x: input batch ``(N, C_in, *spatial)``, e.g. ``(N, C, H, W)``.
        weight: filters ``(C_out, C_in, *kernel)``.
        bias: ``(C_out,)`` or None.
        stride: step per spatial axis.
        padding: zeros per side (an int or one per axis), ``"valid"`` or ``"same"``
            (TensorFlow's: output ceil(n/s), extra cell after).

    Returns:
        ``(N, C_out, *out)`` where each ``out`` follows :func:`output_size`.

    Raises:
        ConfigError: shapes that do not fit together, or a kernel larger than the padded input.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    dims = weight.ndim - 2
    if dims < 1 or x.ndim != weight.ndim or x.shape[1] != weight.shape[1]:
        raise ConfigError(
            f"conv needs x (N, C_in, *spatial) and weight (C_out, C_in, *kernel) with the same "
            f"C_in and number of spatial axes, got x {x.shape} and weight {weight.shape}"
        )
    kernel = weight.shape[2:]
    windows = _windows(x, kernel, _per_axis(stride, dims, "stride"), padding, fill=0.0)
    # windows: (N, C_in, *out, *kernel) . weight (C_out, C_in, *kernel) -> (N, *out, C_out)
    window_axes = (1, *range(2 + dims, 2 + 2 * dims))
    out = np.tensordot(windows, weight, axes=(window_axes, (1, *range(2, 2 + dims))))
    out = np.moveaxis(out, -1, 1)
    if bias is not None:
        out = out + np.asarray(bias).reshape(1, -1, *([1] * dims))
    return out


def max_pool(
    x: np.ndarray,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = 0,
) -> np.ndarray:
    """Maximum over each window of the last ``len(pool_size)`` axes of ``x``.

    Args:
        x: any array; the pooled axes are its last ``len(pool_size)`` axes (every axis when
            ``pool_size`` is an int), e.g. a 2-D map ``(H, W)`` or a batch ``(N, C, H, W)``.
        pool_size: window per pooled axis.
        strides: step per pooled axis (default: the window, non-overlapping).
        padding: cells per side (padded cells never win, as in torch), ``"valid"`` or
            ``"same"`` (TensorFlow's).
    """
    return _pool(x, pool_size, strides, padding, "max")


def avg_pool(
    x: np.ndarray,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = 0,
) -> np.ndarray:
    """Mean over each window; arguments as :func:`max_pool`.

    With a numeric padding the padded zeros count in the mean (torch's default,
    ``count_include_pad=True``); with ``"same"`` they do not (TensorFlow's and Keras's rule).
    """
    return _pool(x, pool_size, strides, padding, "avg")


def _pool(
    x: np.ndarray,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Padding,
    op: PoolOp,
) -> np.ndarray:
    x = np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float64))
    dims = x.ndim if isinstance(pool_size, int) else len(pool_size)
    if dims < 1 or dims > x.ndim:
        raise ConfigError(f"pool_size {pool_size!r} does not fit an input of shape {x.shape}")
    size = _per_axis(pool_size, dims, "pool_size")
    step = size if strides is None else _per_axis(strides, dims, "strides")
    if op == "max":
        return _windows(x, size, step, padding, fill=-np.inf).max(axis=_last(dims))
    sums = _windows(x, size, step, padding, fill=0.0).sum(axis=_last(dims))
    if padding != "same":
        return sums / math.prod(size)
    # TensorFlow's SAME average divides by the number of real (unpadded) cells per window
    counts = _windows(np.ones(x.shape[-dims:]), size, step, padding, fill=0.0)
    return sums / counts.sum(axis=_last(dims))


def _last(dims: int) -> tuple[int, ...]:
    return tuple(range(-dims, 0))


def _per_axis(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int | np.integer) else tuple(value)
    if len(values) != dims:
        raise ConfigError(f"{name} {value!r} needs {dims} value(s), one per spatial axis")
    for v in values:
        _check_positive(**{name: v})
    return tuple(int(v) for v in values)


def _pad_widths(
    shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Padding
) -> list[tuple[int, int]]:
    """``(before, after)`` per spatial axis for a padding spec."""
    dims = len(kernel)
    if padding == "valid":
        return [(0, 0)] * dims
    if padding == "same":
        return [same_padding(n, k, s) for n, k, s in zip(shape, kernel, stride, strict=True)]
    if isinstance(padding, str):
        raise ConfigError(f"padding must be 'valid', 'same' or a count, got {padding!r}")
    counts = (padding,) * dims if isinstance(padding, int | np.integer) else tuple(padding)
    if len(counts) != dims or any(int(p) != p or p < 0 for p in counts):
        raise ConfigError(f"padding {padding!r} needs {dims} count(s) >= 0, one per axis")
    return [(int(p), int(p)) for p in counts]


def _windows(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Padding,
    *,
    fill: float,
) -> np.ndarray:
    """The strided windows over the last ``len(kernel)`` axes: ``(..., *out, *kernel)``."""
    dims = len(kernel)
    spatial = x.shape[x.ndim - dims :]
    widths = _pad_widths(spatial, kernel, stride, padding)
    padded = np.pad(x, [(0, 0)] * (x.ndim - dims) + widths, constant_values=fill)
    for n, k, (before, after) in zip(spatial, kernel, widths, strict=True):
        if n + before + after < k:
            raise ConfigError(
                f"window {tuple(kernel)} is larger than the padded input "
                f"{tuple(padded.shape[x.ndim - dims :])} (input {tuple(spatial)}); "
                "use a smaller window, more padding or padding='same'"
            )
    axes = tuple(range(x.ndim - dims, x.ndim))
    windows = sliding_window_view(padded, tuple(kernel), axis=axes)
    index: tuple[Any, ...] = (Ellipsis, *(slice(None, None, s) for s in stride))
    return windows[index + (slice(None),) * dims]


# -- the sliding-window algorithm, step by step -------------------------------------------


@dataclass(frozen=True)
class WindowStep:
    """One position of a sliding window.

    Attributes:
        index: position in the output, e.g. ``(row, col)``.
        origin: first cell of the window in the padded input.
        window: the input cells under the window.
        terms: ``window * kernel`` cell by cell (convolution), or None (pooling).
        value: the output cell: ``terms.sum()``, or the window's max or mean.
    """

    index: tuple[int, ...]
    origin: tuple[int, ...]
    window: np.ndarray
    terms: np.ndarray | None
    value: float


def conv_steps(
    x: np.ndarray,
    kernel: np.ndarray,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip: bool = False,
) -> list[WindowStep]:
    """Every window of a single-channel convolution, in the order the algorithm visits them.

    The kernel sits on the top-left cells, the scalar product of the overlap is the first
    output cell, the kernel slides by the stride along the row, then down to the next row.

    Args:
        x: one input map, e.g. ``(H, W)``.
        kernel: weights with as many axes as ``x``.
        stride: step per axis.
        padding: zeros per side, ``"valid"`` or ``"same"``.
        flip: flip the kernel first (true convolution) instead of cross-correlating.
    """
    x, kernel = np.asarray(x, dtype=float), np.asarray(kernel, dtype=float)
    if x.ndim != kernel.ndim:
        raise ConfigError(f"input {x.shape} and kernel {kernel.shape} need the same axes")
    if flip:
        kernel = np.flip(kernel, axis=tuple(range(kernel.ndim)))
    steps = _per_axis(stride, x.ndim, "stride")
    windows = _windows(x, kernel.shape, steps, padding, fill=0.0)
    return [
        WindowStep(index, _origin(index, steps), w, w * kernel, float((w * kernel).sum()))
        for index, w in _each_window(windows, x.ndim)
    ]


def pool_steps(
    x: np.ndarray,
    pool_size: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Padding = 0,
    op: PoolOp = "max",
) -> list[WindowStep]:
    """Every window of :func:`max_pool` / :func:`avg_pool` over one map, in visiting order."""
    x = np.asarray(x, dtype=float)
    values = _pool(x, pool_size, strides, padding, op)
    size = _per_axis(pool_size, x.ndim, "pool_size")
    step = size if strides is None else _per_axis(strides, x.ndim, "strides")
    windows = _windows(x, size, step, padding, fill=-np.inf if op == "max" else 0.0)
    return [
        WindowStep(index, _origin(index, step), w, None, float(values[index]))
        for index, w in _each_window(windows, x.ndim)
    ]


def _origin(index: tuple[int, ...], stride: Sequence[int]) -> tuple[int, ...]:
    return tuple(i * s for i, s in zip(index, stride, strict=True))


def _each_window(windows: np.ndarray, dims: int) -> list[tuple[tuple[int, ...], np.ndarray]]:
    return [
        (tuple(int(i) for i in index), windows[index])
        for index in np.ndindex(*windows.shape[:dims])
    ]
