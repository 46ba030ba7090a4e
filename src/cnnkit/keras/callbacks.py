"""``keras.callbacks``: Keras's callbacks, run by cnnkit's engine.

Each built-in callback here becomes one of the engine's callbacks
(:mod:`cnnkit.train.callbacks`) when ``fit`` starts: ``EarlyStopping`` and
``ReduceLROnPlateau`` are the engine's own with Keras's arguments and ``verbose`` messages;
``BackupAndRestore`` is the engine's resumable checkpoint; the others are small engine
callbacks. Your own :class:`Callback` subclasses get Keras's hooks with Keras's logs
(``self.model``, ``self.params``, ``self.model.stop_training = True``,
``self.model.optimizer.learning_rate``). ``on_train_batch_begin`` is not called (the engine has
no such hook); ``on_train_batch_end`` gets ``{"loss": <that batch's loss>}``.
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.errors import ConfigError
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.train import callbacks as engine
from cnnkit.train.callbacks import Logs, Monitor


@dataclass
class FitContext:
    """What a callback needs from the ``fit`` call that runs it.

    Attributes:
        model: the Keras-style model being trained.
        translate: engine logs -> the user's logs (metric names as compiled).
        engine_key: a user log name (``val_acc``) -> the engine's (``val_accuracy``).
        initial_epoch: added to the engine's epoch indices.
        params: Keras's ``callback.params`` (``verbose``, ``epochs``, ``steps``).
    """

    model: Any
    translate: Callable[[Logs], dict[str, float]]
    engine_key: Callable[[str], str]
    initial_epoch: int
    params: dict[str, Any]


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Callback:
    """Keras's callback base class: override the ``on_*`` hooks you need."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def engine_callback(self, context: FitContext) -> engine.Callback:
        """The engine callback that runs this one (user subclasses: Keras's hooks)."""
        return _Hooks(self, context)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_test_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_test_end(self, logs: dict[str, float] | None = None) -> None: ...

    def on_predict_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_predict_end(self, logs: dict[str, float] | None = None) -> None: ...


def _overrides(callback: Callback, *hooks: str) -> bool:
    return any(getattr(type(callback), h) is not getattr(Callback, h) for h in hooks)


class _Hooks(engine.Callback):
    """Runs a user's Keras callback from the engine's hooks, with Keras's logs."""

    def __init__(self, callback: Callback, context: FitContext) -> None:
        self.callback, self.context = callback, context
        self.per_batch = _overrides(callback, "on_train_batch_end", "on_batch_end")
        self.last: dict[str, float] = {}

    def on_train_begin(self) -> None:
        self.callback.set_model(self.context.model)
        self.callback.set_params(self.context.params)
        self.callback.on_train_begin({})

    def on_epoch_begin(self, epoch: int) -> None:
        self.callback.on_epoch_begin(epoch + self.context.initial_epoch, {})

    def on_train_batch_end(self, batch: int) -> None:
        if self.per_batch and self.state.batch_loss is not None:
            self.callback.on_train_batch_end(batch, {"loss": float(self.state.batch_loss)})

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self.last = self.context.translate(logs)
        self.callback.on_epoch_end(epoch + self.context.initial_epoch, dict(self.last))

    def on_train_end(self) -> None:
        self.callback.on_train_end(dict(self.last))


class History(Callback):
    """What ``fit`` returns: ``history`` (name -> one value per epoch), ``epoch`` (indices),
    ``params`` and ``model``."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


# -- Keras's built-in callbacks on the engine ------------------------------------------------------


def _mode(mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """``EarlyStopping(monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
    restore_best_weights=False)``; prints Keras's messages with ``verbose=1``."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        if baseline is not None:
            raise unsupported("EarlyStopping(baseline=...)", "use patience (and min_delta)")
        if start_from_epoch:
            raise unsupported("EarlyStopping(start_from_epoch=...)", "use a larger patience")
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.mode = verbose, _mode(mode)
        self.restore_best_weights = restore_best_weights

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _EarlyStopping(self, context)


