"""The run card (``run.json``): what a run is, as typed records with a format version.

A :class:`RunCard` has one section per concern, each a dataclass with ``to_dict`` and
``from_dict``:

- :class:`ModelRecord` — the model to rebuild (registry name and options, or a layer spec),
  its input shape, class count and parameter count;
- :class:`DataRecord` — the data source, how it was split (hold-out sizes, seed, groups, the
  split file), class names, split sizes, fingerprints and the samples drawn;
- ``preprocessing`` — the input contract, a :class:`~cnnkit.data.preprocess.Preprocessing`
  (channels, size, resize rule, mean and std);
- :class:`Environment` — versions and hardware;
- :class:`TransferRecord` — for fine-tuned runs, the backbone and what was frozen;
- the status fields (``status``, ``error``, ``created``, ``train_seconds``, ...), the
  ``config`` the job ran with, the ``training`` decisions taken (best epoch, early stop, LR
  reductions, precision).

Reading checks every field's type and range and that the sections agree (class names per
class, input shapes); the first problem is one :class:`~cnnkit.errors.RunError` naming the
file and the field. ``format`` numbers the layout: a card without one (written before
formats were numbered, format 1) is migrated when read (:func:`migrate`); a card of a newer
format than this cnnkit knows is refused with a message saying to upgrade. Reading never
rewrites the file; the next write stores the current format.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnkit.data.dataset import Splits
from cnnkit.data.images import DEFAULT_FIT, FIT_MODES
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import CnnkitError, RunError
from cnnkit.fields import MAX_CLASSES, FieldChecker
from cnnkit.openmp import wait_policy
from cnnkit.run_files import SPLIT_FILE

FORMAT = 2  # the run card layout this cnnkit writes (1: cards without a "format" field)
TorchDevice = torch.device  # (Environment has a field named torch)
STATUSES = ("training", "finished", "interrupted", "failed")
DAMAGED = "the run card was changed or damaged"


def _checker(file: str | os.PathLike[str]) -> FieldChecker:
    return FieldChecker(str(file), RunError, DAMAGED)


def _int_map(check: FieldChecker, value: Any, field: str) -> dict[str, int]:
    check.mapping(value, field)
    for key, number in value.items():
        check.integer(number, f"{field}.{key}", low=0)
    return dict(value)


def _text_map(check: FieldChecker, value: Any, field: str) -> dict[str, str]:
    check.mapping(value, field)
    for key, text in value.items():
        check.text(text, f"{field}.{key}")
    return dict(value)


def _optional_text(check: FieldChecker, value: Any, field: str) -> str | None:
    if value is not None:
        check.text(value, field)
    return value


def _optional_size(check: FieldChecker, value: Any, field: str) -> int | float | None:
    if value is not None:
        check.number(value, field, low=0)
    return value


@dataclass(frozen=True)
class ModelRecord:
    """The model a run trained, enough to rebuild it (:func:`cnnkit.models.resolve.rebuild_model`).

    Attributes:
        name: registry name, or the label of a model built from layers.
        input_shape: ``(C, H, W)``.
        num_classes: outputs of the classifier.
        options: the registry builder's options (e.g. ``{"init": "normal"}``).
        spec: the layer spec of a model built from layers (None: built by name).
        parameters: the parameter count.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    parameters: int | None = None

    @classmethod
    def of_model(cls, record: Mapping[str, Any], model: torch.nn.Module) -> ModelRecord:
        """The record ``resolve_model`` (or a backbone) gave, with ``model``'s parameter count."""
        parameters = sum(p.numel() for p in model.parameters())
        return cls.from_dict({**record, "parameters": parameters}, "the model record")

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "options": dict(self.options),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }
        if self.spec is not None:
            record["spec"] = self.spec
        if self.parameters is not None:
            record["parameters"] = self.parameters
        return record

    @classmethod
    def from_dict(cls, value: Any, file: str | os.PathLike[str]) -> ModelRecord:
        check = _checker(file)
        check.mapping(value, "model")
        check.keys(
            value,
            "model",
            required=("name", "input_shape", "num_classes"),
            allowed=("options", "spec", "parameters"),
        )
        check.text(value["name"], "model.name")
        check.shape(value["input_shape"], "model.input_shape")
        check.integer(value["num_classes"], "model.num_classes", low=1, high=MAX_CLASSES)
        for key in ("options", "spec"):
            if value.get(key) is not None:
                check.mapping(value[key], f"model.{key}")
        if value.get("parameters") is not None:
            check.integer(value["parameters"], "model.parameters", low=0)
        return cls(
            name=value["name"],
            input_shape=tuple(value["input_shape"]),  # type: ignore[arg-type]
            num_classes=value["num_classes"],
            options=dict(value.get("options") or {}),
            spec=value.get("spec"),
            parameters=value.get("parameters"),
        )


