"""Fine-tuning: a pretrained backbone with a new head, some layers frozen, trained by ``fit``.

- :func:`parse_freeze` / :func:`freeze`: freeze ``all`` of the backbone, ``none``, or
  ``until:LAYER`` (every layer up to and including LAYER, e.g. ``until:blocks.8``). The head
  always trains. Frozen parameters stop receiving gradients and frozen BatchNorm layers are
  held in eval mode — their running statistics stay as pretrained even though the training
  loop calls ``model.train()`` every epoch (a forward pre-hook switches them back).
- :class:`UnfreezeAfter`: a callback unfreezing everything after N epochs.
- :func:`param_groups`: discriminative learning rates — the head at ``lr``, the backbone at
  ``lr * backbone_lr_mult``.
- :func:`finetune`: the whole job, written as a normal run directory, so ``cnnkit
  evaluate RUN`` works and ``run:RUN`` can serve as a backbone in turn.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from cnnkit.card import SplitSettings, TransferRecord
from cnnkit.data.dataset import Splits
from cnnkit.data.sources import fit_rule, get_source, load_dataset
from cnnkit.devices import resolve_device
from cnnkit.errors import ConfigError, RunError, did_you_mean
from cnnkit.layers.classifier import Classifier
from cnnkit.models.adapter import AdaptedClassifier
from cnnkit.models.probes import layer_path
from cnnkit.run import Run
from cnnkit.train.callbacks import Callback, Logs
from cnnkit.train.config import TrainConfig, config_from_dict, same_as, setting
from cnnkit.train.optim import make_optimizer
from cnnkit.train.runner import Job, create_run, resume_point
from cnnkit.transfer.backbones import Backbone, check_backbone_inputs, load_backbone
from cnnkit.transfer.sample import Sample

log = logging.getLogger(__name__)

FREEZE_CHOICES = "all, none or until:LAYER"
# evaluated images per batch: a backbone at 224x224 holds far more activations per image than
# the small models evaluation's default batch was chosen for
BACKBONE_EVAL_BATCH = 128
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


# -- freezing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeSpec:
    """What to freeze: ``all`` / ``none`` of the backbone, or ``until`` a named layer."""

    mode: str
    layer: str | None = None

    def __str__(self) -> str:
        return f"until:{self.layer}" if self.mode == "until" else self.mode


def parse_freeze(text: str) -> FreezeSpec:
    """``"all"``, ``"none"`` or ``"until:LAYER"`` -> :class:`FreezeSpec`."""
    text = text.strip()
    if text in ("all", "none"):
        return FreezeSpec(text)
    mode, sep, layer = text.partition(":")
    if mode == "until" and sep and layer.strip():
        return FreezeSpec("until", layer.strip())
    raise ConfigError(f"--freeze {text!r} is not understood; use {FREEZE_CHOICES}")


def feature_extractor(model: Classifier) -> nn.Module:
    """The backbone part of ``model`` whose layers ``until:LAYER`` names (adapter excluded)."""
    return model.backbone if isinstance(model, AdaptedClassifier) else model.features


def layer_names(model: Classifier, *, depth: int = 2) -> list[str]:
    """Names of the backbone's layers that hold parameters, down to ``depth`` dots deep."""
    names = []
    for name, module in feature_extractor(model).named_modules():
        if name and name.count(".") < depth and any(True for _ in module.parameters()):
            names.append(name)
    return names


@dataclass
class Frozen:
    """What :func:`freeze` froze, so that :func:`unfreeze` can undo it.

    Attributes:
        parameters: names (relative to the model) of the frozen parameters.
        norms: names of the BatchNorm layers held in eval mode.
    """

    parameters: list[str] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)
    _handles: list[RemovableHandle] = field(default_factory=list, repr=False)


