"""cnnkit.ops against NumPy, SciPy and torch on random inputs, and SPEC §1's worked examples.

Each property runs ``EXAMPLES`` random cases in the default suite and ``SLOW_EXAMPLES`` under
``-m slow`` (``--hypothesis-show-statistics`` prints the counts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit import ops
from cnnkit.errors import ConfigError
from cnnkit.layers import Conv2D

scipy_signal = pytest.importorskip("scipy.signal", reason="scipy is the reference (dev extra)")
pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = 200
SLOW_EXAMPLES = 5000
MODES = ("full", "same", "valid")


def fast(test):
    return settings(max_examples=EXAMPLES, deadline=None)(test)


def slow(test):
    return pytest.mark.slow(settings(max_examples=SLOW_EXAMPLES, deadline=None)(test))


def arrays(shape):
    """Random float64 arrays of ``shape`` drawn from a seed (fast to generate and shrink)."""
    return st.integers(0, 2**32 - 1).map(
        lambda seed: np.random.default_rng(seed).normal(size=shape)
    )


@st.composite
def signal_pair(draw, dims: int):
    x_shape = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    k_shape = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    return draw(arrays(x_shape)), draw(arrays(k_shape))


def _check_signal_against_scipy(x: np.ndarray, k: np.ndarray) -> None:
    for mode in MODES:
        bigger = all(a >= b for a, b in zip(x.shape, k.shape, strict=True))
        smaller = all(a <= b for a, b in zip(x.shape, k.shape, strict=True))
        if mode == "valid" and not (bigger or smaller):
            with pytest.raises(ConfigError, match="valid"):
                ops.convolve(x, k, mode)
            continue
        for ours, theirs in (
            (ops.convolve, scipy_signal.convolve),
            (ops.correlate, scipy_signal.correlate),
        ):
            expected = theirs(x, k, mode=mode, method="direct")
            got = ours(x, k, mode)
            assert got.shape == expected.shape, (ours.__name__, mode, x.shape, k.shape)
            np.testing.assert_allclose(got, expected, atol=1e-9)


def _check_1d_against_numpy(x: np.ndarray, k: np.ndarray) -> None:
    if len(x) < len(k):  # NumPy swaps the inputs then; SciPy's meaning is checked above
        return
    for mode in MODES:
        np.testing.assert_allclose(ops.convolve(x, k, mode), np.convolve(x, k, mode), atol=1e-9)
        np.testing.assert_allclose(ops.correlate(x, k, mode), np.correlate(x, k, mode), atol=1e-9)


@fast
@given(signal_pair(1))
def test_1d_matches_numpy_and_scipy(pair) -> None:
    _check_signal_against_scipy(*pair)
    _check_1d_against_numpy(*pair)


@fast
@given(signal_pair(2))
def test_2d_matches_scipy_convolve2d_and_correlate(pair) -> None:
    x, k = pair
    _check_signal_against_scipy(x, k)
    for mode in MODES:
        if mode == "valid" and not (
            all(a >= b for a, b in zip(x.shape, k.shape, strict=True))
            or all(a <= b for a, b in zip(x.shape, k.shape, strict=True))
        ):
            continue
        np.testing.assert_allclose(
            ops.convolve(x, k, mode), scipy_signal.convolve2d(x, k, mode), atol=1e-9
        )


@fast
@given(signal_pair(3))
def test_3d_matches_scipy(pair) -> None:
    _check_signal_against_scipy(*pair)


@slow
@given(st.integers(1, 3).flatmap(signal_pair))
def test_nd_matches_scipy_many_cases(pair) -> None:
    _check_signal_against_scipy(*pair)
    if pair[0].ndim == 1:
        _check_1d_against_numpy(*pair)


def test_convolution_flips_the_kernel_and_correlation_does_not() -> None:
    x = np.array([0.0, 1.0, 0.0, 0.0])
    kernel = np.array([1.0, 2.0, 3.0])
    assert ops.convolve(x, kernel, "full").tolist() == [0, 1, 2, 3, 0, 0]  # the kernel itself
    assert ops.correlate(x, kernel, "full").tolist() == [0, 3, 2, 1, 0, 0]  # mirrored


# -- layer convolution and pooling against torch ---------------------------------------------


@st.composite
def conv_case(draw, dims: int):
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = draw(st.one_of(st.just("valid"), st.just("same"), st.integers(0, 2)))
    pads = padding if isinstance(padding, int) else 0
    spatial = tuple(draw(st.integers(max(k - 2 * pads, 1), 9)) for k in kernel)
    batch, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = draw(arrays((batch, c_in, *spatial)))
    w = draw(arrays((c_out, c_in, *kernel)))
    b = draw(arrays((c_out,)))
    return x, w, b, stride, padding


_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _torch_conv(x, w, b, stride, padding):
    dims = w.ndim - 2
    tx = torch.from_numpy(x)
    if padding == "same":  # TensorFlow's SAME: explicit, possibly asymmetric, padding
        widths = [
            ops.same_padding(n, k, s)
            for n, k, s in zip(x.shape[2:], w.shape[2:], stride, strict=True)
        ]
        tx = F.pad(tx, [p for pair in reversed(widths) for p in pair])
        padding = 0
    elif padding == "valid":
        padding = 0
    conv = _TORCH_CONV[dims]
    return conv(
        tx, torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=padding
    ).numpy()


def _check_conv(case) -> None:
    x, w, b, stride, padding = case
    got = ops.conv(x, w, b, stride=stride, padding=padding)
    expected = _torch_conv(x, w, b, stride, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-9)
    for n, k, s, out in zip(x.shape[2:], w.shape[2:], stride, got.shape[2:], strict=True):
        assert ops.output_size(n, k, s, padding) == out


@fast
@given(st.integers(1, 3).flatmap(conv_case))
def test_conv_matches_torch(case) -> None:
    _check_conv(case)


@slow
@given(st.integers(1, 3).flatmap(conv_case))
def test_conv_matches_torch_many_cases(case) -> None:
    _check_conv(case)


@st.composite
def pool_case(draw, dims: int):
    size = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = draw(st.one_of(st.just("valid"), st.just("same"), st.integers(0, 2)))
    if isinstance(padding, int):
        padding = min(padding, min(size) // 2)  # torch allows at most half the window
    spatial = tuple(draw(st.integers(k, 9)) for k in size)
    x = draw(arrays((draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)))
    return x, size, stride, padding


_TORCH_POOL = {
    ("max", 1): F.max_pool1d,
    ("max", 2): F.max_pool2d,
    ("avg", 1): F.avg_pool1d,
    ("avg", 2): F.avg_pool2d,
}


def _torch_pool(op, x, size, stride, padding):
    tx = torch.from_numpy(x)
    pool = _TORCH_POOL[op, len(size)]
    if padding == "valid":
        return pool(tx, size, stride).numpy()
    if isinstance(padding, int):
        return pool(tx, size, stride, padding).numpy()
    widths = [ops.same_padding(n, k, s) for n, k, s in zip(x.shape[2:], size, stride, strict=True)]
    flat = [p for pair in reversed(widths) for p in pair]
    if op == "max":
        return pool(F.pad(tx, flat, value=-np.inf), size, stride).numpy()
    # SAME average: the sum over real cells divided by how many real cells the window covers
    sums = pool(F.pad(tx, flat), size, stride)
    real = pool(F.pad(torch.ones_like(tx), flat), size, stride)
    return (sums / real).numpy()


def _check_pool(case) -> None:
    x, size, stride, padding = case
    for op, ours in (("max", ops.max_pool), ("avg", ops.avg_pool)):
        got = ours(x, size, stride, padding)
        expected = _torch_pool(op, x, size, stride, padding)
        assert got.shape == expected.shape, (op, x.shape, size, stride, padding)
        np.testing.assert_allclose(got, expected, atol=1e-9)


@fast
@given(st.integers(1, 2).flatmap(pool_case))
def test_pooling_matches_torch(case) -> None:
    _check_pool(case)


@slow
@given(st.integers(1, 2).flatmap(pool_case))
def test_pooling_matches_torch_many_cases(case) -> None:
    _check_pool(case)


@fast
@given(st.integers(1, 30), st.integers(1, 9), st.integers(1, 4))
def test_output_size_formulas(n: int, k: int, s: int) -> None:
    assert ops.output_size(n, k, s, "same") == -(-n // s)  # ceil(n / s)
    if n >= k:
        assert ops.output_size(n, k, s, "valid") == -(-(n - k + 1) // s)  # ceil((n-k+1)/s)
        assert ops.output_size(n, k, s, 0) == (n - k) // s + 1
    before, after = ops.same_padding(n, k, s)
    assert after - before in (0, 1)
    assert (n + before + after - k) // s + 1 == -(-n // s)


# -- SPEC §1 worked examples ---------------------------------------------------------------


def test_spec_example_32x32x3_with_64_9x9_filters_stride_2_valid_gives_12x12x64() -> None:
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32))
    w = np.random.default_rng(1).normal(size=(64, 3, 9, 9))
    assert ops.conv(x, w, stride=2, padding="valid").shape == (1, 64, 12, 12)
    assert ops.output_size(32, 9, 2, "valid") == 12 == ops.output_size(32, 9, 2, 0)
    layer = Conv2D(64, 9, strides=2, padding="valid")  # the same layer in Keras vocabulary
    assert layer.build((3, 32, 32)) == (64, 12, 12)
    # per filter kh*kw*in_channels shared weights and one bias
    assert sum(p.numel() for p in layer.parameters()) == 9 * 9 * 3 * 64 + 64


def test_spec_example_3x3_map_2x2_pool_stride_1() -> None:
    feature_map = np.array([[1, 3, 2], [4, 6, 5], [7, 9, 8]], dtype=float)
    assert ops.max_pool(feature_map, 2, 1).tolist() == [[6, 6], [9, 9]]
    assert ops.avg_pool(feature_map, 2, 1).tolist() == [[3.5, 4.0], [6.5, 7.0]]


def test_spec_example_4x4_map_2x2_pool_stride_2() -> None:
    feature_map = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=float)
    assert ops.max_pool(feature_map, 2).tolist() == [[6, 8], [3, 4]]
    assert ops.avg_pool(feature_map, 2).tolist() == [[3.25, 5.25], [2.0, 2.0]]


def test_same_padding_puts_the_extra_cell_after() -> None:
    assert ops.same_padding(28, 4, 1) == (1, 2)  # LeNet's 4x4 "same" convolutions
    assert ops.same_padding(32, 3, 2) == (0, 1)
    assert ops.same_padding(5, 1, 1) == (0, 0)


def test_steps_rebuild_the_result_window_by_window() -> None:
    rng = np.random.default_rng(3)
    x, kernel = rng.integers(0, 9, (6, 5)).astype(float), rng.integers(-1, 2, (3, 2)).astype(float)
    for flip in (False, True):
        steps = ops.conv_steps(x, kernel, stride=(2, 1), padding="same", flip=flip)
        used = np.flip(kernel) if flip else kernel
        expected = ops.conv(x[None, None], used[None, None], stride=(2, 1), padding="same")[0, 0]
        assert len(steps) == expected.size
        assert steps[0].index == (0, 0) and steps[1].index == (0, 1)  # along the row first
        for step in steps:
            assert step.value == pytest.approx(expected[step.index])
            assert step.terms is not None and step.terms.sum() == pytest.approx(step.value)
    pooled = ops.pool_steps(x, 2, strides=1, op="avg")
    assert [s.value for s in pooled] == pytest.approx(ops.avg_pool(x, 2, 1).ravel().tolist())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ops.convolve(np.ones(3), np.ones((2, 2))), "same number of dimensions"),
        (lambda: ops.convolve(np.ones(3), np.ones(2), "middle"), "mode must be"),
        (lambda: ops.correlate(np.ones((2, 5)), np.ones((3, 1)), "valid"), "at least as large"),
        (lambda: ops.convolve(np.ones(0), np.ones(2)), "must not be empty"),
        (lambda: ops.conv(np.ones((1, 2, 5, 5)), np.ones((4, 3, 3, 3))), "same C_in"),
        (lambda: ops.conv(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "larger than the padded"),
        (lambda: ops.max_pool(np.ones((4, 4)), 2, padding="full"), "padding must be"),
        (lambda: ops.max_pool(np.ones((4, 4)), (2, 2, 2)), "does not fit an input"),
        (lambda: ops.avg_pool(np.ones((4, 4)), 2, strides=0), "positive integer"),
        (lambda: ops.output_size(4, 0), "kernel must be a positive integer"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
