"""The job runner: a run directory from its first card to its end, for every kind of job.

``cnnkit train`` (:mod:`cnnkit.train.job`) and ``cnnkit finetune``
(:mod:`cnnkit.transfer.finetune`) differ in how they build the model and the data; what
happens to the run is the same and lives here, in :class:`Job`:

1. :func:`create_run` makes the run directory (``runs/<name>`` or a free generated name);
2. :meth:`Job.start` writes the split file and the card (status ``training``);
3. :meth:`Job.train` calls :func:`~cnnkit.train.loop.fit` with the job's own callbacks
   first: the NaN guard, the history file and the checkpoints;
4. :meth:`Job.recording` marks the card ``interrupted`` on Ctrl-C and ``failed`` on an error
   (a start refused before anything trained leaves nothing behind);
5. :meth:`Job.finish` saves the weights, measures every held-out split through
   :func:`~cnnkit.evaluate.metrics.measure` (``metrics.json``) and marks the card
   ``finished``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnkit.card import DataRecord, Environment, ModelRecord, RunCard, TransferRecord, timestamp
from cnnkit.data.dataset import Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import CnnkitError, ConfigError, RunError, TrainingError, TrainingInterrupted
from cnnkit.evaluate.metrics import measure
from cnnkit.models.forward import EVAL_BATCH
from cnnkit.run import Run, default_run_name
from cnnkit.train.callbacks import Callback, HistoryWriter, ModelCheckpoint, NanGuard
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.distributed import DistributedContext
from cnnkit.train.loop import History, fit

log = logging.getLogger(__name__)


def create_run(runs_dir: str, name: str | None, *, model: str, data: str) -> Run:
    """A new run directory: ``runs_dir/name``, or a free ``<model>-<data>-<time>[-N]``."""
    if name:
        return Run.create(runs_dir, name)
    base = default_run_name(model, data)
    for attempt in range(1, 100):
        try:
            return Run.create(runs_dir, base if attempt == 1 else f"{base}-{attempt}")
        except RunError:
            continue
    raise RunError(f"could not find a free run name under {runs_dir}")


def resume_point(run: Run, epochs: int, batch_size: int | None = None) -> dict[str, Any] | None:
    """The checkpoint a job continues ``run`` from (``checkpoints/last.pt``), or None to
    train it from the start (stopped before its first checkpoint).

    Raises:
        ConfigError: the run is finished with ``epochs`` or more trained, or ``batch_size``
            is given while the checkpoint stops inside an epoch.
        RunError: a damaged checkpoint, or a finished run without one.
    """
    last = run.files.last_checkpoint
    checkpoint = load_checkpoint(last) if last.is_file() else None
    position = checkpoint.get("position") if checkpoint is not None else None
    position = position if isinstance(position, dict) else {}
    trained, finished = position.get("epoch"), run.card.status == "finished"
    if isinstance(trained, int) and finished and trained >= epochs:
        raise ConfigError(
            f"{run.path} is finished: it has already trained {trained} of {epochs} "
            "epochs; ask for more epochs (--epochs) to continue"
        )
    batch = position.get("batch")
    if batch_size is not None and isinstance(batch, int) and batch > 0:
        raise ConfigError(
            f"{last} stops inside an epoch; --batch-size can change only at the end of one "
            "(resume without it)"
        )
    if checkpoint is None:
        if finished:
            raise RunError(f"{last}: no checkpoint there, and {run.path} is finished")
        log.warning("%s has no checkpoint yet: training it from the start", run.path)
    return checkpoint


@dataclass
class Job:
    """One job's run directory, from its card to its end (see the module's steps).

    Attributes:
        run: the run directory.
        started: when the job started (``time.time()``).
        device: where it trains.
        model: the model trained.
        splits: the data it trains on (train, and val if any) and is measured on.
        preprocessing: the model's input normalisation.
        resume: the command that continues the run from its checkpoint (``cnnkit train
            --resume RUN``), or None when the job cannot be resumed (no checkpoints).
        is_main: False in torchrun processes other than rank 0 (they write nothing).
        created: this job made the run directory: a start refused before the first
            checkpoint removes it again.
        before: a resumed run's card, put back when the resumed start is refused.
        context: the torchrun processes, if any (recorded as ``world_size``).
        history: what ``fit`` returned (set by the job after training).
    """

    run: Run
    started: float
    device: torch.device
    model: nn.Module
    splits: Splits
    preprocessing: Preprocessing
    resume: str | None
    is_main: bool = True
    created: bool = True
    before: RunCard | None = None
    context: DistributedContext | None = None
    history: History | None = None

    def start(
        self,
        config: dict[str, Any],
        model_record: dict[str, Any],
        *,
        data: Callable[[], DataRecord],
        transfer: TransferRecord | None = None,
        **fields: Any,
    ) -> None:
        """Write the split file and the card: ``config``, the model, the data (``data``
        writes the split file and returns the card's record:
        :meth:`~cnnkit.run.Run.record_data`), the input contract, the environment, how a
        fine-tuned run was made (``transfer``), and any other card ``fields``."""
        if not self.is_main:
            return
        context = self.context
        self.run.write_card(
            RunCard(
                name=self.run.path.name,
                created=timestamp(self.started),
                config=config,
                model=ModelRecord.of_model(model_record, self.model),
                data=data(),
                preprocessing=self.preprocessing,
                environment=Environment.describe(
                    self.device, world_size=context.world_size if context is not None else None
                ),
                transfer=transfer,
                **fields,
            )
        )

    def callbacks(self) -> list[Callback]:
        """The NaN guard; in the main process the history file and, for a job that can be
        resumed, the checkpoints (``last.pt`` each epoch, ``best.pt`` by the validation
        loss, or the training loss without validation data)."""
        callbacks: list[Callback] = [NanGuard()]
        if self.is_main:
            callbacks.append(HistoryWriter(self.run.path))
            if self.resume is not None:
                monitor = "val_loss" if self.splits.val is not None else "loss"
                callbacks.append(ModelCheckpoint(self.run.files.checkpoints, monitor=monitor))
        return callbacks

    def train(self, *, callbacks: Sequence[Callback] = (), **options: Any) -> History:
        """:func:`~cnnkit.train.loop.fit` the model on the train split, validating on val,
        with the job's :meth:`callbacks` before ``callbacks``; ``options`` are ``fit``'s."""
        self.history = fit(
            self.model,
            train=self.splits.train,
            val=self.splits.val,
            preprocessing=self.preprocessing,
            callbacks=[*self.callbacks(), *callbacks],
            device=self.device,
            **options,
        )
        return self.history

    def _mark(self, status: str, **sections: Any) -> None:
        if self.is_main:
            self.run.update_card(status=status, **sections)

    def _put_back(self) -> bool:
        """A resumed start refused before training: the card as it was (True), if so."""
        if self.is_main and self.before is not None and self.history is None:
            self.run.write_card(self.before)
            return True
        return False

    @contextmanager
    def recording(self, *, batch_size: int) -> Iterator[None]:
        """Training and finishing inside: the card records how it ended.

        Ctrl-C marks the run ``interrupted`` (a :class:`TrainingInterrupted` naming the run
        is raised, however deep the Ctrl-C came); a :class:`TrainingError` (a NaN loss) or
        any cnnkit error marks it ``failed`` with the error; running out of memory becomes a
        :class:`TrainingError` saying how to go on with a smaller batch. A
        :class:`ConfigError` before the first checkpoint removes a run this job created.
        """
        run = self.run
        try:
            yield
        except TrainingInterrupted as exc:
            self._mark("interrupted", training=exc.training)
            exc.run_path, exc.resume = str(run.path), self.resume
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C outside the loop: saving, evaluating
            self._mark("interrupted")
            history = self.history
            stopped = TrainingInterrupted(
                list(history or []), dict(history.training) if history is not None else {}
            )
            stopped.run_path, stopped.resume = str(run.path), self.resume
            raise stopped from exc
        except TrainingError as exc:
            self._mark("failed", error=str(exc))
            raise
        except ConfigError as exc:
            # refused before the first epoch's checkpoint: a failed start leaves nothing behind
            if self.created and self.is_main and not any(run.files.checkpoints.glob("*")):
                shutil.rmtree(run.path)
                raise
            if not self._put_back():
                self._mark("failed", error=str(exc))
            raise
        except CnnkitError as exc:  # e.g. a checkpoint that does not fit: nothing trained
            if not self._put_back():
                self._mark("failed", error=str(exc))
            raise
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise
            smaller = max(1, batch_size // 2)
            message = f"out of memory on {self.device} training with batch size {batch_size}; " + (
                f"the last checkpoint is kept. Continue with a smaller batch: {self.resume} "
                f"--batch-size {smaller}"
                if self.resume is not None
                else f"start again with a smaller batch (--batch-size {smaller})"
            )
            self._mark("failed", error=message)
            raise TrainingError(message) from exc

    def finish(self, *, batch_size: int = EVAL_BATCH, **sections: Any) -> dict[str, dict[str, Any]]:
        """Save the weights, measure the model on every split but train (``metrics.json``;
        evaluated ``batch_size`` images at a time) and mark the card finished, with any
        other card ``sections``. Returns the metrics (empty outside the main process)."""
        model = self.model
        if not self.is_main:
            return {}
        if self.history is None:
            raise TrainingError("the job has no training history to finish with")
        self.run.save_weights(model)
        metrics = {
            name: measure(
                model,
                dataset,
                split=name,
                preprocessing=self.preprocessing,
                device=self.device,
                batch_size=batch_size,
            )[1]
            for name, dataset in self.splits.items()
            if name != "train"
        }
        self.run.finish(metrics, history=self.history, started=self.started, **sections)
        return metrics


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out (a GPU's, or the CPU allocator's)."""
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        "can't allocate memory" in str(exc)
    )
