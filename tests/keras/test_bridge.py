"""model.save_run: a fitted cnnkit.keras model as a run folder the real CLI works on."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cnnkit import keras
from cnnkit.errors import ConfigError, RunError
from cnnkit.keras import layers
from cnnkit.run import Run
from tests.hostile.conftest import cli
from tests.keras.test_directory import write_folder


@pytest.fixture(autouse=True)
def exact_float32():
    """The CLI computes in float32; so does the model here (Keras's own policy), so the two
    can be compared exactly (by default cnnkit.keras computes in bf16 where the CPU has it)."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("auto")


def lenet_on_flat_vectors():
    """The textbook's LeNet input: flat 784 vectors with a Reshape first layer."""
    return keras.Sequential(
        [
            layers.Reshape((28, 28, 1), input_shape=(784,)),
            layers.Conv2D(8, 5, padding="SAME", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )


def write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


def predicted(monkeypatch, capsys, run, paths):
    code, out, err = cli(monkeypatch, capsys, "predict", str(run), *paths, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow  # evaluates 10,000 digits twice
def test_cli_evaluate_and_predict_agree_with_the_model(tmp_path, monkeypatch, capsys) -> None:
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    model = lenet_on_flat_vectors()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    flat = x_train[:1500].reshape(-1, 784).astype("float32") / 255
    model.fit(flat, keras.utils.to_categorical(y_train[:1500], 10), epochs=1, verbose=0)
    run = model.save_run(tmp_path / "lenet", data="mnist")
    card = run.card
    assert card.model.input_shape == (1, 28, 28)
    assert card.preprocessing.mean == (0.0,) and card.preprocessing.std == (1.0,)
    assert card.data.classes == tuple(str(i) for i in range(10))

    test = x_test.reshape(-1, 784).astype("float32") / 255
    loss, accuracy = model.evaluate(test, keras.utils.to_categorical(y_test, 10), verbose=0)
    code, out, err = cli(monkeypatch, capsys, "evaluate", str(run.path))
    assert code == 0, err
    metrics = json.loads((run.path / "metrics.json").read_text())["test"]
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)  # the same 10,000 digits
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)
    assert f"{accuracy:.2%}" in out

    paths = write_pngs(tmp_path / "digits", x_test[:6])
    rows = predicted(monkeypatch, capsys, run.path, paths)
    expected = model.predict(test[:6], verbose=0)
    assert [int(r["predicted"]) for r in rows] == expected.argmax(1).tolist()
    assert [r["probability"] for r in rows] == pytest.approx(expected.max(1).tolist(), abs=1e-5)
    assert isinstance(Run.open(run.path).load_model(), type(run.load_model()))


def test_raw_colour_pictures_keep_kerass_flatten_order(tmp_path, monkeypatch, capsys) -> None:
    """uint8 RGB pictures from a folder, channels last, Flatten + Dense: the run's model
    (fed channels-first images) must order the flat values as Keras did."""
    folder = write_folder(tmp_path / "photos")
    (folder / "red" / "broken.jpg").unlink()
    data = keras.utils.image_dataset_from_directory(
        folder, image_size=(6, 6), batch_size=8, seed=1, verbose=False
    )
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((6, 6, 3)), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(data, epochs=1, verbose=0)
    run = model.save_run(tmp_path / "colours")
    assert run.card.classes == ("blue", "green", "red")
    assert run.card.preprocessing.std == pytest.approx((1 / 255,) * 3)
    images, _ = data.arrays()
    rows = predicted(monkeypatch, capsys, run.path, data.file_paths)
    expected = model.predict(images, verbose=0)
    assert [r["predicted"] for r in rows] == [data.class_names[i] for i in expected.argmax(1)]
    assert [r["probability"] for r in rows] == pytest.approx(expected.max(1).tolist(), abs=1e-4)
    code, _, err = cli(monkeypatch, capsys, "evaluate", str(run.path))
    assert code == 1 and "records no data source; pass one with --data" in err
    assert "Traceback" not in err


def test_one_sigmoid_unit_becomes_two_classes(tmp_path, monkeypatch, capsys, digits) -> None:
    (x_train, y_train), (x_test, y_test) = digits
    keep = y_train < 2
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((28, 28)), layers.Flatten(), layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x_train[keep] / 255.0, y_train[keep], epochs=1, verbose=0)
    run = model.save_run(tmp_path / "binary", class_names=["zero", "one"])
    paths = write_pngs(tmp_path / "two", x_test[y_test < 2][:4])
    rows = predicted(monkeypatch, capsys, run.path, paths)
    ones = model.predict(x_test[y_test < 2][:4] / 255.0, verbose=0)[:, 0]
    chance_of_one = [
        r["probability"] if r["predicted"] == "one" else 1 - r["probability"] for r in rows
    ]
    assert chance_of_one == pytest.approx(ones.tolist(), abs=1e-5)


def test_save_run_refuses_what_it_cannot_record(tmp_path, digits) -> None:
    (x_train, y_train), _ = digits
    model = lenet_on_flat_vectors()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="fit"):
        model.save_run(tmp_path / "early")
    standardised = (x_train[:64].reshape(-1, 784) - 33.3) / 78.5
    model.fit(standardised, y_train[:64], epochs=1, verbose=0)
    with pytest.raises(ConfigError, match=r"scale=\.\.\., offset="):
        model.save_run(tmp_path / "a")
    with pytest.raises(ConfigError, match="class_names names 2 classes"):
        model.save_run(tmp_path / "b", class_names=["x", "y"], scale=1 / 78.5, offset=-33.3 / 78.5)
    with pytest.raises(ConfigError, match="classes"):
        model.save_run(tmp_path / "c", data="fashion-mnist", scale=1 / 78.5, offset=-33.3 / 78.5)
    run = model.save_run(tmp_path / "d", scale=1 / 78.5, offset=-33.3 / 78.5)
    assert run.card.preprocessing.mean[0] == pytest.approx(33.3 / 255)
    with pytest.raises(RunError, match="already exists"):
        model.save_run(tmp_path / "d", scale=1.0)


def test_the_keras_model_is_only_for_run_cards() -> None:
    from cnnkit.errors import ModelError
    from cnnkit.models.registry import build_model, list_models

    assert "keras" not in [entry.name for entry in list_models()]
    with pytest.raises(ModelError, match=r"model\.save_run"):
        build_model("keras", input_shape=(1, 28, 28), num_classes=10)
