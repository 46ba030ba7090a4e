"""A training job: data in, trained model out, everything recorded in a run directory.

This is what ``cnnkit train`` runs. It resolves a :class:`TrainConfig`, loads the data,
builds the model, calls :func:`~cnnkit.train.loop.fit`, saves the weights and evaluates
on the test split. :func:`resume_training` continues an interrupted run from its last
checkpoint. Under ``torchrun`` every process runs the job; rank 0 alone writes the run.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.augment.spec import parse_augment
from cnnkit.card import Environment, ModelRecord, RunCard, SplitSettings, timestamp
from cnnkit.data.dataset import Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import data_root, fit_rule, get_source, load_dataset
from cnnkit.data.split import group_ids
from cnnkit.devices import resolve_device
from cnnkit.errors import (
    CnnkitError,
    ConfigError,
    RunError,
    TrainingError,
    TrainingInterrupted,
    did_you_mean,
)
from cnnkit.layers.spec import is_spec_path
from cnnkit.models.forward import loss_and_accuracy
from cnnkit.models.registry import get_model_entry
from cnnkit.models.resolve import describe_model, resolve_model
from cnnkit.run import Run, default_run_name
from cnnkit.train.callbacks import (
    Callback,
    EarlyStopping,
    HistoryWriter,
    Logs,
    ModelCheckpoint,
    NanGuard,
    ReduceLROnPlateau,
)
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.distributed import (
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
    shutdown_distributed,
)
from cnnkit.train.loop import fit, log_keys
from cnnkit.train.losses import LossFn, check_class_weight, class_weights, make_loss
from cnnkit.train.optim import make_optimizer
from cnnkit.train.precision import resolve_precision
from cnnkit.train.schedules import Schedule

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training job needs; defaults reproduce the textbook LeNet on MNIST.

    Attributes:
        data: data source name (``cnnkit datasets``).
        data_dir: read the source's files from this folder only.
        val_size: validation samples held out of train (count or fraction; None = source
            default, 0 = none).
        test_size: test samples held out of train for sources without a test part (a
            folder without test/): count or fraction; None = source default (0.2).
        group_by: regular expression naming each sample's group in its id (file path);
            a group is never divided between train, validation and test.
        split_file: reuse the split of this split file or run directory (its
            ``split.json``) instead of making one.
        model: registry name (``cnnkit models``), a model spec file (``.yaml``/``.json``), a
            spec mapping, or a ``cnnkit.layers.Model`` built in Python (trained in place).
        model_options: extra options for the model builder (e.g. ``{"init": "normal"}``).
        epochs: passes over the training split.
        batch_size: samples per optimizer step.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: (base) learning rate.
        seed: seeds the split, the initial weights and the shuffling.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        runs_dir: parent folder of run directories.
        name: run directory name (default ``<model>-<data>-<time>``).
        record_filters: epochs after which to save the first convolution's filters into
            ``<run>/filters/`` (0 = before training; see ``cnnkit.train.filters``).
        recipe: the recipe these settings started from, if any (recorded only).
        momentum: SGD/RMSprop momentum.
        nesterov: Nesterov momentum (SGD).
        weight_decay: L2 penalty (decoupled for ``adamw``).
        schedule: learning-rate schedule, e.g. ``constant``, ``cosine:warmup=1``.
        loss: ``cross_entropy``, ``binary_cross_entropy`` or ``mse``.
        label_smoothing: probability mass spread over all classes.
        augment: training-time augmentation: spec strings (``["rotate:p=0.5,max=15",
            "translate:2"]``) or a YAML/JSON spec file (see :mod:`cnnkit.augment.spec`); the
            run card records the resolved steps.
        early_stopping: EarlyStopping options (``{"patience": 5}``) or None for none.
        reduce_lr: ReduceLROnPlateau options or None for none.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        channels_last: NHWC layout; None = automatic.
        compile: ``torch.compile`` the training forward pass.
        class_weight: ``balanced`` weighs each class's cross-entropy by the inverse of its
            share of the training split (the run card records the weights); None = equal.
        auto: what the auto setup chose and why (:mod:`cnnkit.train.auto`; recorded only).
    """

    data: str = "mnist"
    data_dir: str | None = None
    val_size: int | float | None = None
    test_size: int | float | None = None
    group_by: str | None = None
    split_file: str | None = None
    model: str | Mapping[str, Any] | nn.Module = "lenet"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    runs_dir: str = "runs"
    name: str | None = None
    record_filters: list[int] = field(default_factory=list)
    recipe: str | None = None
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    augment: list[str] = field(default_factory=list)
    early_stopping: dict[str, Any] | None = None
    reduce_lr: dict[str, Any] | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    class_weight: str | None = None
    auto: dict[str, Any] | None = None

    @classmethod
    def from_recipe(cls, recipe: str, /, **overrides: Any) -> TrainConfig:
        """The recipe's settings, then ``overrides`` on top (see :mod:`cnnkit.train.recipes`);
        ``overrides`` may hold any field, ``name`` (the run's name) included. ``auto`` chooses
        the settings from the data (:mod:`cnnkit.train.auto`)."""
        from cnnkit.train.auto import AUTO, auto_config
        from cnnkit.train.recipes import recipe_settings

        if recipe == AUTO:
            return auto_config(overrides)[0]

        return cls.from_dict({**recipe_settings(recipe), "recipe": recipe, **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a dict (a run card's ``config``); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        defaults = cls()
        for name, value in values.items():
            default = getattr(defaults, name)
            if value is None or default is None:
                continue  # optional settings; their users check them
            if not _same_kind(default, value):
                raise ConfigError(
                    f"training setting {name} must be {_kind(default)}, not {value!r:.40}"
                )
        return cls(**values)

    def validate(self) -> None:
        """Check every setting that can be checked without the data, so that a mistake
        fails in a moment, before data is loaded or a run directory is made: device,
        precision, optimizer and its hyper-parameters, schedule, loss, augmentation,
        callback options, model name, data source and run name.

        Raises:
            ConfigError, ModelError, RunError: the first setting found wrong.
        """
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs and batch size must be positive, got {self.epochs} and {self.batch_size}"
            )
        device = resolve_device(self.device)
        resolve_precision(self.precision, device)
        make_optimizer(
            self.optimizer,
            [nn.Parameter(torch.zeros(1))],
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )
        if isinstance(self.schedule, str):
            Schedule.parse(self.schedule)
        if isinstance(self.loss, str):
            make_loss(self.loss, label_smoothing=self.label_smoothing)
        if self.augment:
            parse_augment(self.augment)
        for kind, options in (
            (EarlyStopping, self.early_stopping),
            (ReduceLROnPlateau, self.reduce_lr),
        ):
            if options is not None:
                monitor = _make_callback(kind, options).monitor.name
                # --val-size 0 leaves no validation data, unless a folder has its own val/
                may_have_val = self.val_size != 0 or data_root(self.data) is not None
                _check_monitor(kind.__name__, monitor, may_have_val=may_have_val)
        if isinstance(self.model, str) and not is_spec_path(self.model):
            get_model_entry(self.model)
        get_source(self.data)
        if self.group_by is not None:
            group_ids([], self.group_by)  # a valid regular expression
        if self.name is not None:
            Run.check_new(self.runs_dir, self.name)


def _same_kind(default: Any, value: Any) -> bool:
    """Whether ``value`` has the JSON type of a setting whose default is ``default``."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and math.isfinite(value)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, str):
        return isinstance(value, str | dict)  # dict: a model spec
    if isinstance(default, list):
        return isinstance(value, list | str)  # str: an augment spec file
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _kind(default: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        type(default), f"a {type(default).__name__}"
    )


@dataclass
class TrainResult:
    """What a finished job produced.

    Attributes:
        run: the run directory (shared by all processes under torchrun).
        history: one logs dict per epoch.
        metrics: final loss and accuracy per evaluated split (empty on ranks other than 0).
        training: the decisions taken (the run card's ``training`` section).
        is_main: False in torchrun processes other than rank 0 (which should print nothing).
    """

    run: Run
    history: list[Logs]
    metrics: dict[str, dict[str, float]]
    training: dict[str, Any] = field(default_factory=dict)
    is_main: bool = True


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


def _check_monitor(owner: str, name: str, *, may_have_val: bool) -> None:
    """A value ``owner`` monitors must be one the training logs will hold."""
    known = [key for key in log_keys(has_val=True) if key not in ("epoch", "time")]
    if name not in known:
        raise ConfigError(
            f"{owner} cannot monitor {name!r}.{did_you_mean(name, known)} "
            f"The training logs hold {', '.join(known)}"
        )
    if not may_have_val and name not in log_keys(has_val=False):
        raise ConfigError(
            f"{owner} monitors {name!r}, which needs validation data; --val-size 0 keeps "
            "none (monitor loss or accuracy instead)"
        )


def _make_callback(kind: type[Callback], options: dict[str, Any]) -> Any:
    """``kind(**options)``, each option checked against the signature first: an unknown
    name gets a suggestion, a value of the wrong kind says which kind it needs."""
    params = {
        name: param.default
        for name, param in inspect.signature(kind).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    for key, value in options.items():
        if key not in params:
            raise ConfigError(
                f"{kind.__name__} has no option {key!r}.{did_you_mean(key, params)} "
                f"Its options: {', '.join(params)}"
            )
        default = params[key]
        if isinstance(default, bool):
            wrong, need = not isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            wrong, need = isinstance(value, bool) or not isinstance(value, int), "a whole number"
        elif isinstance(default, float):
            wrong, need = isinstance(value, bool) or not isinstance(value, int | float), "a number"
        else:
            wrong, need = not isinstance(value, str), "a name"
        if wrong:
            raise ConfigError(f"{kind.__name__} option {key}={value!r}: needs {need}")
    return kind(**options)


def _recorders(config: TrainConfig, run: Run) -> list[Callback]:
    """Callbacks that save material for the report (filters at chosen epochs) into the run."""
    if not config.record_filters:
        return []
    from cnnkit.train.filters import FilterRecorder

    return [FilterRecorder(run.path, config.record_filters)]


def _callbacks(config: TrainConfig, run: Run, has_val: bool, is_main: bool) -> list[Callback]:
    """The job's own callbacks: guard, history, checkpoints, recorders, early stopping, LR on
    plateau (files are written by the main process only)."""
    callbacks: list[Callback] = [NanGuard()]
    if is_main:
        callbacks += [
            HistoryWriter(run.path),
            ModelCheckpoint(run.files.checkpoints, monitor="val_loss" if has_val else "loss"),
            *_recorders(config, run),
        ]
    if config.early_stopping is not None:
        callbacks.append(_make_callback(EarlyStopping, config.early_stopping))
    if config.reduce_lr is not None:
        callbacks.append(_make_callback(ReduceLROnPlateau, config.reduce_lr))
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
    try:
        config = TrainConfig.from_dict(card.config)
    except ConfigError as exc:
        raise RunError(f"{run.files.card}: config: {exc}") from exc
    if epochs is not None:
        config.epochs = epochs
    if device is not None:
        config.device = device
    last = run.files.last_checkpoint
    checkpoint = load_checkpoint(last) if last.is_file() else None
    position = checkpoint.get("position") if checkpoint is not None else None
    position = position if isinstance(position, dict) else {}
    trained = position.get("epoch")
    if isinstance(trained, int) and card.status == "finished" and trained >= config.epochs:
        raise ConfigError(
            f"{run.path} is finished: it has already trained {trained} of {config.epochs} "
            "epochs; ask for more epochs (--epochs) to continue"
        )
    if batch_size is not None:
        batch = position.get("batch")
        if isinstance(batch, int) and batch > 0:
            raise ConfigError(
                f"{last} stops inside an epoch; --batch-size can change only at the end of one "
                "(resume without it)"
            )
        config.batch_size = batch_size
    if checkpoint is None:
        if card.status == "finished":
            raise RunError(f"{last}: no checkpoint there, and {run.path} is finished")
        log.warning("%s has no checkpoint yet: training it from the start", run.path)
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
        before: RunCard | None = None
        if run is None:
            label = describe_model(config.model)
            if not isinstance(config.model, str):
                config = dataclasses.replace(config, model=label)
            run = _shared_run(config, label, context)
            if is_main:
                _write_card(
                    run,
                    config,
                    splits,
                    model,
                    model_record,
                    preprocessing,
                    device,
                    started,
                    context,
                )
                run.update_card(
                    training={"precision": resolve_precision(config.precision, device).name}
                )
        elif is_main:
            before = run.card  # put back if the checkpoint turns out not to fit
            run.update_card(status="training", config=dataclasses.asdict(config))
        job_callbacks = _callbacks(config, run, splits.val is not None, is_main)
        history = None
        loss = _loss(config, splits, run if is_main else None)
        try:
            history = fit(
                model,
                train=splits.train,
                val=splits.val,
                preprocessing=preprocessing,
                optimizer=config.optimizer,
                lr=config.lr,
                momentum=config.momentum,
                nesterov=config.nesterov,
                weight_decay=config.weight_decay,
                schedule=config.schedule,
                loss=loss,
                label_smoothing=config.label_smoothing,
                epochs=config.epochs,
                batch_size=config.batch_size,
                augment=augment,
                callbacks=[*job_callbacks, *callbacks],
                device=device,
                precision=config.precision,
                channels_last=config.channels_last,
                compile=config.compile,
                seed=config.seed,
                resume=resume,
                distributed=context,
                verbose=verbose,
                setup={"test": len(splits.test) if splits.test is not None else None},
            )
            metrics: dict[str, dict[str, float]] = {}
            if is_main:
                run.save_weights(model)
                metrics = {
                    name: loss_and_accuracy(model, ds, preprocessing=preprocessing, device=device)
                    for name, ds in splits.items()
                    if name != "train"
                }
                run.finish(metrics, history=history, started=started, training=history.training)
        except TrainingInterrupted as exc:
            if is_main:
                run.update_card(status="interrupted", training=exc.training)
            exc.run_path = str(run.path)
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C outside the loop: saving, evaluating
            if is_main:
                run.update_card(status="interrupted")
            stopped = TrainingInterrupted(
                list(history or []), dict(history.training) if history is not None else {}
            )
            stopped.run_path = str(run.path)
            raise stopped from exc
        except TrainingError as exc:
            if is_main:
                run.update_card(status="failed", error=str(exc))
            raise
        except ConfigError as exc:
            # refused before the first epoch's checkpoint: a failed start leaves nothing behind
            if created and is_main and not any(run.files.checkpoints.glob("*")):
                shutil.rmtree(run.path)
                raise
            if is_main and before is not None and history is None:
                run.write_card(before)
            elif is_main:
                run.update_card(status="failed", error=str(exc))
            raise
        except CnnkitError as exc:  # e.g. a checkpoint that does not fit: nothing trained
            if is_main and before is not None and history is None:
                run.write_card(before)
            elif is_main:
                run.update_card(status="failed", error=str(exc))
            raise
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise
            message = (
                f"out of memory on {device} training with batch size {config.batch_size}; "
                "the last checkpoint is kept. Continue with a smaller batch: cnnkit train "
                f"--resume {run.path} --batch-size {max(1, config.batch_size // 2)}"
            )
            if is_main:
                run.update_card(status="failed", error=message)
            raise TrainingError(message) from exc
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


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out (a GPU's, or the CPU allocator's)."""
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        "can't allocate memory" in str(exc)
    )


def _write_card(
    run: Run,
    config: TrainConfig,
    splits: Splits,
    model: torch.nn.Module,
    model_record: dict[str, Any],
    preprocessing: Preprocessing,
    device: torch.device,
    started: float,
    context: DistributedContext | None,
) -> None:
    run.write_card(
        RunCard(
            name=run.path.name,
            created=timestamp(started),
            config=dataclasses.asdict(config),
            model=ModelRecord.of_model(model_record, model),
            data=run.record_data(
                config.data,
                config.data_dir,
                splits,
                SplitSettings(config.seed, config.val_size, config.test_size, config.group_by),
                from_split_file=config.split_file,
            ),
            preprocessing=preprocessing,
            environment=Environment.describe(
                device, world_size=context.world_size if context is not None else None
            ),
        )
    )
