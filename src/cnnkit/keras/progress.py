"""Keras's progress lines for ``fit``, ``evaluate`` and ``predict`` (``verbose`` 0, 1 or 2).

``verbose=1``: ``Epoch 1/5`` then a bar that fills while the epoch runs (in a terminal or a
notebook) and ends as ``469/469 ━━━━━━━━━━━━━━━━━━━━ 3s 6ms/step - accuracy: 0.9123 - loss:
0.2931``; ``verbose=2``: one line per epoch, ``469/469 - 3s - 6ms/step - accuracy: ...``.
A callback of cnnkit's engine: the loop itself prints nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from cnnkit.train.callbacks import Callback, Logs

BAR = 20  # characters of the bar, as Keras draws it


def format_values(logs: dict[str, float]) -> str:
    """`` - accuracy: 0.9123 - loss: 0.2931`` (tiny values in scientific notation, as Keras)."""
    return "".join(
        f" - {key}: {value:.4f}" if abs(value) > 1e-3 else f" - {key}: {value:.4e}"
        for key, value in logs.items()
    )


def per_step(seconds: float, steps: int) -> str:
    unit = seconds / max(1, steps)
    if unit >= 1:
        return f"{unit:.0f}s/step"
    if unit >= 1e-3:
        return f"{unit * 1e3:.0f}ms/step"
    return f"{unit * 1e6:.0f}us/step"


def line(done: int, steps: int, seconds: float, verbose: int, values: str = "") -> str:
    """One progress line: the bar form (verbose 1) or the plain form (verbose 2)."""
    if verbose == 2:
        return f"{steps}/{steps} - {int(seconds)}s - {per_step(seconds, steps)}{values}"
    filled = BAR * done // max(1, steps)
    bar = "━" * filled + " " * (BAR - filled) if done < steps else "━" * BAR
    return f"{done}/{steps} {bar} {int(seconds)}s {per_step(seconds, done)}{values}"


def is_live(stream: TextIO) -> bool:
    """Whether redrawing a line in place shows (a terminal, or a Jupyter notebook)."""
    return bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules


class KerasProgress(Callback):
    """Prints Keras's epoch lines from the engine's hooks.

    Args:
        verbose: 0 (silent), 1 (bar) or 2 (one line per epoch).
        epochs: the epoch count as the user gave it (``initial_epoch`` counts toward it).
        initial_epoch: added to the engine's epoch numbers.
        translate: engine logs -> the logs the user's program sees.
    """

    def __init__(
        self,
        verbose: int,
        epochs: int,
        initial_epoch: int,
        translate: Callable[[Logs], dict[str, float]],
        stream: TextIO | None = None,
    ) -> None:
        self.verbose, self.epochs, self.initial_epoch = verbose, epochs, initial_epoch
        self.translate = translate
        self.stream = stream or sys.stdout
        self.live = verbose == 1 and is_live(self.stream)
        self._started = self._drawn = 0.0

    def on_epoch_begin(self, epoch: int) -> None:
        self._started = self._drawn = time.perf_counter()
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1 + self.initial_epoch}/{self.epochs}\n")
            self.stream.flush()

    def on_train_batch_end(self, batch: int) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        steps = self.state.steps_per_epoch
        self.stream.write("\r" + line(batch + 1, steps, now - self._started, 1))
        self.stream.flush()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if not self.verbose:
            return
        seconds = time.perf_counter() - self._started
        steps = self.state.steps_per_epoch
        text = line(steps, steps, seconds, self.verbose, format_values(self.translate(logs)))
        self.stream.write(("\r" if self.live else "") + text + "\n")
        self.stream.flush()


def report(verbose: int, steps: int, seconds: float, values: dict[str, Any]) -> None:
    """The single line ``evaluate`` and ``predict`` print."""
    if verbose:
        sys.stdout.write(line(steps, steps, seconds, verbose, format_values(values)) + "\n")
        sys.stdout.flush()
