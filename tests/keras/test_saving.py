"""model.save / load_model and save_weights / load_weights: cnnkit's safe format, any name."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cnnkit import keras
from cnnkit.errors import RunError
from cnnkit.keras import layers

pytestmark = pytest.mark.usefixtures("single_thread")


def functional(seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 3, padding="same", kernel_initializer="he_normal")(inputs)
    x = layers.BatchNormalization()(x)
    x = keras.activations.relu(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="bn_net")


def test_save_and_load_model_round_trip(digits, tmp_path) -> None:
    (x, y), (x_test, y_test) = digits
    model = functional()
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.002),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x[:500] / 255.0, y[:500], epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:  # JSON + safetensors, no pickle
        assert sorted(archive.namelist()) == ["model.json", "model.safetensors"]
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.name == "bn_net" and loaded.optimizer.learning_rate == pytest.approx(0.002)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    expected = model.predict(x_test / 255.0, verbose=0)
    assert np.allclose(loaded.predict(x_test / 255.0, verbose=0), expected, atol=1e-6)
    assert loaded.evaluate(x_test / 255.0, y_test, verbose=0) == pytest.approx(
        model.evaluate(x_test / 255.0, y_test, verbose=0), rel=1e-5
    )


def test_save_weights_under_keras_names_and_load_them_back(tmp_path) -> None:
    model, other = functional(1), functional(5)
    sample = np.random.rand(3, 28, 28, 1).astype(np.float32)
    assert not np.allclose(model.predict(sample, verbose=0), other.predict(sample, verbose=0))
    model.save_weights(tmp_path / "w.weights.h5")
    other.load_weights(tmp_path / "w.weights.h5")
    assert np.allclose(model.predict(sample, verbose=0), other.predict(sample, verbose=0))
    with pytest.raises(RunError, match="exists; pass overwrite=True"):
        model.save_weights(tmp_path / "w.weights.h5", overwrite=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "Keras/TensorFlow HDF5 file"),
        (b"not weights", "not a weights file cnnkit.keras wrote"),
    ],
)
def test_foreign_files_are_refused_clearly(tmp_path, content, message) -> None:
    path = tmp_path / "w.h5"
    path.write_bytes(content)
    with pytest.raises(RunError, match=message):
        functional().load_weights(path)


def test_weights_of_another_architecture_are_refused(tmp_path) -> None:
    small = keras.Sequential([keras.Input((784,)), layers.Dense(10)])
    small.save_weights(tmp_path / "small.weights.h5")
    with pytest.raises(RunError, match=r"another architecture.*missing"):
        functional().load_weights(tmp_path / "small.weights.h5")
    with pytest.raises(RunError, match="weights only"):
        keras.models.load_model(tmp_path / "small.weights.h5")
    with pytest.raises(RunError, match="no such file"):
        keras.models.load_model(tmp_path / "missing.keras")


def test_get_config_rebuilds_the_model_with_initializer_objects() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(2, 3, kernel_initializer=keras.initializers.HeNormal())(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, bias_initializer=keras.initializers.Ones())(x)
    model = keras.Model(inputs, outputs, name="inits")
    config = model.get_config()
    assert config["layers"][0]["config"]["kernel_initializer"] == {
        "class": "he_normal",
        "config": {},
    }
    again = keras.models.model_from_config(config)
    assert isinstance(again, keras.Model) and again.name == "inits"
    assert again.get_config() == config
    assert bool((again.layers[-1].linear.bias == 1).all())
    with pytest.raises(RunError, match="model format 7 is not 1"):
        keras.models.model_from_config({**config, "format": 7})
