"""Safety: Ctrl-C saves a resumable checkpoint; resuming gives bit-identical weights."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnnkit.errors import ConfigError, RunError, TrainingInterrupted
from cnnkit.run import Run
from cnnkit.train import callbacks as callbacks_module
from cnnkit.train.callbacks import Callback, ModelCheckpoint
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.job import TrainConfig, resume_training, run_training
from cnnkit.train.loop import fit
from tests.train.conftest import same_weights

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


class CtrlCAt(Callback):
    """Sends this process a real SIGINT after optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, batch: int) -> None:
        if self.state.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def settings(mini, **extra):
    train, val, pre = mini
    return {
        "train": train,
        "val": val,
        "preprocessing": pre,
        "epochs": 2,
        "batch_size": 128,
        "lr": 0.01,
        "schedule": "onecycle",
        "augment": None,
        **extra,
    }


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(
    mini, tiny_model, tmp_path, precision
) -> None:
    from cnnkit.augment import parse_augment

    # every kind of draw: probabilities, angles, grids, boxes, integer shifts, Beta weights
    augment = parse_augment("rotate:p=0.5,max=15; distort:p=0.5; translate:2; erase:p=0.3; mixup")
    kwargs = settings(mini, precision=precision, augment=augment)
    straight = tiny_model()
    fit(straight, **kwargs)

    interrupted = tiny_model()
    with pytest.raises(TrainingInterrupted) as caught:
        fit(interrupted, **kwargs, callbacks=[ModelCheckpoint(tmp_path), CtrlCAt(step=7)])
    assert caught.value.training["interrupted"] is True
    snapshot = load_checkpoint(tmp_path / "last.pt")
    assert snapshot["position"] == {"epoch": 1, "batch": 2} and snapshot["step"] == 7

    resumed = tiny_model(seed=123)  # whatever it starts from, the checkpoint replaces it
    history = fit(resumed, **kwargs, callbacks=[ModelCheckpoint(tmp_path)], resume=snapshot)
    assert [row["epoch"] for row in history] == [1, 2]
    assert same_weights(straight, resumed)


def test_a_second_ctrl_c_during_the_save_is_ignored(mini, tiny_model, tmp_path, monkeypatch):
    real_save = callbacks_module.ModelCheckpoint._write
    presses: list[str] = []

    def impatient_save(self, name, payload):  # the user presses Ctrl-C again mid-save
        os.kill(os.getpid(), signal.SIGINT)
        presses.append(name)
        real_save(self, name, payload)

    monkeypatch.setattr(callbacks_module.ModelCheckpoint, "_write", impatient_save)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    with pytest.raises(TrainingInterrupted):
        fit(
            tiny_model(),
            **settings(mini),
            callbacks=[ModelCheckpoint(tmp_path, monitor=None), CtrlCAt(step=2)],
        )
    assert presses == ["last.pt"]
    assert load_checkpoint(tmp_path / "last.pt")["position"] == {"epoch": 0, "batch": 2}
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_job_k_epochs_then_resume_equals_n_epochs(tiny_mnist_dir, tmp_path) -> None:
    common = {
        "data_dir": str(tiny_mnist_dir),
        "val_size": 200,
        "model": "fastnet_tiny",
        "batch_size": 128,
        "lr": 0.01,
        "device": "cpu",
        "runs_dir": str(tmp_path),
        "early_stopping": {"patience": 5},
        "reduce_lr": {"patience": 0, "factor": 0.5, "monitor": "val_accuracy"},
    }
    straight = run_training(TrainConfig(epochs=2, name="straight", **common))
    first = run_training(TrainConfig(epochs=1, name="resumed", **common))
    assert first.run.card.status == "finished"
    resumed = resume_training(first.run.path, epochs=2)
    assert resumed.run.path == first.run.path
    a = Run(straight.run.path).load_model()
    b = Run(resumed.run.path).load_model()
    assert same_weights(a, b)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert resumed.history[-1]["val_loss"] == straight.history[-1]["val_loss"]
    card = resumed.run.card
    assert card.config["epochs"] == 2
    assert card.training["lr_reductions"] == straight.training["lr_reductions"]
    with pytest.raises(ConfigError, match="already trained 2 of 2 epochs"):
        resume_training(first.run.path)


def test_resume_refuses_runs_without_checkpoint_or_with_changed_data(
    tiny_mnist_dir, tmp_path, mnist_parts
) -> None:
    result = run_training(
        TrainConfig(
            data_dir=str(tiny_mnist_dir),
            val_size=200,
            model="fastnet_tiny",
            epochs=1,
            device="cpu",
            runs_dir=str(tmp_path),
            name="r",
        )
    )
    with pytest.raises(RunError, match="differs from the data"):
        card = result.run.read_json("run.json")
        card["config"]["data_dir"] = None  # the full MNIST now: not what it was trained on
        result.run.write_json("run.json", card)
        resume_training(result.run.path, epochs=2)
    (result.run.path / "checkpoints" / "last.pt").unlink()
    with pytest.raises(RunError, match="no checkpoint there"):
        resume_training(result.run.path, epochs=2)


def test_checkpoints_load_only_safely(tmp_path) -> None:
    class Sneaky:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"model": Sneaky()}, handle, protocol=2)
    with pytest.raises(RunError, match="cannot be read as a cnnkit checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match="cannot be read"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(RunError, match="not a cnnkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.slow
def test_cli_ctrl_c_exits_non_zero_and_resume_finishes(tiny_mnist_dir, tmp_path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    args = [sys.executable, "-m", "cnnkit", "train", "--data-dir", str(tiny_mnist_dir)]
    args += ["--model", "fastnet_tiny", "--epochs", "200", "--device", "cpu"]
    args += ["--val-size", "200", "--runs-dir", str(tmp_path), "--name", "r"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    assert "cnnkit train --resume" in stderr.decode()
    assert stderr.decode().count("interrupted") == 1  # one line says it, with what to do
    card = Run(tmp_path / "r").card
    assert card.status == "interrupted" and card.training["interrupted"] is True
    done = load_checkpoint(last)["position"]
    resumed = subprocess.run(
        [*args[:4], "--resume", str(tmp_path / "r"), "--epochs", str(done["epoch"] + 1)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "test accuracy" in resumed.stdout and Run(tmp_path / "r").card.status == "finished"
