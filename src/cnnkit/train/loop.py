"""The training loop: one readable function, written for speed.

In-memory data lives on the training device as one uint8 tensor; each epoch draws one seeded
permutation and cuts batches by indexing it (no per-sample Python, no DataLoader). Streaming
sources yield batches through the same :class:`~cnnkit.train.batches.BatchSource` interface.
Matmuls and convolutions run in bf16/fp16 where the device supports it (weights stay fp32);
running metrics stay on the device, so nothing waits for it during an epoch. Everything
else — progress, history, stopping, checkpoints — happens in callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import torch
from torch import nn

from cnnkit.augment.pipeline import Pipeline
from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.devices import prefers_channels_last
from cnnkit.errors import ConfigError, TrainingInterrupted
from cnnkit.models.forward import predict_logits
from cnnkit.openmp import denormals_flushed, flushes_denormals
from cnnkit.train.batches import (
    BatchSource,
    LabelledTensors,
    batch_source,
    steps_per_epoch,
)
from cnnkit.train.callbacks import Callback, CallbackList, Logs, ProgressBar, TrainState
from cnnkit.train.distributed import DistributedContext
from cnnkit.train.losses import LossFn, make_loss
from cnnkit.train.optim import make_optimizer
from cnnkit.train.precision import Precision, resolve_precision
from cnnkit.train.resume import EpochTotals, Resumable
from cnnkit.train.schedules import Schedule
from cnnkit.train.threads import AdaptiveThreads

log = logging.getLogger(__name__)

#: per-batch count of correct predictions: ``(logits (N, K), labels) -> 0-d tensor``
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def count_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Top-1 hits against class indices ``(N,)`` or one-hot / soft labels ``(N, K)``; with one
    output unit (a sigmoid's logit), hits of ``logit > 0`` against 0/1 labels."""
    if logits.shape[1] == 1:
        return ((logits.reshape(-1) > 0) == (labels.reshape(-1) > 0.5)).sum()
    hard = labels.argmax(1) if labels.ndim == 2 else labels
    return (logits.argmax(1) == hard).sum()


class History(list[Logs]):
    """What :func:`fit` returns: one logs dict per epoch, and the decisions taken.

    Attributes:
        training: ``best_epoch``, ``stopped_epoch``, ``monitor``, ``precision``,
            ``lr_reductions``, ``interrupted``, ... (epochs counted from 1).
    """

    def __init__(self, rows: Sequence[Logs], training: dict[str, Any]) -> None:
        super().__init__(rows)
        self.training = training


def log_keys(*, has_val: bool, metrics: Sequence[str] = ()) -> tuple[str, ...]:
    """The keys of each epoch's logs (what callbacks may monitor); ``metrics``: extra
    per-batch metrics by name, logged next to ``accuracy`` (and as ``val_<name>``)."""
    return (
        "epoch",
        "loss",
        "accuracy",
        *metrics,
        *(("val_loss", "val_accuracy", *(f"val_{m}" for m in metrics)) if has_val else ()),
        "lr",
        "time",
    )


