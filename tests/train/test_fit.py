"""The training loop on a real MNIST subset, and the train -> save -> evaluate round trip."""

from __future__ import annotations

import json

import pytest
import torch

from cnnkit.data.mnist import MNIST
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError, RunError
from cnnkit.evaluate.evaluation import evaluate_run, evaluate_split
from cnnkit.models.forward import loss_and_accuracy
from cnnkit.models.registry import build_model
from cnnkit.openmp import flushes_denormals
from cnnkit.run import Run
from cnnkit.train.callbacks import Callback
from cnnkit.train.job import TrainConfig, run_training
from cnnkit.train.loop import fit

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def small(mnist_parts):
    train = mnist_parts["train"].subset(range(2000))
    test = mnist_parts["test"].subset(range(500))
    return train, test, Preprocessing.from_dataset(train)


def test_fit_learns_mnist_subset(small) -> None:
    train, test, pre = small
    torch.manual_seed(0)
    model = build_model("lenet")
    before = loss_and_accuracy(model, test, preprocessing=pre)["accuracy"]
    history = fit(model, train=train, val=test, preprocessing=pre, epochs=2, batch_size=100)
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    assert before < 0.3 and history[-1]["val_accuracy"] > 0.85


def test_fit_is_reproducible_from_the_seed(small) -> None:
    train, _, pre = small
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("lenet")
        fit(
            model,
            train=train.subset(range(300)),
            preprocessing=pre,
            epochs=1,
            seed=5,
            optimizer="sgd",
            lr=0.01,
        )
        weights.append(model.head.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_callbacks_see_every_batch_and_can_stop_training(small) -> None:
    train, _, pre = small

    class StopAfterFirstEpoch(Callback):
        def __init__(self) -> None:
            self.batches = 0
            self.events: list[str] = []

        def on_train_begin(self) -> None:
            self.events.append("begin")

        def on_train_batch_end(self, batch: int) -> None:
            self.batches += 1

        def on_epoch_end(self, epoch: int, logs) -> None:
            self.events.append(f"epoch{epoch}")
            self.state.stop_training = True

        def on_train_end(self) -> None:
            self.events.append("end")

    cb = StopAfterFirstEpoch()
    history = fit(
        build_model("lenet"),
        train=train.subset(range(250)),
        preprocessing=pre,
        epochs=5,
        batch_size=100,
        callbacks=[cb],
    )
    assert len(history) == 1 and cb.batches == 3 and cb.events == ["begin", "epoch0", "end"]


def test_fit_records_whether_the_cpu_threads_flush_denormals(small) -> None:
    train, _, pre = small
    history = fit(
        build_model("fastnet_tiny"),
        train=train.subset(range(200)),
        preprocessing=pre,
        epochs=1,
        verbose=0,
    )
    assert history.training["flush_denormal"] is flushes_denormals()


def test_fit_flushes_denormals_while_it_trains_on_a_cpu(small) -> None:
    """Adam's decayed moments reach the denormal range, where a CPU is many times slower."""
    train, _, pre = small
    flushes = torch.set_flush_denormal(False)  # as a fresh process starts (tests may call main)
    tiny, seen = torch.tensor([1e-39]), []  # made after: a flushing thread would store 0

    class Probe(Callback):
        def on_epoch_end(self, epoch, logs) -> None:
            seen.append((tiny * 1.0).item())

    fit(
        build_model("fastnet_tiny"),
        train=train.subset(range(200)),
        preprocessing=pre,
        epochs=1,
        verbose=0,
        callbacks=[Probe()],
    )
    if flushes:  # a CPU that can flush them
        assert seen == [0.0]
    assert (tiny * 1.0).item() > 0  # and only while fit runs


def test_fit_rejects_bad_arguments(small) -> None:
    train, _, pre = small
    with pytest.raises(ConfigError, match="must be positive"):
        fit(build_model("lenet"), train=train, preprocessing=pre, epochs=0)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamw2'"):
        fit(build_model("lenet"), train=train, preprocessing=pre, optimizer="adamw2")


def test_train_save_evaluate_round_trip(tiny_mnist_dir, tmp_path) -> None:
    config = TrainConfig(
        data_dir=str(tiny_mnist_dir), val_size=200, epochs=1, runs_dir=str(tmp_path), device="cpu"
    )
    result = run_training(config)
    run = result.run
    for name in ("run.json", "weights.safetensors", "history.csv", "history.json", "metrics.json"):
        assert (run.path / name).is_file(), name
    card = run.card
    assert card.status == "finished"
    assert card.model.to_dict() == {
        "name": "lenet",
        "options": {},
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "parameters": 3_255_914,
    }
    assert card.data.sizes == {"train": 1000, "val": 200, "test": 300}
    assert card.data.classes == tuple(str(i) for i in range(10))
    assert len(card.preprocessing.mean) == 1 and card.preprocessing.fit == "pad"
    history = json.loads((run.path / "history.json").read_text())
    assert len(history) == 1 and "val_accuracy" in history[0]
    assert (run.path / "history.csv").read_text().startswith("epoch,loss,accuracy,val_loss")
    again = evaluate_split(run.path, device="cpu").metrics
    # the same numbers in the same shape; "data" says where each read the images from
    assert {**again, "data": None} == {**result.metrics["test"], "data": None}
    assert result.metrics["test"]["accuracy"] > 0.5


def test_evaluate_refuses_data_that_changed(tiny_mnist_dir, tmp_path, mnist_parts) -> None:
    result = run_training(
        TrainConfig(
            data_dir=str(tiny_mnist_dir),
            val_size=200,
            epochs=1,
            runs_dir=str(tmp_path),
            device="cpu",
            name="r",
        )
    )
    with pytest.raises(RunError, match="differs from the data the run was trained with"):
        evaluate_run(result.run.path, data_dir=str(MNIST.known_dirs[0]), device="cpu")


def test_open_rejects_folders_that_are_not_runs(tmp_path) -> None:
    with pytest.raises(RunError, match="not a cnnkit run directory"):
        Run.open(tmp_path)
    with pytest.raises(RunError, match="no such run directory"):
        Run.open(tmp_path / "absent")
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(RunError, match="not valid JSON"):
        _ = Run.open(tmp_path).card