class _EarlyStopping(engine.EarlyStopping):
    def __init__(self, spec: EarlyStopping, context: FitContext) -> None:
        super().__init__(
            context.engine_key(spec.monitor),
            mode=spec.mode,
            patience=spec.patience,
            min_delta=spec.min_delta,
            restore_best_weights=spec.restore_best_weights,
        )
        self.verbose, self.offset = spec.verbose, context.initial_epoch

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        super().on_epoch_end(epoch, logs)
        best = self.best_epoch
        if self.state.stop_training and self.verbose and self.restore_best_weights and best:
            say(f"Restoring model weights from the end of the best epoch: {best + self.offset}.")

    def on_train_end(self) -> None:
        super().on_train_end()
        stopped = self.state.training.get("stopped_epoch")
        if stopped and self.verbose:
            say(f"Epoch {stopped + self.offset}: early stopping")


class ReduceLROnPlateau(Callback):
    """``ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
    min_delta=1e-4, cooldown=0, min_lr=0.0)``."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if "epsilon" in kwargs:  # Keras 2's name for min_delta
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise ConfigError(f"ReduceLROnPlateau got unexpected arguments {sorted(kwargs)}")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.verbose, self.mode, self.min_delta = verbose, _mode(mode), min_delta
        self.cooldown, self.min_lr = cooldown, min_lr

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _ReduceLROnPlateau(self, context)


class _ReduceLROnPlateau(engine.ReduceLROnPlateau):
    def __init__(self, spec: ReduceLROnPlateau, context: FitContext) -> None:
        super().__init__(
            context.engine_key(spec.monitor),
            factor=spec.factor,
            patience=spec.patience,
            mode=spec.mode,
            min_delta=spec.min_delta,
            cooldown=spec.cooldown,
            min_lr=spec.min_lr,
        )
        self.verbose, self.offset = spec.verbose, context.initial_epoch

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        before = len(self.reductions)
        super().on_epoch_end(epoch, logs)
        if self.verbose and len(self.reductions) > before and self.state.optimizer is not None:
            rate = self.state.optimizer.param_groups[0]["initial_lr"] * self.state.lr_scale
            say(
                f"\nEpoch {epoch + 1 + self.offset}: ReduceLROnPlateau reducing learning rate "
                f"to {rate:.10g}."
            )


class LearningRateScheduler(Callback):
    """``LearningRateScheduler(schedule, verbose=0)``: ``schedule(epoch, lr) -> new lr`` at the
    start of each epoch."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _Scheduler(self, context)


class _Scheduler(engine.Callback):
    def __init__(self, spec: LearningRateScheduler, context: FitContext) -> None:
        self.spec, self.context = spec, context

    def on_epoch_begin(self, epoch: int) -> None:
        optimizer = self.context.model.optimizer
        index = epoch + self.context.initial_epoch
        try:
            rate = self.spec.schedule(index, optimizer.learning_rate)
        except TypeError:  # Keras also accepts schedule(epoch)
            rate = self.spec.schedule(index)
        if not isinstance(rate, int | float) or not math.isfinite(rate):
            raise ConfigError(f"the schedule returned {rate!r}; it must return a number")
        optimizer.learning_rate = float(rate)
        if self.spec.verbose:
            say(f"\nEpoch {index + 1}: LearningRateScheduler setting learning rate to {rate}.")


