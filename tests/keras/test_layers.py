"""Keras's spellings and layout: the layers build and order values as Keras does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit import keras
from cnnkit.errors import ConfigError, ModelError
from cnnkit.keras import layers
from cnnkit.keras.unsupported import UnsupportedFeature


def test_keras_spellings_build_a_channels_last_model() -> None:
    model = keras.Sequential(
        [
            layers.Conv2D(
                32,
                (5, 5),
                strides=1,
                padding="SAME",
                activation="relu",
                input_shape=(28, 28, 1),
                name="first",
            ),
            layers.MaxPooling2D(pool_size=(2, 2), padding="Valid"),
            layers.Conv2D(64, 3, padding="same", kernel_initializer="he_normal"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers] == [
        "first",
        "max_pooling2d",
        "conv2d",
        "global_average_pooling2d",
        "dense",
    ]
    assert model.get_layer("conv2d").keras_shape(model.get_layer("conv2d").output_shape) == (
        14,
        14,
        64,
    )
    out = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
    assert out.shape == (2, 10) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_summary_prints_keras_table_with_channels_last_shapes(capsys) -> None:
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.summary()
    text = capsys.readouterr().out
    assert 'Model: "sequential"' in text
    assert "│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │" in text
    assert "(None, 21632)" in text
    # Keras 3 prints these three lines for this model (BatchNorm's moving statistics included)
    assert " Total params: 216,778 (846.79 KB)" in text
    assert " Trainable params: 216,714 (846.54 KB)" in text
    assert " Non-trainable params: 64 (256.00 B)" in text
    assert model.count_params() == 216_778


def test_functional_summary_shows_the_input_and_connections(capsys) -> None:
    x = keras.Input((8, 8, 3))
    a, b = layers.Conv2D(4, 3)(x), layers.Conv2D(4, 3)(x)
    y = layers.Dense(3)(layers.Flatten()(layers.Add()([a, b])))
    model = keras.Model(x, y)
    model.summary()
    text = capsys.readouterr().out
    assert "Connected to" in text and "conv2d[0][0]," in text and "input (InputLayer)" in text
    assert model.layers[0].name == "input" and len(model.layers) == 6


def test_flatten_and_reshape_order_values_as_keras() -> None:
    # a channels-last array flattens with the channel varying fastest, as NumPy's reshape
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    model = keras.Sequential([keras.Input((3, 4, 5)), layers.Flatten()])
    assert np.array_equal(model.predict(x, verbose=0), x.reshape(2, -1))
    back = keras.Sequential([keras.Input((60,)), layers.Reshape((3, 4, 5))])
    assert np.array_equal(back.predict(x.reshape(2, -1), verbose=0), x)
    inferred = keras.Sequential([keras.Input((60,)), layers.Reshape((-1, 5))])
    assert inferred.output_shape == (None, 12, 5)


def test_concatenate_axis_counts_the_batch_axis() -> None:
    x = keras.Input((4, 4, 2))
    joined = layers.Concatenate()([layers.Conv2D(3, 1)(x), layers.Conv2D(5, 1)(x)])
    assert keras.Model(x, joined).output_shape == (None, 4, 4, 8)
    x = keras.Input((4, 4, 2))
    rows = layers.concatenate([x, x], axis=1)
    assert keras.Model(x, rows).output_shape == (None, 8, 4, 2)


def test_channels_first_is_honoured() -> None:
    keras.backend.set_image_data_format("channels_first")
    try:
        model = keras.Sequential([keras.Input((1, 28, 28)), layers.Conv2D(4, 3), layers.Flatten()])
    finally:
        keras.backend.set_image_data_format("channels_last")
    assert model.output_shape == (None, 4 * 26 * 26)
    assert model.predict(np.zeros((1, 1, 28, 28)), verbose=0).shape == (1, 2704)


def test_activation_functions_on_symbolic_tensors_and_arrays() -> None:
    x = keras.Input((5,))
    y = keras.activations.relu(layers.Dense(4)(x))
    model = keras.Model(x, y)
    assert model.layers[-1].kind == "Activation"
    assert keras.activations.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    soft = keras.activations.softmax(torch.zeros(2, 4))
    assert torch.allclose(soft, torch.full((2, 4), 0.25))
    dense = layers.Dense(3, activation=keras.activations.sigmoid)
    assert dense.keras_activation == "sigmoid"


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax", "gelu", "leaky_relu", "linear"])
def test_each_activation_function_names_its_layer(name: str) -> None:
    function = getattr(keras.activations, name)
    assert layers.Activation(function).keras_activation == name
    assert keras.activations.get(name) is function
    assert keras.activations.serialize(function) == name


def test_a_custom_function_is_refused_even_under_a_known_name() -> None:
    def relu(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    with pytest.raises(UnsupportedFeature, match="custom function"):
        layers.Dense(3, activation=relu)


def test_every_cnnkit_layer_has_its_keras_class_in_the_saved_model_table() -> None:
    from cnnkit import layers as core

    assert set(core.LAYERS) < set(layers.LAYERS)
    assert all(cls.__module__ == "cnnkit.keras.layers" for cls in layers.LAYERS.values())
    assert all(issubclass(layers.LAYERS[name], core.LAYERS[name]) for name in core.LAYERS)


def test_initializers_by_name_and_object() -> None:
    torch.manual_seed(0)
    layer = layers.Dense(
        200, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5), bias_initializer="ones"
    )
    keras.Sequential([keras.Input((300,)), layer])
    assert abs(float(layer.linear.weight.detach().std()) - 0.5) < 0.02
    assert bool((layer.linear.bias == 1).all())
    he = layers.Conv2D(64, 3, kernel_initializer="he_normal")
    keras.Sequential([keras.Input((8, 8, 16)), he])
    expected = (2 / (3 * 3 * 16)) ** 0.5  # Keras's fan-in: kernel area x input channels
    assert abs(float(he.conv.weight.detach().std()) - expected) / expected < 0.1


def test_trainable_false_freezes_a_layer() -> None:
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(2)])
    model.layers[0].trainable = False
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    with pytest.raises(ModelError, match="no layer named 'nope'"):
        model.get_layer("nope")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: layers.Conv2D(8, 3, dilation_rate=2), "dilation_rate"),
        (lambda: layers.Dense(8, kernel_regularizer="l2"), "kernel_regularizer.*AdamW"),
        (lambda: layers.Conv1D(8, 3, padding="causal"), "causal"),
        (lambda: layers.Dense(8, activation="swishy"), "activation 'swishy'"),
        (lambda: layers.Dense(8, kernel_initializer="orthogonal"), None),
        (lambda: layers.Conv2DTranspose(8, 3), "Conv2DTranspose.*Conv2D"),
        (lambda: layers.LSTM(8), "image classifiers"),
        (lambda: keras.ops.relu, "keras.ops"),
        (lambda: keras.regularizers.l2(0.01), "AdamW"),
        (lambda: keras.layers.Denze, "Did you mean 'Dense'"),
    ],
)
def test_unsupported_features_name_the_nearest_form(make, message) -> None:
    if message is None:  # unknown initializers fail when the weights are made
        with pytest.raises(UnsupportedFeature, match="initializer 'orthogonal'"):
            keras.Sequential([keras.Input((3,)), make()])
        return
    with pytest.raises(UnsupportedFeature, match=message):
        make()
    assert issubclass(UnsupportedFeature, ConfigError)


def test_shape_errors_are_model_errors_naming_the_layer() -> None:
    with pytest.raises(ModelError, match=r"Dense.*Flatten"):
        keras.Sequential([keras.Input((8, 8, 1)), layers.Dense(4)])
    with pytest.raises(ModelError, match=r"window.*does not fit"):
        keras.Sequential([keras.Input((2, 2, 3)), layers.Conv2D(4, 5)])
    with pytest.raises(UnsupportedFeature, match="axis=1"):
        keras.Sequential([keras.Input((4, 4, 3)), layers.BatchNormalization(axis=1)])
    with pytest.raises(ModelError, match="data_format='channels_first'"):
        keras.Sequential(
            [keras.Input((4, 4, 3)), layers.Conv2D(2, 1, data_format="channels_first")]
        )
    with pytest.raises(UnsupportedFeature, match="subclassing"):
        keras.Model()
