"""Models built from layers train through run_training and come back from the run folder."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.evaluate.evaluation import evaluate_split
from cnnkit.layers import (
    Activation,
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    MaxPooling2D,
    Model,
    Sequential,
)
from cnnkit.models.spec import save_spec
from cnnkit.run import Run
from cnnkit.train.job import TrainConfig, run_training

pytestmark = pytest.mark.usefixtures("single_thread")


def functional_net() -> Model:
    x = Input((1, 28, 28))
    y = Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    z = BatchNormalization()(Conv2D(8, 3, padding="same")(y))
    y = Activation("relu")(Add()([y, z]))
    y = GlobalAveragePooling2D()(MaxPooling2D()(y))
    return Model(x, Dense(10)(y), name="tiny_functional")


def config(tmp_path, data_dir, model, **kwargs) -> TrainConfig:
    return TrainConfig(
        data_dir=str(data_dir),
        val_size=200,
        epochs=1,
        runs_dir=str(tmp_path),
        device="cpu",
        model=model,
        **kwargs,
    )


def test_a_python_functional_model_trains_and_reloads_from_the_run(tiny_mnist_dir, tmp_path):
    torch.manual_seed(0)
    model = functional_net()
    result = run_training(config(tmp_path, tiny_mnist_dir, model, name="functional"))
    record = result.run.card["model"]
    assert record["name"] == "tiny_functional" and record["input_shape"] == [1, 28, 28]
    assert record["spec"] == model.get_config()
    assert result.run.card["config"]["model"] == "tiny_functional"
    reloaded = Run.open(result.run.path).load_model()
    assert type(reloaded) is Model
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(reloaded(x), model(x))  # the trained weights, rebuilt
    again = evaluate_split(result.run.path, device="cpu").metrics
    assert {**again, "data": None} == {**result.metrics["test"], "data": None}


def test_a_yaml_spec_without_input_follows_the_data(tiny_mnist_dir, tmp_path):
    spec = tmp_path / "my_net.yaml"
    spec.write_text(
        "name: my_net\n"
        "layers:\n"
        "  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}\n"
        "  - MaxPooling2D: 2\n"
        "  - Flatten\n"
        "  - Dense: {units: num_classes}\n"
    )
    result = run_training(config(tmp_path, tiny_mnist_dir, str(spec)))
    assert result.run.path.name.startswith("my_net-mnist-")
    card = result.run.card
    assert card["config"]["model"] == str(spec)
    assert card["model"]["spec"]["layers"][0] == {"Input": {"shape": [1, 28, 28]}}
    assert card["model"]["parameters"] == 40 + 4 * 13 * 13 * 10 + 10
    again = evaluate_split(result.run.path, device="cpu").metrics
    assert {**again, "data": None} == {**result.metrics["test"], "data": None}


def test_spec_models_take_the_init_option(tiny_mnist_dir, tmp_path):
    spec = {"layers": ["Flatten", {"Dense": [10]}]}
    result = run_training(config(tmp_path, tiny_mnist_dir, spec, model_options={"init": "normal"}))
    assert result.run.card["model"]["options"] == {"init": "normal"}
    with pytest.raises(ModelError, match="takes only the option init, not dropout"):
        run_training(config(tmp_path, tiny_mnist_dir, spec, model_options={"dropout": 0.1}))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"layers": [{"Input": [3, 32, 32]}, "Flatten", {"Dense": [10]}]},
            r"spec's input shape is \(3, 32, 32\) but the data's images are \(1, 28, 28\)",
        ),
        ({"layers": ["Flatten", {"Dense": [7]}]}, "has 7 units but the data has 10 classes"),
        (
            {"layers": ["Flatten", {"Dense": {"units": 10, "activation": "softmax"}}]},
            "'dense' \\(Dense\\) is not a Dense layer without activation; cnnkit trains",
        ),
        (torch.nn.Linear(784, 10), "cannot record a Linear in a run directory"),
    ],
)
def test_models_that_do_not_fit_the_data_fail_before_training(
    tiny_mnist_dir, tmp_path, model, message
):
    with pytest.raises(ModelError, match=message):
        run_training(config(tmp_path, tiny_mnist_dir, model))
    assert not any(tmp_path.iterdir()), "no run folder is left behind"


def test_an_unbuilt_sequential_is_built_for_the_data(tiny_mnist_dir, tmp_path):
    model = Sequential([Flatten(), Dense(10)], name="linear")
    result = run_training(config(tmp_path, tiny_mnist_dir, model))
    assert model.input_shape == (1, 28, 28)
    assert result.run.card["model"]["parameters"] == 7850


def test_save_spec_writes_what_load_reads(tmp_path):
    from cnnkit.models.spec import load_spec

    model = functional_net()
    for suffix in ("yaml", "json"):
        path = save_spec(model, tmp_path / f"net.{suffix}")
        assert load_spec(path) == model.get_config()
    with pytest.raises(ModelError, match=r"ends in \.yaml"):
        save_spec(model, tmp_path / "net.txt")