class ModelCheckpoint(Callback):
    """``ModelCheckpoint(filepath, monitor="val_loss", verbose=0, save_best_only=False,
    save_weights_only=False, mode="auto")``; ``filepath`` may hold ``{epoch:02d}`` and log
    names (``{val_loss:.2f}``). Files are cnnkit's safe format under the name given."""

    def __init__(
        self,
        filepath: str | Path,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        if save_freq != "epoch":
            raise unsupported(f"ModelCheckpoint(save_freq={save_freq!r})", "use 'epoch'")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode, self.best = _mode(mode), initial_value_threshold

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _Checkpoint(self, context)


class _Checkpoint(engine.Callback):
    def __init__(self, spec: ModelCheckpoint, context: FitContext) -> None:
        self.spec, self.context = spec, context
        self.watch = Monitor(context.engine_key(spec.monitor), spec.mode)

    def on_train_begin(self) -> None:
        if self.spec.save_best_only:
            self.watch.check(self.state, "ModelCheckpoint")

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        spec, index = self.spec, epoch + 1 + self.context.initial_epoch
        user_logs = self.context.translate(logs)
        path = spec.filepath.format(epoch=index, **user_logs)
        if spec.save_best_only:
            value = logs[self.watch.name]
            if not self.watch.improved(value, spec.best):
                if spec.verbose:
                    say(f"\nEpoch {index}: {spec.monitor} did not improve from {spec.best:.5f}")
                return
            if spec.verbose:
                previous = math.inf if spec.best is None else spec.best
                if self.watch.mode == "max" and spec.best is None:
                    previous = -math.inf
                say(
                    f"\nEpoch {index}: {spec.monitor} improved from {previous:.5f} to "
                    f"{value:.5f}, saving model to {path}"
                )
            spec.best = value
        elif spec.verbose:
            say(f"\nEpoch {index}: saving model to {path}")
        if spec.save_weights_only:
            self.context.model.save_weights(path)
        else:
            self.context.model.save(path)


class CSVLogger(Callback):
    """``CSVLogger(filename, separator=",", append=False)``: one row per epoch."""

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.separator, self.append = Path(filename), separator, append

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _CsvRows(self, context)


class _CsvRows(engine.Callback):
    def __init__(self, spec: CSVLogger, context: FitContext) -> None:
        self.spec, self.context = spec, context
        self.header = not (spec.append and spec.filename.is_file())
        self.first = True

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        row = {"epoch": epoch + self.context.initial_epoch, **self.context.translate(logs)}
        mode = "a" if self.spec.append or not self.first else "w"
        with self.spec.filename.open(mode, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row), delimiter=self.spec.separator)
            if self.header:
                writer.writeheader()
                self.header = False
            writer.writerow(row)
        self.first = False


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite (after that epoch's batches)."""

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _NanStop()


class _NanStop(engine.Callback):
    def on_train_batch_end(self, batch: int) -> None:
        loss = self.state.batch_loss
        if loss is not None and not self.state.stop_training and not math.isfinite(float(loss)):
            say(f"Batch {batch}: Invalid loss, terminating training")
            self.state.stop_training = True


class BackupAndRestore(Callback):
    """``BackupAndRestore(backup_dir, delete_checkpoint=True)``: if training is cut short (a
    crash, Ctrl-C), the next ``fit`` with the same callback resumes from the last finished epoch
    (the engine's resumable ``last.pt`` snapshot)."""

    def __init__(
        self, backup_dir: str | Path, save_freq: str | int = "epoch", delete_checkpoint: bool = True
    ) -> None:
        super().__init__()
        if save_freq != "epoch":
            raise unsupported(f"BackupAndRestore(save_freq={save_freq!r})", "use 'epoch'")
        self.backup_dir, self.delete_checkpoint = Path(backup_dir), delete_checkpoint

    @property
    def snapshot(self) -> Path:
        return self.backup_dir / "last.pt"

    def engine_callback(self, context: FitContext) -> engine.Callback:
        return _Backup(self)


class _Backup(engine.ModelCheckpoint):
    def __init__(self, spec: BackupAndRestore) -> None:
        super().__init__(spec.backup_dir, monitor=None)
        self.spec = spec

    def on_train_end(self) -> None:
        if self.spec.delete_checkpoint and self.spec.backup_dir.is_dir():
            shutil.rmtree(self.spec.backup_dir)


def engine_callbacks(callbacks: Sequence[Any], context: FitContext) -> list[engine.Callback]:
    """The engine's callbacks for a ``fit(callbacks=[...])`` list.

    Raises:
        ConfigError: an entry is not a Keras-style callback.
    """
    made = []
    for callback in callbacks:
        if isinstance(callback, engine.Callback):  # cnnkit's own: run as they are
            made.append(callback)
        elif isinstance(callback, Callback):
            made.append(callback.engine_callback(context))
        else:
            raise ConfigError(
                f"callbacks must be keras.callbacks.Callback objects, got {type(callback).__name__}"
            )
    return made


__getattr__ = missing(
    __name__,
    {
        "TensorBoard": "use CSVLogger, or the history fit returns (cnnkit report plots it)",
        "RemoteMonitor": "use CSVLogger",
        "LambdaCallback": "subclass keras.callbacks.Callback",
        "ProgbarLogger": "fit prints Keras's progress itself (verbose=1 or 2)",
        "SwapEMAWeights": "drop it",
    },
)
