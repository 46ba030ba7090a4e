"""Callbacks: everything around the training loop that is not the loop itself.

Method names follow Keras (``on_epoch_end``, ...). The loop calls them; callbacks read and
may change the shared :class:`TrainState` (for example set ``stop_training`` or lower
``lr_scale``). The loop prints nothing: progress output is the :class:`ProgressBar` callback.

Write your own by subclassing :class:`Callback` and overriding the ``on_*`` methods you need.
A callback that keeps state across epochs returns it from :meth:`Callback.state_dict` so that
a resumed run continues exactly where the interrupted one stopped. Callbacks that decide
something (stopping, lowering the learning rate, the best epoch) record it in
``state.training``, which :func:`~cnnkit.train.loop.fit` returns as ``History.training`` and
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
from cnnkit.run_files import BEST, HISTORY, HISTORY_CSV, LAST

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
        training: decisions worth recording (``best_epoch``, ``stopped_epoch``, ``monitor``,
            ``lr_reductions``, ``precision``, ``interrupted``, ...): one dict under one name,
            ``History.training`` after :func:`~cnnkit.train.loop.fit` and the run card's
            ``training`` section.
        snapshot: returns a resumable checkpoint of the training state at this moment;
            set by the loop.
        setup: how the job runs, known before the first step (``device``, ``threads``,
            ``precision``, ``train``/``val``/``test`` sample counts, ``parameters``, ...);
            the progress callback prints it before training.
        messages: the decisions callbacks announced, worded as Keras prints them
            (``Epoch 12: early stopping``); see :meth:`announce`.
        epoch_seen: samples trained on so far in the current epoch.
        epoch_totals: the current epoch's running loss sum and correct count, as device
            tensors the loop adds to in place (reading them waits for the device).
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
    training: dict[str, Any] = field(default_factory=dict)
    snapshot: Callable[[], dict[str, Any]] | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    epoch_seen: int = 0
    epoch_totals: tuple[torch.Tensor, torch.Tensor] | None = None

    def announce(self, message: str) -> None:
        """Record a decision for the progress output to print (and log it at debug level)."""
        self.messages.append(message)
        log.debug("%s", message)


class Callback:
    """Base class: override the ``on_*`` methods you need. ``self.state`` is set before training.

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
        self.state.training["nan_detected"] = where
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
        write_json(self.directory / HISTORY, history)
        columns: list[str] = []
        for row in history:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        with atomic_open(self.directory / HISTORY_CSV, "w") as handle:
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
        self.state.training["monitor"] = self.monitor.name

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
                self.state.training["stopped_epoch"] = epoch + 1
        self.state.training["best_epoch"] = self.best_epoch

    def on_train_end(self) -> None:
        stopped = self.state.training.get("stopped_epoch")
        if stopped is not None:
            self.state.announce(f"Epoch {stopped}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self.state.announce(
                f"Restoring model weights from the end of the best epoch: {self.best_epoch}."
            )
            self.state.model.load_state_dict(self.best_weights)
            self.state.training["restored_best_weights"] = True

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
        self.state.training["lr_reductions"] = list(self.reductions)

    def _reduce(self, epoch: int, lr: float) -> None:
        new_lr = max(lr * self.factor, self.min_lr)
        if lr <= self.min_lr or new_lr >= lr:
            return
        self.state.lr_scale *= new_lr / lr
        self.reductions.append(epoch + 1)
        self.cooldown_left, self.wait = self.cooldown, 0
        self.state.announce(
            f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr:.6g}."
        )

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
            if self.state.training.get("monitor") is None:  # EarlyStopping's monitor wins
                self.state.training["monitor"] = self.monitor.name

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if not all(math.isfinite(v) for v in logs.values()) or not _model_is_finite(
            self.state.model
        ):
            log.warning("epoch %d has non-finite values; checkpoints left as they were", epoch + 1)
            return
        if self.monitor is not None and self.monitor.improved(logs[self.monitor.name], self.best):
            self.best, self.best_epoch = logs[self.monitor.name], epoch + 1
            self.state.training["checkpoint_best_epoch"] = self.best_epoch
            if self.state.is_main:
                self._write(
                    BEST,
                    {"model": self.state.model.state_dict(), "epoch": epoch + 1, "logs": logs},
                )
        if self.save_last and self.state.is_main and self.state.snapshot is not None:
            self._write(LAST, self.state.snapshot())

    def on_interrupt(self) -> None:
        if self.state.snapshot is None or not self.state.is_main:
            return
        if _model_is_finite(self.state.model):
            self._write(LAST, self.state.snapshot())

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