@dataclass(frozen=True)
class SplitSettings:
    """How a data source's parts were split (the keywords of ``load_dataset``/``make_splits``).

    Attributes:
        seed: seeds the split.
        val_size: validation samples held out of train (count or fraction; None = the
            source's default, 0 = none).
        test_size: test samples held out for sources without a test part.
        group_by: the regular expression that kept each sample's group in one part.
    """

    seed: int = 0
    val_size: int | float | None = None
    test_size: int | float | None = None
    group_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as keyword arguments, in the order split files record them."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DataRecord:
    """The data a run was trained on, and how it was split.

    Attributes:
        source: the data source, as recorded (folder paths absolute).
        classes: class names, in label order.
        data_dir: the folder the source's files were read from, if not the default.
        split_file: the run's split file (in the run folder) naming every split's samples.
        split: how the parts were made (stored flat: ``split_seed``, ``val_size``,
            ``test_size``, ``group_by``).
        sizes: samples per split.
        fingerprints: SHA-256 of each split's images and labels.
        origin: where each split's samples came from, in words.
        subsets: per split, the ``stratified_sample`` arguments that re-draw a sample of it
            (fine-tuning on N per class).
        sample: the sample drawn, in words.
    """

    source: str
    classes: tuple[str, ...]
    data_dir: str | None = None
    split_file: str | None = None
    split: SplitSettings = SplitSettings()
    sizes: dict[str, int] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)
    sample: str | None = None

    @classmethod
    def of_splits(
        cls,
        source: str,
        data_dir: str | None,
        splits: Splits,
        split: SplitSettings,
        *,
        subsets: Mapping[str, Mapping[str, int]] | None = None,
        sample: str | None = None,
    ) -> DataRecord:
        """The record of ``splits``; the split file it names is written beside the card."""
        return cls(
            source=source,
            classes=tuple(splits.train.classes),
            data_dir=data_dir,
            split_file=SPLIT_FILE,
            split=split,
            sizes={name: len(ds) for name, ds in splits.items()},
            fingerprints={name: ds.fingerprint() for name, ds in splits.items()},
            origin={name: ds.source for name, ds in splits.items()},
            subsets={k: dict(v) for k, v in (subsets or {}).items()},
            sample=sample,
        )

    def default_split(self) -> str:
        """The split evaluated by default: ``test``, or ``val`` when there is no test part."""
        return "test" if not self.sizes or self.sizes.get("test") else "val"

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["classes"] = list(self.classes)
        settings = record.pop("split")
        record = {**record, "split_seed": settings.pop("seed"), **settings}
        for key in ("subsets", "sample"):
            if not record[key]:
                del record[key]
        return record

    @classmethod
    def from_dict(cls, value: Any, file: str | os.PathLike[str]) -> DataRecord:
        check = _checker(file)
        check.mapping(value, "data")
        names = [f.name for f in dataclasses.fields(cls) if f.name != "split"]
        names += ["split_seed", "val_size", "test_size", "group_by"]
        check.keys(value, "data", required=("source", "classes"), allowed=names)
        check.text(value["source"], "data.source")
        classes = value["classes"]
        check.sequence(classes, "data.classes")
        for i, name in enumerate(classes):
            check.text(name, f"data.classes[{i}]")
        for key in ("data_dir", "group_by", "sample"):
            _optional_text(check, value.get(key), f"data.{key}")
        if value.get("split_file") is not None:
            check.text(value["split_file"], "data.split_file")
            check.file_name(value["split_file"], "data.split_file")
        check.integer(value.get("split_seed", 0), "data.split_seed")
        for key in ("val_size", "test_size"):
            _optional_size(check, value.get(key), f"data.{key}")
        subsets = value.get("subsets", {})
        check.mapping(subsets, "data.subsets")
        return cls(
            source=value["source"],
            classes=tuple(classes),
            data_dir=value.get("data_dir"),
            split_file=value.get("split_file"),
            split=SplitSettings(
                seed=value.get("split_seed", 0),
                val_size=value.get("val_size"),
                test_size=value.get("test_size"),
                group_by=value.get("group_by"),
            ),
            sizes=_int_map(check, value.get("sizes", {}), "data.sizes"),
            fingerprints=_text_map(check, value.get("fingerprints", {}), "data.fingerprints"),
            origin=_text_map(check, value.get("origin", {}), "data.origin"),
            subsets={
                split: _int_map(check, numbers, f"data.subsets.{split}")
                for split, numbers in subsets.items()
            },
            sample=value.get("sample"),
        )


