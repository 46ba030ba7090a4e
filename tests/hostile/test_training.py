"""Damaged checkpoints, Ctrl-C after the last epoch and running out of memory, through
``cnnkit train --resume`` and the training API: a run always ends resumable or finished."""

from __future__ import annotations

import math
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from cnnkit.errors import TrainingError, TrainingInterrupted
from cnnkit.run import Run
from cnnkit.train import runner as runner_module
from cnnkit.train.callbacks import Callback
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.job import TrainConfig, resume_training, run_training
from tests.hostile.conftest import cli, snapshot

pytestmark = pytest.mark.usefixtures("single_thread")

CONV = "features.layers.s1_conv.conv.weight"  # fastnet_tiny's first convolution


def config(data_dir, runs_dir, name, **extra) -> TrainConfig:
    settings = {"model": "fastnet_tiny", "epochs": 1, "batch_size": 128, "lr": 0.01, **extra}
    return TrainConfig(
        data_dir=str(data_dir),
        val_size=200,
        device="cpu",
        runs_dir=str(runs_dir),
        name=name,
        **settings,
    )


@pytest.fixture(scope="module")
def one_epoch(tiny_mnist_dir, tmp_path_factory) -> Path:
    """A finished one-epoch run, with its checkpoints/last.pt."""
    return run_training(config(tiny_mnist_dir, tmp_path_factory.mktemp("runs"), "base")).run.path


def _set(path, value):
    def change(snap):
        *parents, last = path
        target = snap
        for key in parents:
            target = target[key]
        target[last] = value

    return change


DAMAGE = [
    (lambda s: s.pop("optimizer"), "optimizer is missing"),
    (lambda s: s.pop("model"), "not a cnnkit checkpoint (no model weights inside)"),
    (_set(["format"], 2), "format is 2, not 1"),
    (_set(["rng", "torch"], torch.zeros(3, dtype=torch.uint8)), "rng.torch has shape [3]"),
    (_set(["rng", "torch"], "seed"), "rng.torch must be a torch.uint8 tensor"),
    (_set(["position", "batch"], 10**9), "position.batch is 1000000000, out of range 0..7"),
    (_set(["position", "epoch"], -1), "position.epoch is -1"),
    (_set(["position"], [1, 0]), "position must be a dict"),
    (_set(["step"], "7"), "step must be a whole number"),
    (_set(["lr_scale"], math.nan), "lr_scale is nan"),
    (_set(["history"], {"a": 1}), "history must be a list of dicts"),
    # found by test_fuzz_runs: a row without its time failed in Run.finish with a KeyError
    (_set(["history"], [{}]), "history[0].epoch must be a whole number"),
    (_set(["history"], [{"epoch": 1, "time": "1s"}]), "history[0].time must be a number"),
    (lambda s: s["model"].pop(CONV), f"lacks ['{CONV}']"),
    (lambda s: s["model"].__setitem__(CONV, torch.zeros(2, 2)), f"{CONV} has shape [2, 2]"),
    (lambda s: s["model"][CONV].view(-1).__setitem__(0, math.inf), f"{CONV} holds NaN"),
    (lambda s: s["model"].__setitem__(CONV, s["model"][CONV].int()), "is I32"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(5)), "exp_avg has"),
    (lambda s: s["optimizer"].__setitem__("param_groups", []), "param_groups must be 1 dict"),
    (_set(["partial"], {"seen": 1}), "partial must be present exactly when"),
]


@pytest.mark.parametrize(("damage", "message"), DAMAGE)
def test_a_damaged_checkpoint_is_one_clear_error_and_changes_nothing(
    one_epoch, tmp_path, monkeypatch, capsys, damage, message
) -> None:
    run = Path(shutil.copytree(one_epoch, tmp_path / "run"))
    last = run / "checkpoints" / "last.pt"
    snap = load_checkpoint(last)
    damage(snap)
    torch.save(snap, last)
    before = snapshot(run)
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run), "--epochs", "2")
    text = " ".join(err.split())
    assert code == 1 and "Traceback" not in err, err
    assert "checkpoints/last.pt" in text and message in text, text
    assert snapshot(run) == before  # the card is put back: still finished, as it was


