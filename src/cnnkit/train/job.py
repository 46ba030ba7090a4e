"""A training job: data in, trained model out, everything recorded in a run directory.

This is what ``cnnkit train`` runs. It takes a :class:`~cnnkit.train.config.TrainConfig`
(re-exported here), loads the data and builds the model; the job runner
(:class:`~cnnkit.train.runner.Job`) writes the run, trains with
:func:`~cnnkit.train.loop.fit`, saves the weights and measures the held-out splits.
:func:`resume_training` continues an interrupted run from its last checkpoint. Under
``torchrun`` every process runs the job; rank 0 alone writes the run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnkit.augment.spec import parse_augment
from cnnkit.card import SplitSettings
from cnnkit.data.dataset import Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import fit_rule, load_dataset
from cnnkit.devices import resolve_device
from cnnkit.errors import ConfigError, RunError
from cnnkit.models.resolve import describe_model, resolve_model
from cnnkit.run import Run
from cnnkit.train.callbacks import (
    Callback,
    EarlyStopping,
    Logs,
    ReduceLROnPlateau,
)
from cnnkit.train.config import TrainConfig, make_callback
from cnnkit.train.distributed import (
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
    shutdown_distributed,
)
from cnnkit.train.losses import LossFn, check_class_weight, class_weights, make_loss
from cnnkit.train.precision import resolve_precision
from cnnkit.train.runner import Job, create_run, resume_point

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "resume_training", "run_training"]


@dataclass
class TrainResult:
    """What a finished job produced.

    Attributes:
        run: the run directory (shared by all processes under torchrun).
        history: one logs dict per epoch.
        metrics: the final metrics of each held-out split (``metrics.json``; see
            :func:`~cnnkit.evaluate.metrics.measure`), empty on ranks other than 0.
        training: the decisions taken (the run card's ``training`` section).
        is_main: False in torchrun processes other than rank 0 (which should print nothing).
    """

    run: Run
    history: list[Logs]
    metrics: dict[str, dict[str, Any]]
    training: dict[str, Any] = field(default_factory=dict)
    is_main: bool = True


def _shared_run(config: TrainConfig, label: str, context: DistributedContext | None) -> Run:
    """Rank 0 creates the run directory; under torchrun the others learn its path."""
    if context is None:
        return create_run(config.runs_dir, config.name, model=label, data=config.data)
    import torch.distributed as dist

    run = (
        create_run(config.runs_dir, config.name, model=label, data=config.data)
        if context.is_main
        else None
    )
    path = [str(run.path) if run is not None else ""]
    dist.broadcast_object_list(path, src=0)
    return run if run is not None else Run(path[0])


def _recorders(config: TrainConfig, run: Run) -> list[Callback]:
    """Callbacks that save material for the report (filters at chosen epochs) into the run."""
    if not config.record_filters:
        return []
    from cnnkit.train.filters import FilterRecorder

    return [FilterRecorder(run.path, config.record_filters)]


def _callbacks(config: TrainConfig, run: Run, is_main: bool) -> list[Callback]:
    """The train job's own callbacks besides the runner's: recorders (main process only),
    early stopping, LR on plateau."""
    callbacks: list[Callback] = _recorders(config, run) if is_main else []
    if config.early_stopping is not None:
        callbacks.append(make_callback(EarlyStopping, config.early_stopping))
    if config.reduce_lr is not None:
        callbacks.append(make_callback(ReduceLROnPlateau, config.reduce_lr))
    return callbacks


def _loss(config: TrainConfig, splits: Splits, run: Run | None) -> LossFn | str:
    """The loss by name, or with ``class_weight`` the weighted loss (weights on the card)."""
    if config.class_weight is None:
        return config.loss
    weights = class_weights(config.class_weight, splits.train.class_counts())
    if run is not None:
        run.update_card(class_weights=dict(zip(splits.train.classes, weights, strict=True)))
    return make_loss(config.loss, label_smoothing=config.label_smoothing, class_weight=weights)


def run_training(
    config: TrainConfig, *, callbacks: Sequence[Callback] = (), verbose: int = 1
) -> TrainResult:
    """Run one training job and return its run directory, history and final metrics.

    ``verbose`` is :func:`~cnnkit.train.loop.fit`'s: 1 a progress bar (terminal or notebook),
    2 one line per epoch, 0 silent; a ``ProgressBar`` in ``callbacks`` takes its place.
    """
    return _train(config, callbacks=callbacks, verbose=verbose)


def resume_training(
    run_path: str,
    *,
    epochs: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    callbacks: Sequence[Callback] = (),
    verbose: int = 1,
) -> TrainResult:
    """Continue the run at ``run_path`` from ``checkpoints/last.pt`` with its recorded config.

    On a CPU, k epochs + resume + (n - k) epochs gives the same weights, bit for bit, as n
    epochs straight: the checkpoint holds the optimizer, callbacks, random generators and
    the position inside the epoch. A run stopped after its last epoch (Ctrl-C while saving)
    is finished from its checkpoint; a run stopped before its first checkpoint starts over.

    Args:
        run_path: the run directory ``cnnkit train`` printed.
        epochs: total epochs to reach (default: the run's recorded number).
        device: train on this device instead of the recorded one.
        batch_size: continue with this batch size (after running out of memory); only
            from a checkpoint at the end of an epoch.
        callbacks: more callbacks, as for :func:`run_training`.
        verbose: as for :func:`run_training`.

    Raises:
        RunError: not a run, a damaged checkpoint, or the data changed since.
        ConfigError: the run is finished, or ``batch_size`` is given mid-epoch.
    """
    run = Run.open(run_path)
    card = run.card
    if card.transfer is not None:
        raise RunError(
            f"{run.path} is a fine-tuned run; continue it with cnnkit finetune --resume {run.path}"
        )
    try:
        config = TrainConfig.from_dict(card.config)
    except ConfigError as exc:
        raise RunError(f"{run.files.card}: config: {exc}") from exc
    if epochs is not None:
        config.epochs = epochs
    if device is not None:
        config.device = device
    checkpoint = resume_point(run, config.epochs, batch_size)
    if batch_size is not None:
        config.batch_size = batch_size
    return _train(config, callbacks=callbacks, run=run, resume=checkpoint, verbose=verbose)


def _load_splits(config: TrainConfig, run: Run | None) -> Splits:
    """The config's data; when resuming ``run``, exactly the samples it recorded, or an error."""

    def load(split_file: str | None) -> Splits:
        return load_dataset(
            config.data,
            data_dir=config.data_dir,
            val_size=config.val_size,
            test_size=config.test_size,
            seed=config.seed,
            group_by=config.group_by,
            split_file=split_file,
        )

    if run is None:
        return load(config.split_file)
    resuming = run.files.split.is_file()
    with run.data_changes():
        splits = load(str(run.files.split) if resuming else config.split_file)
    run.check_data(splits.items())
    return splits


def _train(
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback],
    run: Run | None = None,
    resume: dict[str, Any] | None = None,
    verbose: int = 1,
) -> TrainResult:
    started = time.time()
    if run is None:  # a new job: every setting checked before data or a run directory
        config.validate()
    # the card records the resolved augmentation steps, not a file that may change
    augment = parse_augment(config.augment) if config.augment else None
    check_class_weight(config.class_weight)
    if augment is not None:
        config = dataclasses.replace(config, augment=augment.describe())
    device = resolve_device(config.device)
    context = None
    if launched_by_torchrun():
        context, device = init_distributed(device)
    try:
        splits = _load_splits(config, run)
        preprocessing = Preprocessing.from_dataset(splits.train, fit=fit_rule(config.data))
        # the initial weights are a function of the seed; each process drops out differently
        torch.manual_seed(config.seed + (context.rank if context else 0))
        if run is None:  # a registry name, a spec or a layers.Model
            model, model_record = resolve_model(
                config.model,
                input_shape=splits.train.image_shape,
                num_classes=splits.train.num_classes,
                options=config.model_options,
            )
        else:  # resuming: the model the run recorded (its weights come from the checkpoint)
            model, model_record = run.new_model(), run.card.model.to_dict()
        is_main = context is None or context.is_main
        created = run is None
        if run is None:
            label = describe_model(config.model)
            if not isinstance(config.model, str):
                config = dataclasses.replace(config, model=label)
            run = _shared_run(config, label, context)
        resume_with = f"cnnkit train --resume {run.path}"
        job = Job(run, started, device, model, splits, preprocessing, resume_with, is_main, created)
        job.context = context
        if created:
            job.start(
                dataclasses.asdict(config),
                model_record,
                data=lambda: run.record_data(
                    config.data,
                    config.data_dir,
                    splits,
                    SplitSettings(config.seed, config.val_size, config.test_size, config.group_by),
                    from_split_file=config.split_file,
                ),
                training={"precision": resolve_precision(config.precision, device, model).name},
            )
        elif is_main:
            job.before = run.card  # put back if the checkpoint turns out not to fit
            run.update_card(status="training", config=dataclasses.asdict(config))
        loss = _loss(config, splits, run if is_main else None)
        with job.recording(batch_size=config.batch_size):
            history = job.train(
                callbacks=[*_callbacks(config, run, is_main), *callbacks],
                **config.fit_options(),
                loss=loss,
                augment=augment,
                resume=resume,
                distributed=context,
                verbose=verbose,
                setup={"test": len(splits.test) if splits.test is not None else None},
            )
            metrics = job.finish(training=history.training)
        if context is not None:
            context.barrier()
        return TrainResult(
            run=run,
            history=list(history),
            metrics=metrics,
            training=history.training,
            is_main=is_main,
        )
    finally:
        if context is not None:
            shutdown_distributed()