def fit(
    model: nn.Module,
    *,
    train: Dataset | BatchSource,
    val: LabelledTensors | None = None,
    preprocessing: Preprocessing | Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer | str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    schedule: Schedule | str = "constant",
    loss: LossFn | str = "cross_entropy",
    label_smoothing: float = 0.0,
    epochs: int = 10,
    batch_size: int = 100,
    augment: Pipeline | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str = "cpu",
    precision: str = "auto",
    channels_last: bool | None = None,
    compile: bool = False,
    seed: int = 0,
    resume: dict[str, Any] | None = None,
    distributed: DistributedContext | None = None,
    verbose: int = 1,
    setup: dict[str, Any] | None = None,
    metrics: Mapping[str, Metric] | None = None,
) -> History:
    """Train ``model`` on ``train``, validating on ``val`` after each epoch.

    Args:
        model: any ``nn.Module`` mapping ``(N, C, H, W)`` floats to ``(N, K)`` logits.
        train: training data: an in-memory :class:`Dataset` (fast path) or any
            :class:`BatchSource` (streaming).
        val: optional validation data, evaluated without gradients after each epoch.
        preprocessing: turns uint8 batches into model inputs (see :class:`Preprocessing`).
        optimizer: an optimizer over ``model``'s parameters, or a name (``sgd``, ``adam``,
            ``adamw``, ``rmsprop``) built with ``lr``, ``momentum``, ``nesterov`` and
            ``weight_decay``.
        lr: base learning rate, when ``optimizer`` is a name.
        momentum: SGD/RMSprop momentum, when ``optimizer`` is a name.
        nesterov: Nesterov momentum for SGD, when ``optimizer`` is a name.
        weight_decay: L2 penalty (decoupled for ``adamw``), when ``optimizer`` is a name.
        schedule: learning-rate schedule, a :class:`Schedule` or its text form
            (``"cosine:warmup=1"``); a factor on each param group's base rate per step.
        loss: ``cross_entropy``, ``binary_cross_entropy``, ``mse`` or any
            ``(logits (N, K), labels (N,)) -> scalar`` function.
        label_smoothing: probability mass spread over all classes, for a named loss.
        epochs: total passes over ``train`` (a resumed run counts the ones already done).
        batch_size: samples per optimizer step (global, over all DDP processes); the last
            batch of an epoch may be smaller.
        augment: a :class:`~cnnkit.augment.Pipeline` applied on the device to training
            batches only (uint8 in, uint8 out, before ``preprocessing``), drawing from a
            generator seeded by ``(seed, epoch)``; with mixup/cutmix the loss gets the soft
            targets and train accuracy counts each image's own label.
        callbacks: called around epochs and batches (progress, history, ...).
        device: where the model, the data and the arithmetic live.
        precision: ``auto`` (bf16 where the device computes it natively, else fp16 on
            CUDA, else fp32), ``fp32``, ``bf16`` or ``fp16``.
        channels_last: NHWC memory layout for convolutions; None = on for models with 2-D
            convolutions on a CPU (oneDNN's preferred layout) and on a GPU in bf16/fp16.
        compile: run the training step's forward pass through ``torch.compile``.
        seed: seeds the per-epoch shuffling and augmentation.
        resume: a snapshot from ``checkpoints/last.pt``: continue exactly from there.
        distributed: this process's DDP context, when started by torchrun.
        verbose: what to print, as Keras's ``fit`` does: ``1`` the set-up, a live progress
            bar per epoch (in a terminal or a Jupyter notebook) and one line per epoch;
            ``2`` the set-up and one line per epoch; ``0`` nothing. Ignored when
            ``callbacks`` hold a :class:`~cnnkit.train.callbacks.ProgressBar` of their own.
        setup: more facts for the set-up line printed before training (e.g. ``{"test":
            10000}``); ``fit`` adds device, threads, precision, sample counts, parameters.
        metrics: more per-batch hit counters by name (e.g. top-5 accuracy), logged as
            fractions of the samples next to ``accuracy`` (and ``val_<name>``).

    Returns:
        A :class:`History`: one logs dict per epoch with ``epoch``, ``loss``,
        ``accuracy``, ``lr``, ``time`` and, with ``val``, ``val_loss`` and
        ``val_accuracy``; ``history.training`` holds the decisions taken.

    Raises:
        ConfigError: bad arguments or a callback monitoring a value the logs lack.
        TrainingError: training cannot go on (e.g. the NaN guard fired).
        TrainingInterrupted: Ctrl-C; callbacks saved what they save (``on_interrupt``).
    """
    # 1. Check the arguments and settle device, precision and the batch source.
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch size must be positive, got {epochs} and {batch_size}")
    if verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    device = torch.device(device)
    amp = resolve_precision(precision, device, model)  # bf16 only where it pays
    source = batch_source(train, device) if isinstance(train, Dataset) else train
    shard, shards = (distributed.rank, distributed.world_size) if distributed else (0, 1)
    if source.num_samples < shards or source.num_samples == 0:
        raise ConfigError(
            f"the training set holds {source.num_samples} samples, fewer than the {shards} "
            "process(es) training on it; check the data source and --val-size"
        )
    steps = steps_per_epoch(source.num_samples, batch_size, shards)
    schedule = Schedule.parse(schedule) if isinstance(schedule, str) else schedule
    loss_fn = make_loss(loss, label_smoothing=label_smoothing) if isinstance(loss, str) else loss
    metrics = dict(metrics or {})

    # 2. Model on the device, in the memory layout its convolutions run fastest in; the
    #    training forward pass may go through DDP (gradient averaging) and torch.compile.
    if channels_last is None:  # measured: faster for convs on CPUs (oneDNN), and with AMP on GPUs
        channels_last = prefers_channels_last(model, device, amp.dtype is not None)
    forward = _place_model(model, device, channels_last, distributed, compile)

    # 3. Optimizer (fused where torch has it) and, for fp16, loss scaling.
    if isinstance(optimizer, str):
        optimizer = make_optimizer(
            optimizer,
            model.parameters(),
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])  # the schedule scales this base rate
    scaler = amp.grad_scaler()

    # 4. The state shared with callbacks, the callbacks, and the one object that knows the
    #    position in training and how to snapshot and restore it.
    state = TrainState(
        model=model,
        epochs=epochs,
        steps_per_epoch=steps,
        log_keys=log_keys(has_val=val is not None, metrics=tuple(metrics)),
        optimizer=optimizer,
        is_main=distributed is None or distributed.is_main,
        training={
            "best_epoch": None,
            "stopped_epoch": None,
            "monitor": None,
            "precision": amp.name,
            "lr_reductions": [],
            "interrupted": False,
            "channels_last": channels_last,
            "compiled": compile,
            "world_size": shards,
            "flush_denormal": flushes_denormals() if device.type == "cpu" else None,
        },
    )
    state.setup = {
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "world_size": shards,
        "precision": amp.name,
        "train": source.num_samples,
        "val": len(val.labels) if val is not None else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps_per_epoch": steps,
        "batch_size": batch_size,
        **(setup or {}),
    }
    if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks = [*callbacks, ProgressBar(verbose=verbose)]
    callback_list = CallbackList(callbacks)
    callback_list.set_state(state)
    position = Resumable(
        state, optimizer=optimizer, scaler=scaler, callbacks=callback_list, device=device
    )
    state.snapshot = position.snapshot

    # 5. Resuming puts back weights, optimizer, callbacks, generators and the position.
    if resume is not None:
        position.restore(resume, steps_per_epoch=steps, epochs=epochs)

    callback_list.on_train_begin()
    threads = AdaptiveThreads.for_training(device)  # as many as other processes leave free
    try:
        with (
            _ctrl_c_flag(enabled=distributed is None) as interrupted,
            denormals_flushed(enabled=device.type == "cpu"),  # decayed Adam state stays fast
            threads.adapting(),
        ):
            for epoch in range(position.epoch, epochs):
                state.epoch = epoch
                callback_list.on_epoch_begin(epoch)
                model.train()
                # 6. Running sums stay on the device (no host sync per step); a resumed
                #    epoch starts from the sums, time and augmentation stream it had.
                totals = position.epoch_totals(epoch, seed=seed, metrics=len(metrics))
                state.epoch_seen = totals.seen
                state.epoch_totals = (totals.loss_sum, totals.correct)
                first = position.batch
                batches = source.batches(
                    epoch=epoch,
                    batch_size=batch_size,
                    seed=seed,
                    start=first,
                    shard=shard,
                    shards=shards,
                )
                for batch, (images, labels) in enumerate(batches, start=first):
                    # 7. The learning rate for this step: schedule x plateau reductions.
                    factor = schedule.factor(
                        state.step, steps_per_epoch=steps, total_steps=steps * epochs
                    )
                    for group in optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * factor * state.lr_scale
                    # 8. Augment the uint8 batch on the device, then normalise it.
                    mixing = None
                    if augment is not None:
                        images, mixing = augment.augment_batch(images, labels, totals.augment_rng)
                    inputs = preprocessing(images)
                    if channels_last and inputs.ndim == 4:
                        inputs = inputs.contiguous(memory_format=torch.channels_last)
                    # 9. Forward in the chosen precision; the loss is computed in fp32.
                    with amp.autocast():
                        logits = forward(inputs)
                    targets = labels if mixing is None else mixing.targets(logits.shape[1])
                    batch_loss = loss_fn(logits, targets)
                    # 10. Backward and update (the scaler is a pass-through unless fp16).
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(batch_loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    # 11. Accumulate the epoch's metrics and tell the callbacks.
                    logits, batch_loss = logits.detach(), batch_loss.detach()
                    totals.add(
                        batch_loss,
                        count_correct(logits, labels),
                        [metric(logits, labels) for metric in metrics.values()],
                        len(labels),
                    )
                    state.epoch_seen, state.batch_loss = totals.seen, batch_loss
                    state.step += 1
                    threads.after_step()
                    callback_list.on_train_batch_end(batch)
                    # 12. Ctrl-C: stop here, let callbacks save a resumable checkpoint.
                    if interrupted.is_set():
                        position.stopped_in_epoch(epoch, batch, totals)
                        _stop(state, callback_list)
                # 13. The epoch's logs: train metrics summed over processes, validation.
                logs = _epoch_logs(epoch, totals, metrics, distributed)
                if val is not None:
                    logs.update(
                        _validate(
                            model, val, preprocessing, loss_fn, device, amp, distributed, metrics
                        )
                    )
                logs["lr"] = float(optimizer.param_groups[0]["lr"])
                logs["time"] = time.perf_counter() - totals.started
                state.history.append(logs)
                # 14. Callbacks react (stop, lower the rate, checkpoint from the next epoch).
                position.finished_epoch(epoch)
                callback_list.on_epoch_end(epoch, logs)
                if interrupted.is_set():
                    _stop(state, callback_list)
                if state.stop_training:
                    break
        callback_list.on_train_end()
    finally:
        state.training["threads"] = threads.record()
        if channels_last:  # hand the model back in the layout it came in
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    state.training["epochs_run"] = len(state.history)
    return History(state.history, state.training)


def _place_model(
    model: nn.Module,
    device: torch.device,
    channels_last: bool,
    distributed: DistributedContext | None,
    compile: bool,
) -> nn.Module:
    """Move ``model`` to ``device`` (channels-last when asked); return what the training step
    calls: the model, wrapped in DDP under torchrun and in ``torch.compile`` when asked."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    forward: nn.Module = model
    if distributed is not None:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    return forward


def _stop(state: TrainState, callbacks: CallbackList) -> NoReturn:
    """Ctrl-C: callbacks save what they save, then training ends with the history so far."""
    state.training["interrupted"] = True
    callbacks.on_interrupt()
    raise TrainingInterrupted(list(state.history), dict(state.training))


def _epoch_logs(
    epoch: int,
    totals: EpochTotals,
    metrics: Mapping[str, Metric],
    distributed: DistributedContext | None,
) -> Logs:
    """Train loss, accuracy and extra metrics of the epoch, summed over DDP processes."""
    device = totals.loss_sum.device
    seen = torch.tensor(float(totals.seen), device=device, dtype=torch.float64)
    summed = torch.cat([torch.stack([totals.loss_sum, totals.correct.double(), seen]), totals.hits])
    if distributed is not None:
        summed = distributed.all_reduce_sum(summed)
    loss_total, correct_total, seen_total, *hit_totals = summed.tolist()
    logs: Logs = {
        "epoch": epoch + 1,
        "loss": loss_total / seen_total,
        "accuracy": correct_total / seen_total,
    }
    logs.update({m: h / seen_total for m, h in zip(metrics, hit_totals, strict=True)})
    return logs


def _validate(
    model: nn.Module,
    val: LabelledTensors,
    preprocessing: Preprocessing | Callable[[torch.Tensor], torch.Tensor],
    loss_fn: LossFn,
    device: torch.device,
    amp: Precision,
    distributed: DistributedContext | None,
    metrics: Mapping[str, Metric],
) -> Logs:
    """``val_loss`` and ``val_accuracy``; under DDP each process takes a shard and sums."""
    images, labels = val.images, val.labels
    if distributed is not None:
        images = images[distributed.rank :: distributed.world_size]
        labels = labels[distributed.rank :: distributed.world_size]
    logits = predict_logits(
        model, images, preprocessing=preprocessing, device=device, autocast=amp.dtype
    )
    labels = labels.to(logits.device)
    count = float(len(labels))
    loss_total = float(loss_fn(logits, labels)) * count if count else 0.0
    hits = [float(count_correct(logits, labels))] + [
        float(m(logits, labels)) for m in metrics.values()
    ]
    totals = torch.tensor([loss_total, count, *hits])
    if distributed is not None:
        totals = distributed.all_reduce_sum(totals)
    loss_total, count, correct, *hit_totals = totals.tolist()
    logs = {"val_loss": loss_total / count, "val_accuracy": correct / count}
    logs.update({f"val_{m}": h / count for m, h in zip(metrics, hit_totals, strict=True)})
    return logs


@contextlib.contextmanager
def _ctrl_c_flag(*, enabled: bool = True) -> Iterator[threading.Event]:
    """While active, Ctrl-C sets the yielded flag instead of raising; repeats are ignored.

    The loop checks the flag after every batch, so it stops at a consistent point and the
    checkpoint written then cannot be cut short by a second Ctrl-C. Only in the main thread
    (where Python delivers signals) and when ``enabled``.
    """
    flag = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(signum: int, frame: Any) -> None:
        if flag.is_set():
            log.warning("already stopping: saving a checkpoint, please wait")
            return
        flag.set()
        log.warning("Ctrl-C: stopping after this batch and saving a checkpoint")

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
