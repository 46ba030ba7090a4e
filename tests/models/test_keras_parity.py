"""Every zoo model's parameter counts equal what Keras 3 builds from the same layers.

Each model's spec is replayed layer by layer through ``keras.layers`` (torch backend, so no
TensorFlow is needed) and Keras's total / trainable / non-trainable counts are compared with
cnnkit's summary. Keras is in the ``dev`` extra; without it the test is skipped.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from cnnkit.layers.summary import summary
from cnnkit.models.registry import build_model, get_model_entry, list_models

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*"),
]

BIG = {"vgg1", "vgg2", "vgg3", "vgg4"}  # 35-84M parameters at 3x32x32: -m slow


@pytest.fixture(scope="module")
def keras(tmp_path_factory):
    os.environ["KERAS_BACKEND"] = "torch"  # Keras 3 on the installed torch, no TensorFlow
    os.environ.setdefault("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
    return pytest.importorskip("keras", reason="Keras 3 (dev extra) builds the reference models")


def to_keras(keras: Any, spec: dict[str, Any]) -> Any:
    """The Keras model for a cnnkit spec: channels-last shapes, same layers, same wiring."""
    entries = spec["layers"]
    ((kind, config),) = entries[0].items()
    if kind != "Input":
        raise AssertionError("zoo specs start with their Input")
    c, *spatial = config["shape"]
    inputs = keras.Input((*spatial, c))
    tensors = {config.get("name", "input"): inputs}
    previous = inputs
    for entry in entries[1:]:
        ((kind, config),) = entry.items()
        config = dict(config)
        names = config.pop("inputs", None)
        if kind == "Concatenate":
            config["axis"] = -1 if config.get("axis", 0) == 0 else config["axis"]
        if kind == "Reshape":
            channels, *rest = config["target_shape"]
            config["target_shape"] = (*rest, channels)
        layer = getattr(keras.layers, kind)(**config)
        args = [previous] if names is None else [tensors[n] for n in names]
        previous = layer(args if len(args) > 1 else args[0])
        tensors[config["name"]] = previous
    return keras.Model(inputs, previous)


def keras_counts(model: Any) -> tuple[int, int, int]:
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return model.count_params(), trainable, frozen


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(e.name, marks=pytest.mark.slow) if e.name in BIG else e.name
        for e in list_models()
    ],
)
def test_counts_equal_kerass_at_the_default_input(keras, name: str) -> None:
    shape = get_model_entry(name).default_input_shape
    model = build_model(name, input_shape=shape, num_classes=10)
    if not hasattr(model, "get_config"):  # written in torch, not in cnnkit.layers (no spec)
        pytest.skip(f"{name} is not built from cnnkit.layers, so Keras cannot replay it")
    ours = summary(model, shape)
    expected = keras_counts(to_keras(keras, model.get_config()))
    assert (ours.total_params, ours.trainable_params, ours.non_trainable_params) == expected


@pytest.mark.parametrize("name", sorted(BIG))
def test_vgg_counts_equal_kerass_on_small_inputs(keras, name: str) -> None:
    model = build_model(name, input_shape=(3, 8, 8), num_classes=10)
    ours = summary(model, (3, 8, 8))
    expected = keras_counts(to_keras(keras, model.get_config()))
    assert (ours.total_params, ours.trainable_params, ours.non_trainable_params) == expected


def test_layer_vocabulary_counts_equal_kerass(keras) -> None:
    """Layers the zoo does not use: 1-D/3-D convs, asymmetric strides, Concatenate, no bias."""
    from cnnkit.layers import (
        Add,
        BatchNormalization,
        Concatenate,
        Conv2D,
        Dense,
        Flatten,
        Input,
        Model,
        Reshape,
    )

    x = Input((3, 9, 7))
    a = Conv2D(5, (3, 2), strides=(2, 1), padding="same", use_bias=False)(x)
    b = BatchNormalization(momentum=0.9)(Conv2D(4, 1, strides=(2, 1))(x))
    y = Concatenate()([a, b])
    y = Add()([y, Conv2D(9, 3, strides=(2, 1), padding="same")(x)])
    y = Reshape((9, -1))(y)
    model = Model(x, Dense(4)(Flatten()(y)))
    ours = summary(model)
    expected = keras_counts(to_keras(keras, model.get_config()))
    assert (ours.total_params, ours.trainable_params, ours.non_trainable_params) == expected