class SignalAt(Callback):
    """Presses Ctrl-C (a real SIGINT) at the end of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs) -> None:
        if epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_at_the_end_of_the_last_epoch_leaves_a_run_that_resume_finishes(
    tiny_mnist_dir, tmp_path, monkeypatch, capsys
) -> None:
    with pytest.raises(TrainingInterrupted) as caught:
        run_training(config(tiny_mnist_dir, tmp_path, "r", epochs=2), callbacks=[SignalAt(2)])
    run = Run(caught.value.run_path)
    assert run.card.status == "interrupted"
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["position"]["epoch"] == 2
    code, out, err = cli(monkeypatch, capsys, "train", "--resume", str(run.path))
    assert code == 0, err
    assert "test accuracy" in out
    assert run.card.status == "finished" and (run.path / "metrics.json").is_file()
    assert [row["epoch"] for row in run.read_json("history.json")] == [1, 2]
    run.load_model()  # the weights are there and sound
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run.path))
    assert code == 1 and "already trained 2 of 2 epochs" in err


def test_ctrl_c_while_evaluating_after_training_leaves_a_resumable_run(
    tiny_mnist_dir, tmp_path, monkeypatch, capsys
) -> None:
    real = runner_module.measure

    def pressed(*args, **kwargs):  # Ctrl-C arrives while the test split is evaluated
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "measure", pressed)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as caught:
            run_training(config(tiny_mnist_dir, tmp_path, "r"))
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(runner_module, "measure", real)
    run = Run(caught.value.run_path)
    assert run.card.status == "interrupted" and not (run.path / "metrics.json").exists()
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run.path))
    assert code == 0, err
    assert run.card.status == "finished" and (run.path / "metrics.json").is_file()


class OutOfMemoryAt(Callback):
    """Runs out of memory at a step: the GPU's error, or the CPU allocator's for real."""

    def __init__(self, step: int, kind: str) -> None:
        self.step, self.kind = step, kind

    def on_train_batch_end(self, batch: int) -> None:
        if self.state.step != self.step:
            return
        if self.kind == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the allocator refuses


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
def test_out_of_memory_gives_advice_and_a_resumable_run(
    tiny_mnist_dir, tmp_path, monkeypatch, capsys, kind
) -> None:
    settings = config(tiny_mnist_dir, tmp_path, "r", epochs=2)
    with pytest.raises(TrainingError) as caught:
        run_training(settings, callbacks=[OutOfMemoryAt(10, kind)])  # in epoch 2 (8 steps each)
    message = str(caught.value)
    run = Run(tmp_path / "r")
    assert "out of memory on cpu training with batch size 128" in message
    assert f"cnnkit train --resume {run.path} --batch-size 64" in message
    assert run.card.status == "failed" and run.card.error == message
    assert load_checkpoint(run.path / "checkpoints" / "last.pt")["position"]["epoch"] == 1
    code, _, err = cli(
        monkeypatch, capsys, "train", "--resume", str(run.path), "--batch-size", "64"
    )
    assert code == 0, err
    card = run.card
    assert card.status == "finished" and card.config["batch_size"] == 64
    assert [row["epoch"] for row in run.read_json("history.json")] == [1, 2]


def test_a_run_stopped_before_its_first_checkpoint_starts_over(tiny_mnist_dir, tmp_path):
    with pytest.raises(TrainingError):
        run_training(config(tiny_mnist_dir, tmp_path, "r"), callbacks=[OutOfMemoryAt(2, "cpu")])
    run = Run(tmp_path / "r")
    assert not (run.path / "checkpoints" / "last.pt").exists()
    result = resume_training(str(run.path))
    assert result.run.card.status == "finished" and len(result.history) == 1


class PoisonBatchNorm(Callback):
    """At the end of epoch 2, BatchNorm's running variance overflows (as an --lr 1e8 run's
    did) while the loss stays finite."""

    order = -200  # before the NaN guard looks

    def on_epoch_end(self, epoch: int, logs) -> None:
        if epoch == 1:
            norm = next(m for m in self.state.model.modules() if hasattr(m, "running_var"))
            norm.running_var.fill_(math.inf)


def test_non_finite_batchnorm_statistics_stop_training_and_are_never_saved(
    tiny_mnist_dir, tmp_path
) -> None:
    settings = config(tiny_mnist_dir, tmp_path, "r", epochs=3)
    with pytest.raises(TrainingError, match="weights or buffers became non-finite at epoch 2"):
        run_training(settings, callbacks=[PoisonBatchNorm()])
    run = Run(tmp_path / "r")
    assert run.card.status == "failed" and not (run.path / "weights.safetensors").exists()
    for name in ("last.pt", "best.pt"):
        saved = load_checkpoint(run.path / "checkpoints" / name)
        assert saved["epoch" if name == "best.pt" else "position"] in (1, {"epoch": 1, "batch": 0})
        assert all(
            torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point()
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", "ten", "config: training setting epochs must be a whole number, not 'ten'"),
        ("lr", [1], "training setting lr must be a number"),
        ("compile", 1, "training setting compile must be true or false"),
        ("model_options", [1, 2], "training setting model_options must be a dict"),
    ],
)
def test_a_tampered_config_section_is_one_clear_error(
    one_epoch, tmp_path, monkeypatch, capsys, field, value, message
) -> None:
    run = Path(shutil.copytree(one_epoch, tmp_path / "run"))
    card = Run(run).read_json("run.json")
    card["config"][field] = value
    Run(run).write_json("run.json", card)
    before = snapshot(run)
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run), "--epochs", "2")
    text = " ".join(err.split())
    assert code == 1 and "run.json: config:" in text and message in text, text
    assert snapshot(run) == before