@dataclass(frozen=True)
class Environment:
    """Versions and hardware a run was trained with.

    Attributes:
        cnnkit, torch, numpy, python: versions.
        platform: the operating system, as ``platform.platform()`` says it.
        processor: the CPU's name.
        cpu_threads: torch's CPU threads.
        device: the training device.
        gpu: the GPU's name, when training on one.
        world_size: processes training together (under torchrun).
        openmp_wait: how torch's OpenMP threads waited for work (:mod:`cnnkit.openmp`).
    """

    cnnkit: str
    torch: str
    numpy: str
    python: str
    platform: str
    processor: str
    cpu_threads: int
    device: str
    gpu: str | None = None
    world_size: int | None = None
    openmp_wait: str | None = None

    @classmethod
    def describe(cls, device: TorchDevice, *, world_size: int | None = None) -> Environment:
        """This machine, training on ``device``."""
        import numpy

        from cnnkit import __version__

        return cls(
            cnnkit=__version__,
            torch=torch.__version__,
            numpy=numpy.__version__,
            python=platform.python_version(),
            platform=platform.platform(),
            processor=_cpu_name(),
            cpu_threads=torch.get_num_threads(),
            device=str(device),
            gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            world_size=world_size,
            openmp_wait=wait_policy(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, value: Any, file: str | os.PathLike[str]) -> Environment:
        check = _checker(file)
        check.mapping(value, "environment")
        names = [f.name for f in dataclasses.fields(cls)]
        required = [n for n in names if n not in ("gpu", "world_size", "openmp_wait")]
        check.keys(value, "environment", required=required, allowed=names)
        for key in required:
            if key != "cpu_threads":
                check.text(value[key], f"environment.{key}")
        check.integer(value["cpu_threads"], "environment.cpu_threads", low=1)
        _optional_text(check, value.get("gpu"), "environment.gpu")
        _optional_text(check, value.get("openmp_wait"), "environment.openmp_wait")
        if value.get("world_size") is not None:
            check.integer(value["world_size"], "environment.world_size", low=1)
        return cls(**value)


@dataclass(frozen=True)
class TransferRecord:
    """How a fine-tuned run was made from a pretrained backbone.

    Attributes:
        backbone: the backbone's name (``efficientnet_lite0``, ``run:PATH``).
        backbone_digest: SHA-256 of its pretrained weights.
        backbone_input: what the backbone takes: ``shape``, ``mean``, ``std``, ``color_order``.
        freeze: what was frozen (``all``, ``none``, ``until:LAYER``).
        frozen_parameter_tensors: parameter tensors frozen at the start.
        frozen_batchnorm_layers: batch-norm layers kept in inference mode.
        trainable_parameters_at_start: parameters trained from the first epoch.
        unfreeze_after: the epoch after which everything was unfrozen, if any.
        lr: learning rates of the ``head`` and the ``backbone``.
    """

    backbone: str
    backbone_digest: str
    backbone_input: dict[str, Any]
    freeze: str
    frozen_parameter_tensors: int
    frozen_batchnorm_layers: int
    trainable_parameters_at_start: int
    unfreeze_after: int | None
    lr: dict[str, float]

    def describe(self) -> str:
        """``fine-tuned (freeze until:blocks.10, all unfrozen after 2 epochs)``."""
        after = f", all unfrozen after {self.unfreeze_after} epochs" if self.unfreeze_after else ""
        return f"fine-tuned (freeze {self.freeze}{after})"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Any, file: str | os.PathLike[str]) -> TransferRecord:
        check = _checker(file)
        check.mapping(value, "transfer")
        names = [f.name for f in dataclasses.fields(cls)]
        check.keys(value, "transfer", required=names)
        for key in ("backbone", "backbone_digest", "freeze"):
            check.text(value[key], f"transfer.{key}")
        for key in ("frozen_parameter_tensors", "frozen_batchnorm_layers"):
            check.integer(value[key], f"transfer.{key}", low=0)
        check.integer(
            value["trainable_parameters_at_start"], "transfer.trainable_parameters_at_start", low=0
        )
        if value["unfreeze_after"] is not None:
            check.integer(value["unfreeze_after"], "transfer.unfreeze_after", low=1)
        check.mapping(value["backbone_input"], "transfer.backbone_input")
        check.mapping(value["lr"], "transfer.lr")
        for key, rate in value["lr"].items():
            check.number(rate, f"transfer.lr.{key}", low=0)
        return cls(**value)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timestamp(seconds: float) -> str:
    """``time.time()`` as the card's ``created`` text (local time with its offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


@dataclass(frozen=True)
class RunCard:
    """The run card: everything needed to reuse a trained model without the code that made it.

    Attributes:
        name: the run directory's name.
        created: when the job started (:func:`timestamp`).
        config: the settings the job ran with (a ``TrainConfig`` or ``FinetuneConfig`` as a
            dict).
        model: the model to rebuild.
        data: the data and its split.
        preprocessing: the input contract.
        environment: versions and hardware.
        status: ``training``, ``finished``, ``interrupted`` or ``failed``.
        error: why the job failed.
        training: the decisions taken during training (``best_epoch``, ``stopped_epoch``,
            ``monitor``, ``precision``, ``lr_reductions``, ``interrupted``, ...).
        transfer: how a fine-tuned run was made (backbone, freezing, learning rates).
        class_weights: per class, the weight of its loss (``--class-weight balanced``).
        train_seconds: seconds spent in training epochs.
        total_seconds: seconds from the job's start to its end.
    """

    name: str
    created: str
    config: dict[str, Any]
    model: ModelRecord
    data: DataRecord
    preprocessing: Preprocessing
    environment: Environment
    status: str = "training"
    error: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    transfer: TransferRecord | None = None
    class_weights: dict[str, float] | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

    def to_dict(self) -> dict[str, Any]:
        """The card as written to ``run.json``, ``format`` first."""
        card: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "status": self.status,
            "created": self.created,
            "config": self.config,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "environment": self.environment.to_dict(),
            "training": self.training,
        }
        if self.transfer is not None:
            card["transfer"] = self.transfer.to_dict()
        for key in ("error", "class_weights", "train_seconds", "total_seconds"):
            if getattr(self, key) is not None:
                card[key] = getattr(self, key)
        return card

    @classmethod
    def from_dict(cls, value: Any, file: str | os.PathLike[str]) -> RunCard:
        """The card in ``value`` (parsed ``run.json``), migrated to the current format and
        checked field by field.

        Raises:
            RunError: ``<file>: <field> ...`` for the first field that is wrong, or the card
                is of a newer format than this cnnkit reads.
        """
        check = _checker(file)
        card = migrate(value, file)
        names = [f.name for f in dataclasses.fields(cls)]
        required = ("name", "created", "config", "model", "data", "preprocessing", "environment")
        check.keys(card, "", required=("format", *required), allowed=names)
        for key in ("name", "created"):
            check.text(card[key], key)
        check.choice(card.get("status", "training"), "status", STATUSES)
        _optional_text(check, card.get("error"), "error")
        for key in ("train_seconds", "total_seconds"):
            if card.get(key) is not None:
                check.number(card[key], key, low=0)
        for key in ("config", "model", "data", "preprocessing", "environment", "training"):
            check.mapping(card.get(key, {}), key)
        if card.get("class_weights") is not None:
            check.mapping(card["class_weights"], "class_weights")
        for key, weight in (card.get("class_weights") or {}).items():
            check.number(weight, f"class_weights.{key}", low=0)
        _check_training(check, card.get("training", {}))
        model = ModelRecord.from_dict(card["model"], file)
        data = DataRecord.from_dict(card["data"], file)
        if len(data.classes) != model.num_classes:
            check.fail(
                "data.classes",
                f"names {len(data.classes)} classes but model.num_classes is {model.num_classes}",
            )
        preprocessing = _preprocessing(check, card["preprocessing"])
        if preprocessing.input_shape != model.input_shape:
            check.fail(
                "preprocessing.input_shape",
                f"{list(preprocessing.input_shape)} differs from model.input_shape "
                f"{list(model.input_shape)}",
            )
        return cls(
            name=card["name"],
            created=card["created"],
            config=card["config"],
            model=model,
            data=data,
            preprocessing=preprocessing,
            environment=Environment.from_dict(card["environment"], file),
            status=card.get("status", "training"),
            error=card.get("error"),
            training=card.get("training", {}),
            transfer=None
            if card.get("transfer") is None
            else TransferRecord.from_dict(card["transfer"], file),
            class_weights=card.get("class_weights"),
            train_seconds=card.get("train_seconds"),
            total_seconds=card.get("total_seconds"),
        )


def _check_training(check: FieldChecker, training: dict[str, Any]) -> None:
    """The ``training`` decisions that readers use have their types (the others are kept)."""
    for key in ("best_epoch", "stopped_epoch", "epochs_run", "checkpoint_best_epoch"):
        if training.get(key) is not None:
            check.integer(training[key], f"training.{key}", low=0)
    for key in ("precision", "monitor"):
        _optional_text(check, training.get(key), f"training.{key}")
    if training.get("lr_reductions") is not None:
        check.sequence(training["lr_reductions"], "training.lr_reductions")
        for i, epoch in enumerate(training["lr_reductions"]):
            check.integer(epoch, f"training.lr_reductions[{i}]", low=0)


def _preprocessing(check: FieldChecker, value: dict[str, Any]) -> Preprocessing:
    """The card's input contract, every field checked (``preprocessing.*``)."""
    check.keys(value, "preprocessing", required=("input_shape", "mean", "std", "fit"), allowed=())
    check.shape(value["input_shape"], "preprocessing.input_shape")
    channels = value["input_shape"][0]
    for key in ("mean", "std"):
        check.sequence(value[key], f"preprocessing.{key}")
        if len(value[key]) != channels:
            check.fail(
                f"preprocessing.{key}", f"has {len(value[key])} values for {channels} channel(s)"
            )
        for i, number in enumerate(value[key]):
            check.number(number, f"preprocessing.{key}[{i}]", low=0 if key == "std" else None)
            if key == "std" and number == 0:
                check.fail(f"preprocessing.std[{i}]", "is 0; a standard deviation is positive")
    check.choice(value["fit"], "preprocessing.fit", FIT_MODES)
    return Preprocessing(
        input_shape=tuple(value["input_shape"]),  # type: ignore[arg-type]
        mean=tuple(float(v) for v in value["mean"]),
        std=tuple(float(v) for v in value["std"]),
        fit=value["fit"],
    )


