"""Callbacks: early stopping, LR on plateau, checkpoints, the NaN guard, monitors, order."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from cnnkit.errors import ConfigError, TrainingError
from cnnkit.train import checkpoint as checkpoint_module
from cnnkit.train.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    ModelCheckpoint,
    Monitor,
    NanGuard,
    ReduceLROnPlateau,
    TrainState,
)
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.loop import fit

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py

KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


def scripted_state(model: nn.Module | None = None) -> TrainState:
    return TrainState(model=model or nn.Linear(2, 2), epochs=99, steps_per_epoch=1, log_keys=KEYS)


def feed(callback: Callback, values: list[float], key: str = "val_loss") -> TrainState:
    """Run ``callback`` over epochs whose ``key`` takes ``values``; stop when it says so."""
    state = scripted_state()
    callback.set_state(state)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        lr = 0.1 * state.lr_scale
        callback.on_epoch_end(epoch, {"val_loss": 1.0, "val_accuracy": 0.5, key: value, "lr": lr})
        if state.stop_training:
            break
    return state


def test_early_stopping_waits_patience_epochs_then_stops() -> None:
    state = feed(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7])
    assert state.training["stopped_epoch"] == 4  # epochs 3 and 4 did not beat 0.8
    assert state.training["best_epoch"] == 2 and state.training["monitor"] == "val_loss"


def test_early_stopping_on_accuracy_maximises_and_respects_min_delta() -> None:
    state = feed(
        EarlyStopping("val_accuracy", patience=1, min_delta=0.01),
        [0.90, 0.905, 0.95, 0.951],
        key="val_accuracy",
    )
    assert state.training["stopped_epoch"] == 2  # +0.005 is below min_delta
    state = feed(
        EarlyStopping("val_accuracy", patience=2, min_delta=0.01),
        [0.9, 0.95, 0.96],
        key="val_accuracy",
    )
    assert state.training["best_epoch"] == 2 and "stopped_epoch" not in state.training


def test_early_stopping_restores_the_best_weights() -> None:
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=1, restore_best_weights=True)
    stopper.set_state(scripted_state(model))
    stopper.on_train_begin()
    for epoch, (value, weight) in enumerate([(1.0, 1.0), (0.5, 2.0), (0.9, 3.0)]):
        with torch.no_grad():
            model.weight.fill_(weight)
        stopper.on_epoch_end(epoch, {"val_loss": value})
    stopper.on_train_end()
    assert torch.all(model.weight == 2.0)
    assert stopper.state.training["restored_best_weights"] is True


def test_reduce_lr_on_plateau_follows_keras_rules() -> None:
    plateau = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.03)
    state = feed(plateau, [1.0] * 12)
    # 0.1 -> 0.05 after 2 flat epochs (epoch 3); 2 epochs of cooldown, 2 of patience, then
    # 0.025 would go below min_lr: clamped to 0.03 (epoch 6), and never lowered again
    assert state.training["lr_reductions"] == [3, 6]
    assert state.lr_scale == pytest.approx(0.3)


def test_reduce_lr_min_delta_counts_tiny_gains_as_no_improvement() -> None:
    state = feed(ReduceLROnPlateau(factor=0.1, patience=1, min_delta=0.01), [1.0, 0.995])
    assert state.training["lr_reductions"] == [2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EarlyStopping(patience=-1), "patience must be >= 0"),
        (lambda: ReduceLROnPlateau(factor=1.5), "factor must be between 0 and 1"),
        (lambda: ReduceLROnPlateau(cooldown=-1), "must be >= 0"),
        (lambda: EarlyStopping(mode="up"), "mode must be min, max or auto"),
        (lambda: Monitor("val_loss", min_delta=-1), "min_delta must be >= 0"),
    ],
)
def test_bad_callback_options_are_rejected(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_monitor_the_logs_never_hold_fails_at_the_start(mini, tiny_model) -> None:
    train, _, pre = mini
    with pytest.raises(ConfigError, match=r"monitors 'val_loss'.*need validation data"):
        fit(tiny_model(), train=train, preprocessing=pre, callbacks=[EarlyStopping()], epochs=1)
    with pytest.raises(ConfigError, match="'val_acc', which the training logs never contain"):
        fit(
            tiny_model(),
            train=train,
            val=train,
            preprocessing=pre,
            callbacks=[ReduceLROnPlateau("val_acc")],
            epochs=1,
        )


def test_callbacks_run_in_order_and_keep_distinct_state_keys() -> None:
    calls: list[str] = []

    class Named(Callback):
        def __init__(self, name: str, order: int) -> None:
            self.name, self.order = name, order

        def on_train_begin(self) -> None:
            calls.append(self.name)

        def state_dict(self):
            return {"name": self.name}

    hooks = CallbackList([Named("late", 100), Named("early", -100), Named("mid", 0)])
    hooks.on_train_begin()
    assert calls == ["early", "mid", "late"]
    assert list(hooks.state_dict()) == ["Named", "Named#2", "Named#3"]


def test_checkpoints_hold_last_and_best(mini, tiny_model, tmp_path) -> None:
    train, val, pre = mini
    model = tiny_model()
    history = fit(
        model,
        train=train,
        val=val,
        preprocessing=pre,
        epochs=2,
        batch_size=128,
        lr=0.01,
        callbacks=[ModelCheckpoint(tmp_path, monitor="val_accuracy")],
    )
    last = load_checkpoint(tmp_path / "last.pt")
    best = load_checkpoint(tmp_path / "best.pt")
    assert last["position"] == {"epoch": 2, "batch": 0} and len(last["history"]) == 2
    best_epoch = max(history, key=lambda row: row["val_accuracy"])["epoch"]
    assert best["epoch"] == best_epoch == history.training["checkpoint_best_epoch"]
    assert all(torch.equal(last["model"][k], v) for k, v in model.state_dict().items())


class NanAfter:
    """A cross-entropy loss that turns NaN after ``step`` training batches."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.calls += logits.requires_grad  # validation batches do not count
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        return loss * float("nan") if self.calls > self.step else loss


