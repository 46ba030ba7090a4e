"""Callbacks: everything around the training loop that is not the loop itself.

Hook names follow Keras. The loop calls the hooks; callbacks read and may change the
shared :class:`TrainState` (for example set ``stop_training``). The loop prints nothing:
progress output is the :class:`ProgressBar` callback.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.atomic import atomic_open, write_json

Logs = dict[str, float]


@dataclass
class TrainState:
    """What the loop shares with callbacks.

    Attributes:
        model: the model being trained.
        epochs: the number of epochs asked for.
        steps_per_epoch: optimizer steps in one epoch.
        epoch: index of the current (or last finished) epoch, from 0.
        step: optimizer steps taken so far in total.
        stop_training: set by a callback to end training after the current epoch.
        history: one logs dict per finished epoch (``epoch`` included, from 1).
    """

    model: nn.Module
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    stop_training: bool = False
    history: list[Logs] = field(default_factory=list)


class Callback:
    """Base class: override the hooks you need. ``self.state`` is set before training."""

    state: TrainState

    def set_state(self, state: TrainState) -> None:
        self.state = state

    def on_train_begin(self) -> None: ...

    def on_epoch_begin(self, epoch: int) -> None: ...

    def on_train_batch_end(self, batch: int) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Logs) -> None: ...

    def on_train_end(self) -> None: ...


class CallbackList(Callback):
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

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


class HistoryWriter(Callback):
    """Writes the per-epoch history to ``history.csv`` and ``history.json`` after each epoch."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
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
        if not self.console.is_terminal:
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
        self.console.print(
            f"epoch {epoch + 1}/{self.state.epochs}  {format_logs(logs)}", soft_wrap=True
        )

    def on_train_end(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