def setup_text(setup: dict[str, Any]) -> str:
    """One line of a job's set-up (:attr:`TrainState.setup`), e.g. ``device cpu (2 threads) ·
    precision fp32 · data 55,000 train, 5,000 val, 10,000 test · 61,706 parameters · ...``."""
    parts = []
    if "device" in setup:
        threads = setup.get("threads")
        plural = "s" if threads != 1 else ""
        parts.append(
            f"device {setup['device']}" + (f" ({threads} thread{plural})" if threads else "")
        )
    if "world_size" in setup and setup["world_size"] > 1:
        parts.append(f"{setup['world_size']} processes")
    if "precision" in setup:
        parts.append(f"precision {setup['precision']}")
    sizes = [f"{setup[k]:,} {k}" for k in ("train", "val", "test") if setup.get(k) is not None]
    if sizes:
        parts.append("data " + ", ".join(sizes))
    if "parameters" in setup:
        parts.append(f"{setup['parameters']:,} parameters")
    if "steps_per_epoch" in setup:
        parts.append(f"{setup['steps_per_epoch']:,} steps of {setup['batch_size']} per epoch")
    return " · ".join(parts)


class ProgressBar(Callback):
    """What Keras prints during ``fit``: a live bar per epoch, one line per epoch, decisions.

    Before training it prints the job's set-up (:func:`setup_text`); after each epoch, the
    epoch's logs and then the decisions callbacks announced (``Epoch 12: ReduceLROnPlateau
    reducing learning rate to 0.0005.``). Everything goes through ``console``, so nothing
    else printed through it lands on the bar's line. In Jupyter the bar is an HTML display
    that is updated in place.

    Args:
        console: a rich ``Console`` (default: a new one on stdout, which finds Jupyter).
        verbose: ``1`` a live bar over each epoch's batches (running loss, accuracy,
            samples/s, elapsed and remaining time) where the console is a terminal or a
            notebook, else one line per epoch; ``2`` one line per epoch; ``0`` silent.
    """

    order = 50  # after the callbacks that decide, so their messages follow the epoch's line
    REFRESH_SECONDS = 0.5  # running loss and accuracy are read (a device sync) this often

    def __init__(self, console: Any = None, *, verbose: int = 1) -> None:
        from rich.console import Console

        if verbose not in (0, 1, 2):
            raise ConfigError(
                "verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), "
                f"got {verbose!r}"
            )
        self.console = console or Console()
        self.verbose = verbose
        self._bar: Any = None  # a rich Progress while an epoch runs in a terminal
        self._task: Any = None
        self._notebook: Any = None  # a NotebookDisplay in Jupyter
        self._finished: list[str] = []  # the notebook's lines of finished epochs
        self._said = 0  # how many of state.messages have been printed
        self._started = 0.0  # perf_counter at the epoch's start
        self._first: tuple[float, int] | None = None  # (time, samples) after the first batch
        self._last = 0.0  # perf_counter after the epoch's last batch
        self._refreshed = 0.0
        self._running = ""
        self._borrowed: list[tuple[Any, Any]] = []  # (log handler, its own console)

    def on_train_begin(self) -> None:
        self._said = len(self.state.messages)
        if not self.verbose or not self.state.is_main:
            return
        if self.state.setup:
            self._print(setup_text(self.state.setup))
        if self.verbose == 1 and self.console.is_jupyter:
            from cnnkit.notebook import NotebookDisplay

            self._notebook, self._finished = NotebookDisplay(), []

    def on_epoch_begin(self, epoch: int) -> None:
        self._started = self._last = time.perf_counter()
        self._first, self._refreshed, self._running = None, 0.0, ""
        if self.verbose != 1 or not self.state.is_main:
            return
        if self._notebook is not None:
            self._show_notebook(epoch, 0, force=True)
        elif self.console.is_terminal:
            self._start_bar(epoch)

    def _start_bar(self, epoch: int) -> None:
        """Two lines that fit 80 columns: the bar with labelled times, then the running
        metrics (``loss 0.3456  accuracy 91.20%  4,321 samples/s``)."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class TwoLines(Progress):
            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                for task in self.tasks:
                    yield Text("  " + task.fields.get("running", ""))

        self._bar = TwoLines(
            TextColumn(f"Epoch {epoch + 1}/{self.state.epochs}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._borrow_log_handlers()
        self._task = self._bar.add_task("train", total=self.state.steps_per_epoch, running="")

    def on_train_batch_end(self, batch: int) -> None:
        now = time.perf_counter()
        self._last = now
        if self._first is None:
            self._first = (now, self.state.epoch_seen)
        if self._bar is None and self._notebook is None:
            return
        last = batch + 1 == self.state.steps_per_epoch
        if last or now - self._refreshed >= self.REFRESH_SECONDS:
            self._refreshed = now
            self._running = self._running_text(now)
        if self._bar is not None:
            self._bar.update(self._task, completed=batch + 1, running=self._running)
        else:
            self._show_notebook(self.state.epoch, batch + 1, force=last)

    def _running_text(self, now: float) -> str:
        """``loss 0.3456  accuracy 91.20%  4,321 samples/s`` so far in this epoch."""
        seen, totals = self.state.epoch_seen, self.state.epoch_totals
        parts = []
        if totals is not None and seen:
            loss_sum, correct = totals
            parts += [f"loss {float(loss_sum) / seen:.4f}", f"accuracy {int(correct) / seen:.2%}"]
        rate = self._rate(now)
        if rate is not None:
            parts.append(f"{rate:,.0f} samples/s")
        return "  ".join(parts)

    def _rate(self, now: float) -> float | None:
        """Training samples per second since the epoch's first batch (which warms up)."""
        if self._first is None or now <= self._first[0]:
            return None
        return (self.state.epoch_seen - self._first[1]) / (now - self._first[0])

    def _show_notebook(self, epoch: int, done: int, *, force: bool) -> None:
        from cnnkit.notebook import progress_html

        elapsed = time.perf_counter() - self._started
        timing = f"elapsed {elapsed:.0f}s"
        if done:
            left = elapsed / done * (self.state.steps_per_epoch - done)
            timing += f"  left {left:.0f}s"
        line = progress_html(
            f"Epoch {epoch + 1}/{self.state.epochs}",
            done,
            self.state.steps_per_epoch,
            f"{self._running}  {timing}".strip(),
        )
        self._notebook.update("".join([*self._finished, line]), force=force)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._stop()
        if not self.verbose or not self.state.is_main:
            return
        text = format_logs(logs)
        rate = self._rate(self._last)
        if rate is not None:
            text += f"  {rate:,.0f} samples/s"
        if self._notebook is not None:
            from cnnkit.notebook import progress_html

            steps = self.state.steps_per_epoch
            label = f"Epoch {epoch + 1}/{self.state.epochs}"
            self._finished.append(progress_html(label, steps, steps, text))
            self._notebook.update("".join(self._finished), force=True)
        else:
            self._print(f"Epoch {epoch + 1}/{self.state.epochs}  {text}")
        self._print_messages()

    def on_train_end(self) -> None:
        self._stop()
        if self.verbose and self.state.is_main:
            self._print_messages()

    def on_interrupt(self) -> None:
        self._stop()

    def _print_messages(self) -> None:
        for message in self.state.messages[self._said :]:
            self._print(message)
        self._said = len(self.state.messages)

    def _print(self, line: str) -> None:
        """A line through the console: wrapped at spaces in a terminal, whole in a log file."""
        self.console.print(
            line, soft_wrap=not self.console.is_terminal, highlight=False, markup=False
        )

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            for handler, console in self._borrowed:
                handler.console = console
            self._borrowed = []

    def _borrow_log_handlers(self) -> None:
        """While the bar is live, rich log handlers print through its console: a warning
        (Ctrl-C's, say) then lands above the bar instead of on its line (another console
        would write past rich's redirection, straight to the terminal)."""
        from rich.logging import RichHandler

        for handler in logging.getLogger().handlers:
            if isinstance(handler, RichHandler) and handler.console is not self.console:
                self._borrowed.append((handler, handler.console))
                handler.console = self.console