# -- formats ---------------------------------------------------------------------------------


def migrate(card: Any, file: str | os.PathLike[str]) -> dict[str, Any]:
    """``card`` (a parsed ``run.json``) in the current format; the input is not changed.

    Format 1 (no ``format`` field; cnnkit before the run card was typed) becomes format 2:
    the resize rule, which format 1 left to be re-read from the data source's name, is
    written into ``preprocessing.fit``; the hold-out sizes and the grouping the split was
    made with move from ``config`` into ``data`` (``val_size``, ``test_size``,
    ``group_by``), where the split is described.

    Raises:
        RunError: the card is not a JSON object, its format is not a whole number, or it is
            of a newer format than this cnnkit reads.
    """
    check = _checker(file)
    check.mapping(card, "the card")
    version = card.get("format", 1)
    check.integer(version, "format", low=1)
    if version > FORMAT:
        from cnnkit import __version__

        raise RunError(
            f"{file}: run card format {version} was written by a newer cnnkit; cnnkit "
            f"{__version__} reads formats up to {FORMAT}. Upgrade cnnkit "
            "(pip install --upgrade cnnkit) to use this run"
        )
    if version == 1:
        card = _from_format_1(card, check)
    return card


def _from_format_1(card: dict[str, Any], check: FieldChecker) -> dict[str, Any]:
    card = {"format": 2, **card}
    for key in ("config", "data", "preprocessing"):
        check.mapping(card.get(key, {}), key)
    config = card.get("config", {})
    data = card.get("data")
    if data is not None:
        card["data"] = {
            **data,
            **{k: config.get(k) for k in ("val_size", "test_size", "group_by") if k not in data},
        }
    pre = card.get("preprocessing")
    if pre is not None and "fit" not in pre:
        source = (data or {}).get("source")
        card["preprocessing"] = {**pre, "fit": _fit_of_source(check, source)}
    return card


def _fit_of_source(check: FieldChecker, source: Any) -> str:
    """The resize rule a format-1 card's data source was read with."""
    if source is None:
        return DEFAULT_FIT
    check.text(source, "data.source")
    from cnnkit.data.sources import fit_rule

    try:
        return fit_rule(source)
    except CnnkitError as exc:
        check.fail("data.source", f"is not a data source cnnkit can read ({exc})")
