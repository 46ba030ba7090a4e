"""Stopping and resuming exactly: where training stands and what a checkpoint holds.

:class:`EpochTotals` are an epoch's running sums, kept on the device so nothing waits for it
during the epoch. :class:`Resumable` is the one object :func:`~cnnkit.train.loop.fit` asks
about resuming: the position (epoch, batch, a half-done epoch's totals), the snapshot a
checkpoint stores (:meth:`Resumable.snapshot`) and putting one back
(:meth:`Resumable.restore`), so the run continues as if it had never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.errors import RunError
from cnnkit.train.batches import epoch_generator
from cnnkit.train.callbacks import CallbackList, TrainState
from cnnkit.train.checkpoint import FORMAT, WHERE, check_snapshot


@dataclass
class EpochTotals:
    """An epoch's running sums on the training device, added to in place (callbacks hold the
    same tensors through ``TrainState.epoch_totals``).

    Attributes:
        loss_sum: float64 ``()``, the summed per-sample loss.
        correct: int64 ``()``, top-1 hits.
        hits: float64 ``(M,)``, hits of each extra metric.
        seen: samples trained on so far.
        started: ``time.perf_counter()`` at the epoch's start (moved back by the time a
            resumed epoch had already run).
        augment_rng: the epoch's augmentation stream.
    """

    loss_sum: torch.Tensor
    correct: torch.Tensor
    hits: torch.Tensor
    augment_rng: torch.Generator
    seen: int = 0
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, epoch: int, *, seed: int, device: torch.device, metrics: int) -> EpochTotals:
        """Zero sums, and the augmentation stream seeded by ``(seed, epoch)``."""
        return cls(
            loss_sum=torch.zeros((), device=device, dtype=torch.float64),
            correct=torch.zeros((), device=device, dtype=torch.int64),
            hits=torch.zeros(metrics, device=device, dtype=torch.float64),
            augment_rng=epoch_generator(seed, epoch, stream=1),
        )

    def add(
        self,
        loss: torch.Tensor,
        correct: torch.Tensor,
        hits: list[torch.Tensor],
        count: int,
    ) -> None:
        """Add one batch: its mean ``loss``, its top-1 ``correct``, the extra metrics' hits."""
        self.loss_sum += loss * count
        self.correct += correct
        for i, hit in enumerate(hits):
            self.hits[i] += hit
        self.seen += count

    def to_record(self) -> dict[str, Any]:
        """The half-done epoch as a checkpoint's ``partial`` (CPU tensors)."""
        return {
            "loss_sum": self.loss_sum.cpu(),
            "correct": self.correct.cpu(),
            "hits": self.hits.cpu(),
            "seen": self.seen,
            "time": time.perf_counter() - self.started,
            "augment_rng": self.augment_rng.get_state(),
        }

    def load_record(self, partial: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's ``partial`` (the sums, time and stream it had)."""
        self.loss_sum += partial["loss_sum"].to(self.loss_sum.device)
        self.correct += partial["correct"].to(self.correct.device)
        self.hits += partial.get("hits", self.hits).to(self.hits.device)
        self.seen = int(partial["seen"])
        self.started = time.perf_counter() - float(partial["time"])
        self.augment_rng.set_state(partial["augment_rng"])


class Resumable:
    """The position in training and everything else a checkpoint needs to resume exactly.

    Attributes:
        epoch: the next epoch to run (counted from 0).
        batch: the next batch of that epoch.
        partial: the running totals of a half-done ``epoch`` (a checkpoint's ``partial``),
            None at an epoch boundary.
    """

    def __init__(
        self,
        state: TrainState,
        *,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        callbacks: CallbackList,
        device: torch.device,
    ) -> None:
        self.state, self.optimizer, self.scaler = state, optimizer, scaler
        self.callbacks, self.device = callbacks, device
        self.epoch, self.batch = 0, 0
        self.partial: dict[str, Any] | None = None

    @property
    def model(self) -> nn.Module:
        return self.state.model

    def epoch_totals(self, epoch: int, *, seed: int, metrics: int) -> EpochTotals:
        """The totals ``epoch`` starts from: zero, or those of the interrupted half."""
        totals = EpochTotals.start(epoch, seed=seed, device=self.device, metrics=metrics)
        if self.partial is not None:
            totals.load_record(self.partial)
        return totals

    def stopped_in_epoch(self, epoch: int, batch: int, totals: EpochTotals) -> None:
        """Training stops after ``batch`` of ``epoch`` (Ctrl-C): resume with the next one."""
        self.epoch, self.batch, self.partial = epoch, batch + 1, totals.to_record()

    def finished_epoch(self, epoch: int) -> None:
        self.epoch, self.batch, self.partial = epoch + 1, 0, None

    def snapshot(self) -> dict[str, Any]:
        """What ``checkpoints/last.pt`` holds: enough to continue exactly from here."""
        return {
            "format": FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "callbacks": self.callbacks.state_dict(),
            "rng": _rng_state(self.device),
            "position": {"epoch": self.epoch, "batch": self.batch},
            "step": self.state.step,
            "partial": self.partial,
            "lr_scale": self.state.lr_scale,
            "history": list(self.state.history),
            "summary": dict(self.state.training),  # the file's name for ``training``
        }

    def restore(self, snapshot: dict[str, Any], *, steps_per_epoch: int, epochs: int) -> None:
        """Put back weights, optimizer, scaler, callbacks, random generators and the position.

        A snapshot taken after early stopping moves the position to ``epochs``: the run
        restores and finishes without training.

        Raises:
            RunError: the snapshot does not fit this model, optimizer or callbacks.
        """
        check_snapshot(
            snapshot,
            model=self.model,
            optimizer=self.optimizer,
            callbacks=self.callbacks.state_dict(),
            steps_per_epoch=steps_per_epoch,
        )
        try:
            self.model.load_state_dict(snapshot["model"])
            self.optimizer.load_state_dict(snapshot["optimizer"])
            self.scaler.load_state_dict(snapshot["scaler"])
            self.callbacks.load_state_dict(snapshot["callbacks"])
            _set_rng_state(snapshot["rng"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise RunError(f"{WHERE}: cannot be restored ({exc})") from exc
        state = self.state
        state.step, state.lr_scale = int(snapshot["step"]), float(snapshot["lr_scale"])
        state.history = list(snapshot["history"])
        precision = state.training["precision"]
        state.training.update(snapshot["summary"], precision=precision, interrupted=False)
        self.epoch, self.batch = snapshot["position"]["epoch"], snapshot["position"]["batch"]
        self.partial = snapshot["partial"]
        if state.training.get("stopped_epoch") is not None:
            self.epoch = epochs


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
