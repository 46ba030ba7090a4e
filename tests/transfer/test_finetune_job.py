"""A fine-tune runs through the same job runner as a train run: Ctrl-C leaves it
"interrupted" with a checkpoint that `cnnkit finetune --resume` continues, a NaN "failed",
and its metrics.json has the shape `cnnkit evaluate` writes."""

from __future__ import annotations

import json
import math
import os
import signal
import sys

import pytest
import torch
from safetensors.torch import load_file

from cnnkit.cli.main import main
from cnnkit.errors import TrainingError, TrainingInterrupted
from cnnkit.evaluate.evaluation import evaluate_split
from cnnkit.run import Run
from cnnkit.train.callbacks import Callback, HistoryWriter
from cnnkit.transfer.finetune import FinetuneConfig, finetune, resume_finetune
from tests.hostile.conftest import cli, edit_card

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest


def config(data_dir, runs_dir, **changes) -> FinetuneConfig:
    settings = {
        "data": "mnist",
        "data_dir": str(data_dir),
        "train_per_class": 2,
        "val_size": 0,
        "test_size": 20,
        "input_size": 32,  # small: a step of EfficientNet-Lite0 takes milliseconds
        "epochs": 2,
        "batch_size": 20,
        "runs_dir": str(runs_dir),
        "name": "ft",
        "device": "cpu",
        **changes,
    }
    return FinetuneConfig(**settings)


def args(data_dir, runs_dir) -> list[str]:
    return [
        "finetune",
        *("--data", "mnist", "--data-dir", str(data_dir)),
        *("--train-per-class", "2", "--val-size", "0", "--test-size", "20"),
        *("--input-size", "32", "--epochs", "2", "--batch-size", "20", "--device", "cpu"),
        *("--runs-dir", str(runs_dir), "--name", "ft", "--no-report"),
    ]


class PoisonBatchNorm(Callback):
    """At the end of epoch 1 a BatchNorm's running variance overflows (as an --lr 1e8 run's
    did) while the loss stays finite."""

    order = -200  # before the NaN guard looks

    def on_epoch_end(self, epoch: int, logs) -> None:
        norm = next(m for m in self.state.model.modules() if hasattr(m, "running_var"))
        norm.running_var.fill_(math.inf)


def test_a_nan_stops_a_fine_tune_and_marks_it_failed(tiny_mnist_dir, tmp_path) -> None:
    with pytest.raises(TrainingError, match="non-finite at epoch 1"):
        finetune(config(tiny_mnist_dir, tmp_path), callbacks=[PoisonBatchNorm()])
    run = Run(tmp_path / "ft")
    assert run.card.status == "failed" and "non-finite" in (run.card.error or "")
    assert not (run.path / "weights.safetensors").exists()
    assert not (run.path / "metrics.json").exists()


def test_ctrl_c_through_cnnkit_finetune_marks_the_run_interrupted(
    tiny_mnist_dir, tmp_path, monkeypatch, capsys
) -> None:
    real = HistoryWriter.on_epoch_end

    def pressed(self, epoch, logs):  # Ctrl-C (a real SIGINT) as the first epoch ends
        real(self, epoch, logs)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(HistoryWriter, "on_epoch_end", pressed)
    monkeypatch.setattr(sys, "argv", ["cnnkit", *args(tiny_mnist_dir, tmp_path)])
    monkeypatch.setenv("COLUMNS", "300")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert exited.value.code == 130 and "Traceback" not in err
    run = Run(tmp_path / "ft")
    assert " ".join(err.split()) == (
        f"interrupted; checkpoint saved. Continue with: cnnkit finetune --resume {run.path}"
    )
    assert run.card.status == "interrupted"
    assert [row["epoch"] for row in run.read_json("history.json")] == [1]
    assert not (run.path / "weights.safetensors").exists()

    # the command it printed finishes the run: the same weights as two epochs straight
    monkeypatch.undo()
    code, out, err = cli(monkeypatch, capsys, "finetune", "--resume", str(run.path), "--no-report")
    assert code == 0, err
    said = " ".join(out.split())  # the console may wrap long paths
    assert f"resuming {run.path} from its last checkpoint" in said and "test accuracy" in said
    assert run.card.status == "finished"
    assert [row["epoch"] for row in run.read_json("history.json")] == [1, 2]
    straight = finetune(config(tiny_mnist_dir, tmp_path, name="straight"))
    resumed, expected = load_file(run.files.weights), load_file(straight.run.files.weights)
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)


