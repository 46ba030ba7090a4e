"""Callbacks: everything around the training loop that is not the loop itself.

Hook names follow Keras. The loop calls the hooks; callbacks read and may change the
shared :class:`TrainState` (for example set ``stop_training`` or lower ``lr_scale``). The
loop prints nothing: progress output is the :class:`ProgressBar` callback.

Write your own by subclassing :class:`Callback` and overriding the hooks you need. A callback
that keeps state across epochs returns it from :meth:`Callback.state_dict` so that a resumed
run continues exactly where the interrupted one stopped. Callbacks that decide something
(stopping, lowering the learning rate, the best epoch) record it in ``state.summary``, which
the training job writes into the run card's ``training`` section.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.atomic import atomic_open, write_json
from cnnkit.errors import ConfigError, TrainingError

log = logging.getLogger(__name__)

Logs = dict[str, float]


@dataclass
class TrainState:
    """What the loop shares with callbacks.

    Attributes:
        model: the model being trained (never the DDP or compiled wrapper).
        epochs: the number of epochs asked for.
        steps_per_epoch: optimizer steps in one epoch.
        epoch: index of the current (or last finished) epoch, from 0.
        step: optimizer steps taken so far in total.
        stop_training: set by a callback to end training after the current epoch.
        history: one logs dict per finished epoch (``epoch`` included, from 1).
        log_keys: the keys every epoch's logs will have (known before training starts).
        optimizer: the optimizer, once training has started.
        lr_scale: factor on the scheduled learning rate; lowered by ReduceLROnPlateau.
        batch_loss: the last batch's loss as a detached 0-d tensor (reading it waits for the
            device); None before the first batch.
        is_main: True in the process that writes files (rank 0 under DDP, else always).
        summary: decisions worth recording (``best_epoch``, ``stopped_epoch``, ``monitor``,
            ``lr_reductions``, ``precision``, ``interrupted``, ...).
        snapshot: returns a resumable checkpoint of the training state at this moment;
            set by the loop.
    """

    model: nn.Module
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    stop_training: bool = False
    history: list[Logs] = field(default_factory=list)
    log_keys: tuple[str, ...] = ()
    optimizer: torch.optim.Optimizer | None = None
    lr_scale: float = 1.0
    batch_loss: torch.Tensor | None = None
    is_main: bool = True
    summary: dict[str, Any] = field(default_factory=dict)
    snapshot: Callable[[], dict[str, Any]] | None = None


class Callback:
    """Base class: override the hooks you need. ``self.state`` is set before training.

    ``order`` sorts callbacks (stable, low first): guards run before anything that reacts
    to an epoch, checkpoints after everything whose state they save.
    """

    state: TrainState
    order: int = 0

    def set_state(self, state: TrainState) -> None:
        self.state = state

    def on_train_begin(self) -> None: ...

    def on_epoch_begin(self, epoch: int) -> None: ...

    def on_train_batch_end(self, batch: int) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Logs) -> None: ...

    def on_train_end(self) -> None: ...

    def on_interrupt(self) -> None:
        """Ctrl-C arrived; the loop stopped at a consistent point and will raise after this."""

    def state_dict(self) -> dict[str, Any]:
        """Whatever this callback must remember across a resume (tensors, numbers, lists)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class CallbackList(Callback):
    """Calls each hook on every callback, in ``order``."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)

    def set_state(self, state: TrainState) -> None:
        super().set_state(state)
        for cb in self.callbacks:
            cb.set_state(state)

    def on_train_begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin()

    def on_epoch_begin(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def on_train_batch_end(self, batch: int) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(batch)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end()

    def on_interrupt(self) -> None:
        for cb in self.callbacks:
            cb.on_interrupt()

    def _keys(self) -> list[str]:
        """``ClassName`` or ``ClassName#2`` for repeats: stable names across a resume."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    def state_dict(self) -> dict[str, Any]:
        return {key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks, strict=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, cb in zip(self._keys(), self.callbacks, strict=True):
            if key in state:
                cb.load_state_dict(state[key])
            elif cb.state_dict():
                log.warning("checkpoint holds no state for callback %s; it starts afresh", key)


# -- monitoring a logged quantity ------------------------------------------------------------


@dataclass
class Monitor:
    """Which logged value to watch and what counts as an improvement.

    Attributes:
        name: a logs key, e.g. ``val_loss``.
        mode: ``min``, ``max`` or ``auto`` (max for accuracies, min otherwise).
        min_delta: an improvement must beat the best value by more than this.
    """

    name: str
    mode: str = "auto"
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.mode == "auto":
            self.mode = "max" if "acc" in self.name else "min"
        if self.mode not in ("min", "max"):
            raise ConfigError(f"monitor mode must be min, max or auto, got {self.mode!r}")
        if self.min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0, got {self.min_delta}")

    def check(self, state: TrainState, owner: str) -> None:
        """Fail at the start, not silently later, when the logs will never hold the value."""
        if self.name not in state.log_keys:
            hint = (
                " (val_* values need validation data: --val-size > 0)" if "val" in self.name else ""
            )
            raise ConfigError(
                f"{owner} monitors {self.name!r}, which the training logs never contain{hint}; "
                f"they contain: {', '.join(state.log_keys)}"
            )

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``."""
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


def _model_is_finite(model: nn.Module) -> bool:
    """Parameters and floating buffers (BatchNorm's running statistics) are all finite."""
    return all(
        bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()
    )


# -- the callbacks ------------------------------------------------------------------------------


class NanGuard(Callback):
    """Stops training with a :class:`TrainingError` as soon as the loss is NaN or infinite.

    On the CPU every batch's loss is checked (free: the CPU has already computed it); on a
    GPU every ``gpu_every`` batches, to avoid waiting for the device each step. Every epoch's
    logs are checked too. It runs before every other callback, so nothing after it (a
    checkpoint in particular) ever sees the broken epoch.
    """

    order = -100

    def __init__(self, gpu_every: int = 50) -> None:
        self.gpu_every = gpu_every

    def on_train_batch_end(self, batch: int) -> None:
        loss = self.state.batch_loss
        if loss is None or (loss.device.type != "cpu" and batch % self.gpu_every):
            return
        if not bool(torch.isfinite(loss)):
            self._fail(float(loss), f"batch {batch + 1} of epoch {self.state.epoch + 1}")

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for key in ("loss", "val_loss"):
            if key in logs and not math.isfinite(logs[key]):
                self._fail(logs[key], f"epoch {epoch + 1} ({key})")
        if not _model_is_finite(self.state.model):  # a finite loss can hide an Inf running_var
            self._fail(float("nan"), f"epoch {epoch + 1}", what="weights or buffers")

    def _fail(self, value: float, where: str, what: str = "loss") -> None:
        self.state.summary["nan_detected"] = where
        shown = f"the loss became {value}" if what == "loss" else f"the {what} became non-finite"
        raise TrainingError(
            f"{shown} at {where}; training stopped and no checkpoint was "
            "written from this point on. Lower the learning rate (--lr), add warm-up "
            "(--schedule ...:warmup=1) or train in fp32 (--precision fp32)"
        )


class HistoryWriter(Callback):
    """Writes the per-epoch history to ``history.csv`` and ``history.json`` after each epoch."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if not self.state.is_main:
            return
        history = self.state.history
        write_json(self.directory / "history.json", history)
        columns: list[str] = []
        for row in history:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        with atomic_open(self.directory / "history.csv", "w") as handle:
            handle.write(buffer.getvalue())


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Args:
        monitor: logs key to watch (``val_loss``, ``val_accuracy``, ``loss``, ...).
        mode: ``min``, ``max`` or ``auto``.
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: at the end, put back the weights of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "auto",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ConfigError(f"EarlyStopping patience must be >= 0, got {patience}")
        self.monitor = Monitor(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_train_begin(self) -> None:
        self.monitor.check(self.state, "EarlyStopping")
        self.state.summary["monitor"] = self.monitor.name

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        value = logs[self.monitor.name]
        if self.monitor.improved(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            if self.restore_best_weights:
                self.best_weights = {
                    k: v.detach().to("cpu", copy=True)
                    for k, v in self.state.model.state_dict().items()
                }
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.state.stop_training = True
                self.state.summary["stopped_epoch"] = epoch + 1
        self.state.summary["best_epoch"] = self.best_epoch

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.state.model.load_state_dict(self.best_weights)
            self.state.summary["restored_best_weights"] = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving (Keras).

    Args:
        monitor: logs key to watch.
        factor: multiplier, 0 < factor < 1.
        patience: epochs without improvement before a reduction.
        mode: ``min``, ``max`` or ``auto``.
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the learning rate is never lowered below this.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if not 0 < factor < 1:
            raise ConfigError(f"ReduceLROnPlateau factor must be between 0 and 1, got {factor}")
        if patience < 0 or cooldown < 0 or min_lr < 0:
            raise ConfigError("ReduceLROnPlateau patience, cooldown and min_lr must be >= 0")
        self.monitor = Monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown, self.min_lr = factor, patience, cooldown, min_lr
        self.best: float | None = None
        self.wait = 0
        self.cooldown_left = 0
        self.reductions: list[int] = []

    def on_train_begin(self) -> None:
        self.monitor.check(self.state, "ReduceLROnPlateau")

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        value = logs[self.monitor.name]
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.monitor.improved(value, self.best):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch, logs["lr"])
        self.state.summary["lr_reductions"] = list(self.reductions)

    def _reduce(self, epoch: int, lr: float) -> None:
        new_lr = max(lr * self.factor, self.min_lr)
        if lr <= self.min_lr or new_lr >= lr:
            return
        self.state.lr_scale *= new_lr / lr
        self.reductions.append(epoch + 1)
        self.cooldown_left, self.wait = self.cooldown, 0
        log.info("epoch %d: learning rate reduced to %.3g", epoch + 1, new_lr)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "wait": self.wait,
            "cooldown_left": self.cooldown_left,
            "reductions": list(self.reductions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.cooldown_left, self.reductions = state["cooldown_left"], list(state["reductions"])


class ModelCheckpoint(Callback):
    """Writes ``last.pt`` (resumable) every epoch and ``best.pt`` when ``monitor`` improves.

    Both are written atomically and only from finite weights and logs, so a crash, Ctrl-C or
    a NaN can never leave a half-written or broken checkpoint in place of a good one. On
    Ctrl-C, ``last.pt`` is written from the point the loop stopped (mid-epoch included), and
    ``cnnkit train --resume`` continues from it.

    Args:
        directory: where the checkpoints go (created when needed).
        monitor: logs key deciding the best epoch; None keeps no ``best.pt``.
        mode: ``min``, ``max`` or ``auto``.
        save_last: keep ``last.pt`` up to date.
    """

    order = 100  # after every callback whose state the snapshot must include

    def __init__(
        self,
        directory: str | Path,
        *,
        monitor: str | None = "val_loss",
        mode: str = "auto",
        save_last: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.monitor = Monitor(monitor, mode) if monitor else None
        self.save_last = save_last
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_train_begin(self) -> None:
        if self.monitor is not None:
            self.monitor.check(self.state, "ModelCheckpoint")
            if self.state.summary.get("monitor") is None:  # EarlyStopping's monitor wins
                self.state.summary["monitor"] = self.monitor.name

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if not all(math.isfinite(v) for v in logs.values()) or not _model_is_finite(
            self.state.model
        ):
            log.warning("epoch %d has non-finite values; checkpoints left as they were", epoch + 1)
            return
        if self.monitor is not None and self.monitor.improved(logs[self.monitor.name], self.best):
            self.best, self.best_epoch = logs[self.monitor.name], epoch + 1
            self.state.summary["checkpoint_best_epoch"] = self.best_epoch
            if self.state.is_main:
                self._write(
                    "best.pt",
                    {"model": self.state.model.state_dict(), "epoch": epoch + 1, "logs": logs},
                )
        if self.save_last and self.state.is_main and self.state.snapshot is not None:
            self._write("last.pt", self.state.snapshot())

    def on_interrupt(self) -> None:
        if self.state.snapshot is None or not self.state.is_main:
            return
        if _model_is_finite(self.state.model):
            self._write("last.pt", self.state.snapshot())

    def _write(self, name: str, payload: dict[str, Any]) -> None:
        from cnnkit.train.checkpoint import save_checkpoint

        save_checkpoint(self.directory / name, payload)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


def format_logs(logs: Logs) -> str:
    """``loss 0.1234  accuracy 98.12%  ...`` for a logs dict (accuracies as percentages)."""
    parts = []
    for key, value in logs.items():
        if key in ("epoch",):
            continue
        if key.endswith("accuracy"):
            parts.append(f"{key} {value * 100:.2f}%")
        elif key == "lr":
            parts.append(f"lr {value:.3g}")
        elif key == "time":
            parts.append(f"{value:.1f}s")
        else:
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A rich progress bar over each epoch's batches and one summary line per epoch.

    When the console is not a terminal only the per-epoch lines are printed.
    """

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self._progress: Any = None
        self._task: Any = None
        self._started = 0.0

    def on_epoch_begin(self, epoch: int) -> None:
        self._started = time.perf_counter()
        if not self.console.is_terminal or not self.state.is_main:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.state.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.state.steps_per_epoch)

    def on_train_batch_end(self, batch: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=batch + 1)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._stop()
        if self.state.is_main:
            self.console.print(
                f"epoch {epoch + 1}/{self.state.epochs}  {format_logs(logs)}", soft_wrap=True
            )

    def on_train_end(self) -> None:
        self._stop()

    def on_interrupt(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
