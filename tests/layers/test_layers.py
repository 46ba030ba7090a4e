"""Keras-vocabulary layers: shapes at build time, what they compute, and their errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from cnnkit import ops
from cnnkit.errors import ModelError
from cnnkit.layers import (
    ACTIVATIONS,
    Activation,
    Add,
    AveragePooling1D,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv1D,
    Conv2D,
    Conv3D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    Input,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
    Model,
    Reshape,
    Sequential,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def run(layer, shape, batch: int = 2) -> torch.Tensor:
    """Build ``layer`` for ``shape`` and run it; the built shape must be the real one."""
    built = layer.build(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's padding='same' warning for even kernels
        y = layer(torch.randn(batch, *shape))
    assert tuple(y.shape[1:]) == built
    return y


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (Conv2D(32, 4, padding="same"), (1, 28, 28), (32, 28, 28)),
        (Conv2D(8, (3, 2), strides=(2, 3), padding="same"), (3, 11, 10), (8, 6, 4)),
        (Conv2D(64, 9, strides=2), (3, 32, 32), (64, 12, 12)),
        (Conv1D(4, 3, padding="same", strides=2), (2, 9), (4, 5)),
        (Conv3D(2, 2, padding="same"), (1, 4, 5, 6), (2, 4, 5, 6)),
        (MaxPooling2D(), (3, 7, 7), (3, 3, 3)),
        (MaxPooling2D(3, 2, padding="same"), (3, 7, 8), (3, 4, 4)),
        (AveragePooling2D(2, 1), (1, 3, 3), (1, 2, 2)),
        (MaxPooling1D(2), (5, 9), (5, 4)),
        (AveragePooling1D(3, padding="same"), (5, 10), (5, 4)),
        (MaxPooling3D(2), (1, 4, 4, 4), (1, 2, 2, 2)),
        (GlobalAveragePooling2D(), (16, 5, 5), (16,)),
        (GlobalMaxPooling1D(), (16, 5), (16,)),
        (Flatten(), (64, 7, 7), (3136,)),
        (Reshape((1, 28, -1)), (784,), (1, 28, 28)),
        (Dense(10, activation="softmax"), (20,), (10,)),
        (Dropout(0.5), (4, 3, 3), (4, 3, 3)),
        (BatchNormalization(), (4, 3, 3), (4, 3, 3)),
        (BatchNormalization(), (7,), (7,)),
        (Activation("gelu"), (4, 3), (4, 3)),
    ],
    ids=lambda v: v.kind if hasattr(v, "kind") else None,
)
def test_output_shapes_are_worked_out_at_build(layer, shape, expected) -> None:
    assert run(layer, shape).shape[1:] == expected


@pytest.mark.parametrize("kernel", [2, 3, 4, (4, 1)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv2d_same_padding_is_kerass(kernel, stride) -> None:
    layer = Conv2D(3, kernel, strides=stride, padding="same")
    x = torch.randn(2, 2, 9, 10, dtype=torch.float64)
    layer.build((2, 9, 10))
    layer.double()
    expected = ops.conv(
        x.numpy(),
        layer.conv.weight.detach().numpy(),
        layer.conv.bias.detach().numpy(),
        stride=stride,
        padding="same",
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("pool", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize(("size", "stride"), [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_pooling_same_padding_is_kerass(pool, size, stride) -> None:
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    layer = pool(size, stride, padding="same")
    run(layer, (3, 7, 8))
    reference = ops.max_pool if pool is MaxPooling2D else ops.avg_pool
    expected = reference(x.numpy(), (size, size), stride, "same")
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-10)


def test_keras_default_initialisers() -> None:
    layer = Conv2D(16, 3)
    layer.build((8, 10, 10))
    fan_in, fan_out = 8 * 9, 16 * 9
    bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot uniform
    weight = layer.conv.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.std()) > bound / 3
    assert torch.count_nonzero(layer.conv.bias) == 0


def test_batch_normalization_uses_kerass_momentum_and_epsilon() -> None:
    layer = BatchNormalization()
    layer.build((4, 2, 2))
    assert layer.norm.momentum == pytest.approx(0.01) and layer.norm.eps == pytest.approx(1e-3)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(name: str) -> None:
    y = run(Activation(name), (3, 4))
    if name == "softmax":
        torch.testing.assert_close(y.sum(dim=1), torch.ones(2, 4))
    if name == "leaky_relu":
        assert float(Activation("leaky_relu")(torch.tensor([[-1.0]]))) == pytest.approx(-0.2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_1_minus_rate_scaled_and_passes_the_same_mask_back(dtype) -> None:
    layer = Dropout(0.25)
    layer.build((32, 14, 14))
    x = torch.rand(64, 32, 14, 14).add_(0.5).to(dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    torch.manual_seed(0)
    y = layer(x)
    kept = y != 0
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    assert abs(kept.float().mean().item() - 0.75) < 0.01  # 401,408 draws: sd 0.0007
    torch.testing.assert_close(y[kept], (x[kept] / 0.75).to(dtype))
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept.to(dtype) / 0.75)
    torch.manual_seed(0)
    assert torch.equal(layer(x), y)  # seeded: the same mask again
    layer.eval()
    assert torch.equal(layer(x), x)


def test_add_and_concatenate() -> None:
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    add = Add()
    assert add.build((3, 4, 4), (3, 4, 4)) == (3, 4, 4)
    torch.testing.assert_close(add(a, b), a + b)
    torch.testing.assert_close(Add()([a, b]), a + b)  # eager call with a list, as in Keras
    cat = Concatenate()
    assert cat.build((3, 4, 4), (5, 4, 4)) == (8, 4, 4)
    assert cat(a, torch.randn(2, 5, 4, 4)).shape == (2, 8, 4, 4)


# -- errors name the layer and both shapes -------------------------------------------------


def test_dense_on_an_image_names_the_layer_and_both_shapes() -> None:
    with pytest.raises(ModelError) as error:
        Sequential([Input((1, 28, 28)), Conv2D(8, 3), Dense(10)])
    message = str(error.value)
    assert "'dense' (Dense)" in message and "(features,)" in message
    assert "(8, 26, 26)" in message and "Flatten()" in message


@pytest.mark.parametrize(
    ("layers", "fragments"),
    [
        ([Input((784,)), Conv2D(8, 3)], ["'conv2d' (Conv2D)", "(C, H, W)", "(784,)"]),
        ([Input((3, 4, 4)), Conv2D(8, 5)], ["'conv2d' (Conv2D)", "5x5", "(3, 4, 4)", "(0, 0)"]),
        (
            [Input((1, 8, 8)), MaxPooling2D(), MaxPooling2D(), MaxPooling2D(), MaxPooling2D()],
            ["'max_pooling2d_3' (MaxPooling2D)", "(1, 1, 1)", "(0, 0)"],
        ),
        ([Input((10,)), Reshape((3, 3))], ["'reshape' (Reshape)", "(10,)", "(3, 3)"]),
        ([Input((2, 5)), BatchNormalization(), MaxPooling2D()], ["(C, H, W)", "(2, 5)"]),
    ],
)
def test_shapes_a_layer_cannot_take(layers, fragments) -> None:
    with pytest.raises(ModelError) as error:
        Sequential(layers)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_add_of_different_shapes_names_both() -> None:
    x = Input((3, 8, 8))
    with pytest.raises(ModelError, match=r"Add.*\(16, 8, 8\) and \(16, 4, 4\)"):
        Add()([Conv2D(16, 3, padding="same")(x), Conv2D(16, 3, strides=2, padding="same")(x)])
    with pytest.raises(
        ModelError, match=r"Concatenate.*every axis but 0.*\(3, 8, 8\) and \(3, 4, 4\)"
    ):
        Concatenate()([x, MaxPooling2D()(Input((3, 8, 8)))])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Conv2D(0, 3), "filters must be a positive integer"),
        (lambda: Conv2D(8, (3, 3, 3)), "kernel_size must be a positive integer or 2"),
        (lambda: Conv2D(8, 3, padding="full"), "padding must be 'valid' or 'same'"),
        (lambda: Conv2D(8, 3, activation="relu7"), "unknown activation 'relu7'; choose one of"),
        (lambda: MaxPooling2D(strides=0), "strides must be a positive integer"),
        (lambda: Dense(-1), "units must be a positive integer"),
        (lambda: Dropout(1.5), r"rate must be in \[0, 1\)"),
        (lambda: Reshape((2, -1, -1)), "at most one -1"),
        (lambda: BatchNormalization(momentum=1.5), "momentum must be in"),
        (lambda: Input((0, 28, 28)), "Input shape must be positive"),
        (lambda: Dense(3, name="my layer"), "must start with a letter"),
    ],
)
def test_bad_arguments(make, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        make()


# -- Sequential and functional models -------------------------------------------------------


def test_sequential_add_builds_as_it_goes_and_names_like_keras() -> None:
    model = Sequential(name="net")
    model.add(Input((1, 12, 12)))
    model.add(Conv2D(4, 3, activation="relu"))
    model.add(Conv2D(4, 3))
    assert model.output_shape == (4, 8, 8)
    model.add(Flatten())
    model.add(Dense(5))
    names = [layer.name for layer, _ in model.nodes]
    assert names == ["conv2d", "conv2d_1", "flatten", "dense"]
    assert model(torch.zeros(3, 1, 12, 12)).shape == (3, 5)
    assert model.num_features == 256 and model.head.out_features == 5


def test_sequential_without_input_builds_later() -> None:
    model = Sequential([Conv2D(4, 3), Flatten(), Dense(2)])
    with pytest.raises(ModelError, match=r"has no input shape yet.*build\(\(C, H, W\)\)"):
        model(torch.zeros(1, 1, 5, 5))
    model.build((1, 5, 5))
    assert model(torch.zeros(1, 1, 5, 5)).shape == (1, 2)
    with pytest.raises(ModelError, match=r"built for input \(1, 5, 5\), not \(1, 6, 6\)"):
        model.build((1, 6, 6))


def test_a_failed_add_leaves_the_model_unchanged() -> None:
    model = Sequential([Input((1, 4, 4)), Flatten()])
    with pytest.raises(ModelError):
        model.add(Conv2D(2, 3))
    model.add(Dense(3))
    assert model(torch.zeros(1, 1, 4, 4)).shape == (1, 3)


def test_sequential_rejects_misplaced_input_and_non_layers() -> None:
    with pytest.raises(ModelError, match="Input"):
        Sequential([Flatten(), Input((3,))])
    with pytest.raises(ModelError, match="takes a layer such as"):
        Sequential([torch.nn.ReLU()])


def test_functional_residual_model() -> None:
    x = Input((3, 8, 8))
    y = Conv2D(4, 3, padding="same", activation="relu")(x)
    y = Conv2D(4, 3, padding="same")(y)
    shortcut = Conv2D(4, 1)(x)
    y = Activation("relu")(Add()([shortcut, y]))
    model = Model(x, Dense(6)(GlobalAveragePooling2D()(y)), name="tiny_res")
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 6)
    wiring = {layer.name: inputs for layer, inputs in model.nodes}
    assert wiring["add"] == ("conv2d_2", "conv2d_1") and wiring["conv2d_2"] == ("input",)
    assert model.forward_features(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_functional_errors() -> None:
    x = Input((3, 8, 8))
    layer = Conv2D(4, 3)
    layer(x)
    with pytest.raises(ModelError, match="already been called"):
        layer(x)
    with pytest.raises(ModelError, match="does not depend on its input"):
        Model(Input((3, 8, 8)), Flatten()(x))
    with pytest.raises(ModelError, match="two layers are named 'same'"):
        Model(x, Flatten(name="same")(Conv2D(2, 3, name="same")(x)))


def test_reset_classifier_swaps_the_head_and_updates_the_spec() -> None:
    model = Sequential([Input((1, 6, 6)), Flatten(), Dense(8, activation="relu"), Dense(10)])
    model.reset_classifier(3)
    assert model(torch.zeros(2, 1, 6, 6)).shape == (2, 3)
    assert model.get_config()["layers"][-1] == {"Dense": {"units": 3, "name": "dense_1"}}


def test_a_model_ending_in_softmax_has_no_head_to_swap() -> None:
    model = Sequential([Input((4,)), Dense(3, activation="softmax")])
    torch.testing.assert_close(model(torch.randn(2, 4)).sum(dim=1), torch.ones(2))
    with pytest.raises(ModelError, match="no Dense head"):
        model.reset_classifier(2)