def test_resume_refuses_other_settings_and_the_other_kind_of_run(
    trained, tiny_mnist_dir, tmp_path, monkeypatch, capsys
) -> None:
    run = finetune(config(tiny_mnist_dir, tmp_path, epochs=1)).run
    code, _, err = cli(monkeypatch, capsys, "finetune", "--resume", str(run.path), "--lr", "0.1")
    assert code == 1 and "Traceback" not in err
    err = " ".join(err.split())  # the console may wrap long paths
    assert "only --epochs and --device (and --batch-size" in err and "not lr" in err
    code, _, err = cli(monkeypatch, capsys, "finetune", "--resume", str(run.path))
    assert code == 1 and "is finished: it has already trained 1 of 1 epochs" in " ".join(
        err.split()
    )
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run.path))
    assert code == 1 and "Traceback" not in err
    said = " ".join(err.split())
    assert f"is a fine-tuned run; continue it with cnnkit finetune --resume {run.path}" in said
    code, _, err = cli(monkeypatch, capsys, "finetune", "--resume", str(trained.path))
    assert code == 1 and "Traceback" not in err
    said = " ".join(err.split())
    assert f"was not fine-tuned; continue it with cnnkit train --resume {trained.path}" in said
    edit_card(run.path, config__batch_size="32", config__colour=True)  # a hand-edited card
    code, _, err = cli(monkeypatch, capsys, "finetune", "--resume", str(run.path))
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) <= 3
    said = " ".join(err.split())
    assert f"{run.files.card}: config: unknown fine-tuning setting(s) colour; known:" in said
    card = json.loads(run.files.card.read_text())
    del card["config"]["colour"]
    run.files.card.write_text(json.dumps(card))
    code, _, err = cli(monkeypatch, capsys, "finetune", "--resume", str(run.path))
    said = " ".join(err.split())
    assert code == 1 and "config: fine-tuning setting batch_size must be a whole number" in said


def test_a_fine_tune_resumed_for_more_epochs_unfreezes_on_schedule(
    tiny_mnist_dir, tmp_path
) -> None:
    run = finetune(config(tiny_mnist_dir, tmp_path, unfreeze_after=1)).run
    before = load_file(run.files.weights)
    result = resume_finetune(str(run.path), epochs=3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    after = load_file(run.files.weights)
    backbone = [k for k in before if not k.startswith("head.")]
    # epoch 3 starts after the unfreezing epoch: the backbone trains in it, as in epoch 2
    assert backbone and any(not torch.equal(before[k], after[k]) for k in backbone)


def test_ctrl_c_while_a_fine_tune_is_measured_marks_it_interrupted(
    tiny_mnist_dir, tmp_path, monkeypatch
) -> None:
    from cnnkit.train import runner

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "measure", pressed)
    with pytest.raises(TrainingInterrupted) as caught:
        finetune(config(tiny_mnist_dir, tmp_path, epochs=1))
    assert caught.value.run_path == str(tmp_path / "ft")
    assert Run(tmp_path / "ft").card.status == "interrupted"


def test_train_and_fine_tune_write_the_metrics_cnnkit_evaluate_writes(
    trained, tiny_mnist_dir, tmp_path
) -> None:
    result = finetune(config(tiny_mnist_dir, tmp_path, epochs=1))
    evaluated = evaluate_split(trained.path, device="cpu").metrics
    for run in (trained, result.run):
        saved = run.read_json("metrics.json")
        assert set(saved) == {"test"} or set(saved) == {"val", "test"}
        for split, metrics in saved.items():
            assert set(metrics) == set(evaluated), split
            assert metrics["split"] == split and metrics["samples"] > 0
    assert trained.read_json("metrics.json")["test"]["accuracy"] == pytest.approx(
        evaluated["accuracy"]
    )