def _keep_eval(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: a frozen BatchNorm normalises with its stored statistics, always."""
    module.train(False)


def freeze(model: Classifier, spec: FreezeSpec) -> Frozen:
    """Freeze part of ``model``'s backbone in place (the head always stays trainable).

    Raises:
        ConfigError: ``until:LAYER`` names no layer (the message suggests close names).
    """
    features = feature_extractor(model)
    modules = list(features.named_modules())
    if spec.mode == "none":
        return Frozen()
    if spec.mode == "all":
        chosen = modules
    else:
        # a backbone nested in a fine-tuned run names its blocks backbone.blocks.3
        layer = layer_path(str(spec.layer), [name for name, _ in modules])
        inside = [
            i
            for i, (name, _) in enumerate(modules)
            if layer is not None and (name == layer or name.startswith(f"{layer}."))
        ]
        if not inside:
            names = layer_names(model)
            hint = did_you_mean(spec.layer, names, n=3)
            raise ConfigError(
                f"--freeze until:{spec.layer}: the backbone has no layer {spec.layer!r}.{hint} "
                f"Its layers: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}"
            )
        chosen = modules[: inside[-1] + 1]
    owner = {id(module): name for name, module in model.named_modules()}
    frozen = Frozen()
    for _, module in chosen:
        for param_name, param in module.named_parameters(recurse=False):
            param.requires_grad_(False)
            frozen.parameters.append(f"{owner[id(module)]}.{param_name}")
        if isinstance(module, _NORMS):
            frozen.norms.append(owner[id(module)])
            frozen._handles.append(module.register_forward_pre_hook(_keep_eval))
            module.eval()
    log.info(
        "froze %d parameter tensors and %d BatchNorm layers (%s)",
        len(frozen.parameters),
        len(frozen.norms),
        spec,
    )
    return frozen


def unfreeze(model: nn.Module, frozen: Frozen) -> None:
    """Undo :func:`freeze`: parameters train again, BatchNorm layers follow train/eval again."""
    parameters = dict(model.named_parameters())
    for name in frozen.parameters:
        parameters[name].requires_grad_(True)
    for handle in frozen._handles:
        handle.remove()
    frozen.parameters.clear()
    frozen.norms.clear()
    frozen._handles.clear()


class UnfreezeAfter(Callback):
    """Unfreezes the whole model at the start of epoch ``epochs + 1`` (after ``epochs``)."""

    def __init__(self, model: nn.Module, frozen: Frozen, epochs: int) -> None:
        self.model = model
        self.frozen = frozen
        self.epochs = epochs

    def on_epoch_begin(self, epoch: int) -> None:  # >=: a resumed run may start later
        if epoch >= self.epochs and self.frozen.parameters:
            log.info("unfreezing the backbone after %d epochs", self.epochs)
            unfreeze(self.model, self.frozen)


# -- discriminative learning rates -----------------------------------------------------------


def param_groups(
    model: Classifier, *, lr: float, backbone_lr_mult: float = 0.1
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at ``lr``, everything else at ``lr * mult``.

    Frozen parameters are included, so unfreezing later needs no new optimizer (they get
    no gradient, hence no update, while frozen). The head's group comes first, so the
    ``lr`` column of the training history is the head's.
    """
    if lr <= 0 or backbone_lr_mult < 0:
        raise ConfigError(
            f"learning rate must be positive and the backbone multiplier not negative, "
            f"got lr {lr} and multiplier {backbone_lr_mult}"
        )
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return [
        {"params": head, "lr": lr, "name": "head"},
        {"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"},
    ]


# -- the job -----------------------------------------------------------------------------------


@dataclass
class FinetuneConfig:
    """A fine-tuning job; the defaults fine-tune EfficientNet-Lite0's head on Fashion-MNIST.

    Each field is declared once, with its ``cnnkit finetune`` option (see
    :mod:`cnnkit.train.config`); the settings both jobs have are ``TrainConfig``'s own.

    Attributes:
        backbone: backbone spec (``efficientnet_lite0``, ``run:PATH``).
        data: data source name; data_dir: read it from this folder only.
        train_per_class, val_size, test_size: the sample to use (:class:`Sample`);
            None keeps a split whole, ``val_size=0`` drops validation.
        input_size: square input side instead of the backbone's own (faster on CPU).
        freeze: ``all``, ``none`` or ``until:LAYER``.
        unfreeze_after: unfreeze everything after this many epochs (None: never).
        epochs, batch_size, optimizer: as for ``cnnkit train``.
        lr: the head's learning rate; backbone_lr_mult: the backbone's is ``lr`` times this.
        seed: seeds the sample, the new head and the shuffling.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        runs_dir, name: where the run directory goes and its name.
    """

    backbone: str = setting(
        "efficientnet_lite0", "--backbone", "-b", help="efficientnet_lite0 or run:PATH."
    )
    data: str = setting(
        "fashion-mnist",
        "--data",
        "-d",
        metavar="SOURCE",
        help="Data source: a name (see `cnnkit datasets`), folder:PATH or a folder.",
    )
    data_dir: str | None = same_as(TrainConfig, "data_dir")
    train_per_class: int | None = setting(
        None, "--train-per-class", min=1, help="Use this many training images per class."
    )
    val_size: int | None = setting(
        None,
        "--val-size",
        min=0,
        help="Validate on a stratified sample of this many validation images (0: none).",
    )
    test_size: int | None = setting(
        None, "--test-size", min=1, help="Use a stratified sample of this many test images."
    )
    input_size: int | None = setting(
        None,
        "--input-size",
        min=8,
        help="Resize to this square side instead of the backbone's own (e.g. 112: 4x faster).",
    )
    freeze: str = setting(
        "all", "--freeze", help="Freeze the backbone: all, none, or until:LAYER (e.g. blocks.8)."
    )
    unfreeze_after: int | None = setting(
        None, "--unfreeze-after", min=1, help="Unfreeze everything after this many epochs."
    )
    epochs: int = setting(
        5,
        "--epochs",
        "-e",
        min=1,
        default_text="chosen from a folder's size, else 5",
        help="Passes over the training set.",
    )
    batch_size: int = setting(32, "--batch-size", min=1, help="Samples per step.")
    optimizer: str = same_as(TrainConfig, "optimizer")
    lr: float = setting(1e-3, "--lr", help="Learning rate of the new head.")
    backbone_lr_mult: float = setting(
        0.1,
        "--backbone-lr-mult",
        help="Backbone learning rate = lr x this (discriminative).",
    )
    seed: int = setting(0, "--seed", help="Seeds the sample, the new head(s) and the training.")
    device: str = same_as(TrainConfig, "device")
    runs_dir: str = same_as(TrainConfig, "runs_dir")
    name: str | None = same_as(TrainConfig, "name")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        """A config from a dict (a fine-tuned run card's ``config``); unknown keys are an
        error."""
        return config_from_dict(cls, values, what="fine-tuning")

    def validate(self) -> None:
        """Check the settings that can be checked before data is loaded or a run made.

        Raises:
            ConfigError, RunError: the first setting found wrong.
        """
        resolve_device(self.device)
        _check(self)


@dataclass
class FinetuneResult:
    """What a fine-tuning job produced."""

    run: Run
    history: list[Logs]
    metrics: dict[str, dict[str, Any]]


def _check(config: FinetuneConfig) -> FreezeSpec:
    """Every setting that can be checked before data is loaded or a run directory made."""
    spec = parse_freeze(config.freeze)
    make_optimizer(config.optimizer, [nn.Parameter(torch.zeros(1))], lr=config.lr)
    get_source(config.data)
    if config.name is not None:
        Run.check_new(config.runs_dir, config.name)
    if config.unfreeze_after is not None:
        if spec.mode == "none":
            raise ConfigError("--unfreeze-after needs something frozen; use --freeze all or until")
        if not 0 < config.unfreeze_after < config.epochs:
            raise ConfigError(
                f"--unfreeze-after {config.unfreeze_after} must be between 1 and epochs - 1 "
                f"({config.epochs - 1}), or training ends before anything is unfrozen"
            )
    return spec


def finetune(config: FinetuneConfig, *, callbacks: Sequence[Callback] = ()) -> FinetuneResult:
    """Fine-tune a backbone on a data source and save the result as a run directory
    (resumable: ``checkpoints/last.pt`` after each epoch, as for ``cnnkit train``)."""
    return _finetune(config, callbacks=callbacks)


def resume_finetune(
    run_path: str,
    *,
    epochs: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> FinetuneResult:
    """Continue the fine-tune at ``run_path`` from its last checkpoint with its recorded
    settings (``epochs``, ``device`` and, at the end of an epoch, ``batch_size`` may change),
    as :func:`~cnnkit.train.job.resume_training` continues a train run.

    Raises:
        RunError: not a fine-tuned run, a damaged checkpoint, or the data changed since.
        ConfigError: the run is finished, or ``batch_size`` is given mid-epoch.
    """
    run = Run.open(run_path)
    if run.card.transfer is None:
        raise RunError(
            f"{run.path} was not fine-tuned; continue it with cnnkit train --resume {run.path}"
        )
    try:
        config = FinetuneConfig.from_dict(run.card.config)
    except ConfigError as exc:
        raise RunError(f"{run.files.card}: config: {exc}") from exc
    config.epochs = epochs if epochs is not None else config.epochs
    config.device = device if device is not None else config.device
    checkpoint = resume_point(run, config.epochs, batch_size)
    config.batch_size = batch_size if batch_size is not None else config.batch_size
    return _finetune(config, callbacks=callbacks, run=run, resume=checkpoint)


def _finetune(
    config: FinetuneConfig,
    *,
    callbacks: Sequence[Callback],
    run: Run | None = None,
    resume: dict[str, Any] | None = None,
) -> FinetuneResult:
    """A new fine-tune (``run`` None), or ``run`` continued from the checkpoint ``resume``."""
    started = time.time()
    device = resolve_device(config.device)
    spec = _check(config) if run is None else parse_freeze(config.freeze)
    sample = Sample(config.train_per_class, config.val_size, config.test_size, config.seed)

    def load(split_file: str | None) -> Splits:
        return load_dataset(
            config.data,
            data_dir=config.data_dir,
            val_size=sample.holdout,
            seed=config.seed,
            split_file=split_file,
        )

    if run is None:
        full = load(None)
        splits = sample.apply(full)
    else:  # exactly the samples the run recorded, or an error
        with run.data_changes():
            full = load(str(run.files.split))
        splits = sample.apply(full)
        run.check_data(splits.items())
    backbone = load_backbone(config.backbone)
    shape, num_classes = splits.train.image_shape, splits.train.num_classes
    record = backbone.model_record(shape, num_classes, input_size=config.input_size)
    torch.manual_seed(config.seed)  # the new head's initial weights (a resumed run's: loaded)
    model = backbone.classifier_for(shape, num_classes, input_size=config.input_size)
    frozen = freeze(model, spec)
    preprocessing = Backbone.preprocessing_for(shape, fit=fit_rule(config.data))
    with torch.no_grad():
        check_backbone_inputs(model.adapter(preprocessing(splits.train.images[:256])), backbone)
    groups = param_groups(model, lr=config.lr, backbone_lr_mult=config.backbone_lr_mult)
    optimizer = make_optimizer(config.optimizer, groups, lr=config.lr)

    created = run is None
    if run is None:
        run = create_run(
            config.runs_dir, config.name, model=f"finetune-{config.backbone}", data=config.data
        )
    resume_with = f"cnnkit finetune --resume {run.path}"
    job = Job(run, started, device, model, splits, preprocessing, resume_with, created=created)
    if created:
        new_run = run
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        job.start(
            dataclasses.asdict(config),
            record,
            # the full split goes in the split file (as `cnnkit train` writes it); the sample
            # drawn from each part is re-drawn by Run.load_data from data.subsets
            data=lambda: new_run.record_data(
                config.data,
                config.data_dir,
                full,
                SplitSettings(seed=config.seed, val_size=sample.holdout),
                sample=(sample, splits),
            ),
            transfer=TransferRecord(
                backbone=backbone.name,
                backbone_digest=backbone.digest(),
                backbone_input={
                    "shape": list(model.adapter.input_shape),
                    "mean": list(backbone.mean),
                    "std": list(backbone.std),
                    "color_order": backbone.color_order,
                },
                freeze=str(spec),
                frozen_parameter_tensors=len(frozen.parameters),
                frozen_batchnorm_layers=len(frozen.norms),
                trainable_parameters_at_start=trainable,
                unfreeze_after=config.unfreeze_after,
                lr={"head": config.lr, "backbone": config.lr * config.backbone_lr_mult},
            ),
        )
    else:
        job.before = run.card  # put back if the checkpoint turns out not to fit
        run.update_card(status="training", config=dataclasses.asdict(config))
    hooks: list[Callback] = []
    if config.unfreeze_after is not None:
        hooks.append(UnfreezeAfter(model, frozen, config.unfreeze_after))
    with job.recording(batch_size=config.batch_size):
        history = job.train(
            callbacks=[*hooks, *callbacks],
            optimizer=optimizer,
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            resume=resume,
        )
        unfreeze(model, frozen)  # hooks off: the saved model behaves like any other
        metrics = job.finish(batch_size=BACKBONE_EVAL_BATCH)
    return FinetuneResult(run=run, history=history, metrics=metrics)