def test_nan_guard_stops_with_a_clear_message_and_keeps_the_good_checkpoint(
    mini, tiny_model, tmp_path
) -> None:
    train, val, pre = mini
    steps = 5  # 640 samples / batch 128
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_loss")
    with pytest.raises(TrainingError, match=r"loss became nan at batch 3 of epoch 2.*--lr"):
        fit(
            tiny_model(),
            train=train,
            val=val,
            preprocessing=pre,
            loss=NanAfter(steps + 2),
            epochs=3,
            batch_size=128,
            callbacks=[checkpoint, NanGuard()],
        )
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["position"]["epoch"] == 1  # written after epoch 1, never after
    assert all(
        bool(torch.isfinite(t).all()) for t in last["model"].values() if t.is_floating_point()
    )


def test_nan_guard_checks_epoch_logs_too() -> None:
    guard = NanGuard()
    guard.set_state(scripted_state())
    with pytest.raises(TrainingError, match=r"inf at epoch 4 \(val_loss\)"):
        guard.on_epoch_end(3, {"loss": 0.1, "val_loss": float("inf")})


def test_a_crash_inside_a_save_leaves_the_previous_checkpoint_intact(
    mini, tiny_model, tmp_path, monkeypatch
) -> None:
    train, _, pre = mini
    fit(
        tiny_model(),
        train=train,
        preprocessing=pre,
        epochs=1,
        batch_size=128,
        callbacks=[ModelCheckpoint(tmp_path, monitor=None)],
    )
    before = (tmp_path / "last.pt").read_bytes()

    def crashing_save(payload, path) -> None:
        with open(path, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        fit(
            tiny_model(),
            train=train,
            preprocessing=pre,
            epochs=1,
            batch_size=128,
            callbacks=[ModelCheckpoint(tmp_path, monitor=None)],
        )
    assert (tmp_path / "last.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind
