"""The auto setup: a training setup chosen from the data, with the reasons, before training.

``cnnkit train --data folder:PATH`` with no model or recipe (or ``--recipe auto`` on any
source) trains what suits a few hundred or thousand pictures instead of MNIST's textbook
LeNet: a small residual BatchNorm net (``fastnet``, width 48) at a capped resolution, enough
epochs for a minimum number of optimizer steps, one-cycle SGD with Nesterov momentum, weight
decay and label smoothing, flip/translate augmentation where the pictures allow it and random
erasing, early stopping on validation with the best weights
restored when the validation split is large enough to tell epochs apart, and weighted
cross-entropy when the classes are imbalanced. Every choice comes with its reason; any option
the user gives wins over the choice.

:func:`choose_setup` and :func:`choose_finetune` are pure: data facts (:class:`DataFacts`) in,
settings and reasons out, so they are tested without training. :func:`read_facts` reads the
facts from a data source; :func:`cnnkit.train.config.auto_config` is what ``cnnkit train`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cnnkit.data.folder import PREFIX as FOLDER_PREFIX
from cnnkit.data.health import IMBALANCE_WARN
from cnnkit.data.sources import source_spec
from cnnkit.errors import DataError

if TYPE_CHECKING:
    from cnnkit.transfer.finetune import FinetuneConfig

AUTO = "auto"  # the recipe name: cnnkit train --recipe auto
MIN_PER_CLASS = 3  # images a class needs: one each for training, validation and test
MAX_SIDE = 64  # longest side the auto setup trains at (a folder of larger pictures is shrunk)
# shortest side: fastnet's three 2x2 pools leave 4x4 at 32 (at 28: 3x3, the last pool drops
# a row and a column; at 12: 1x1, and BatchNorm fails on a last batch of one image).
# benchmarks/auto_variants.py side-32: 28x28 Fashion read at 32, +0.7-0.9 points on each of 3 seeds
MIN_SIDE = 32
# optimizer steps the auto setup trains for, at least. benchmarks/auto_variants.py round 2, on
# fashion-200: SGD-Nesterov with weight decay for 2,000 steps 86.9% against one-cycle Adam
# (no weight decay) for 1,000 steps 85.8% (3 seeds each); 3,000 steps no better; with random
# erasing and fastnet width 48 87.7% (seed 0; benchmarks/folders.py has 3 seeds)
MIN_STEPS = 2000
WIDTH = 48  # fastnet's first stage (its default 32: 86.9-87.0% in the runs above)
# a validation split smaller than this is too noisy to stop on (at 1,000 images one image is
# 0.1 points; at 50 it is 2): the one-cycle schedule then runs to its end and the last
# weights are kept (benchmarks/auto_variants.py: no-stop-steps-2x)
MIN_VAL_TO_STOP = 1000
SGD_LR = 0.1  # the one-cycle schedule's peak
MOMENTUM = 0.9  # Nesterov
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 1e-3
ERASE = "erase:p=0.5"  # random erasing: half the pictures lose a box of 2-25% of their area
MIN_EPOCHS = 10
MAX_EPOCHS = 100
FINETUNE_HINT_PER_CLASS = 100  # colour folders with fewer training images per class than this
FINETUNE_MIN_STEPS = 150  # optimizer steps a fine-tuning run takes, at least
FINETUNE_SIDES = (96, 128, 160, 192, 224)  # input sizes fine-tuning picks from (224 = native)


@dataclass(frozen=True)
class DataFacts:
    """What the auto setup looks at.

    Attributes:
        source: the data source (``folder:PATH?...`` or a named source).
        classes: class names.
        images_per_class: images of each class in the whole source (all parts).
        train_per_class: images of each class in the training split that will be used.
        val_images: images in the validation split (0: none), for early stopping.
        size: ``(height, width)`` the images are read at.
        channels: 1 (grey) or 3 (colour).
        distinct_sizes: how many different sizes the files had (folders; 1 otherwise).
        resizable: whether the auto setup may choose the size (a folder read without
            ``size=``).
    """

    source: str
    classes: tuple[str, ...]
    images_per_class: tuple[int, ...]
    train_per_class: tuple[int, ...]
    val_images: int
    size: tuple[int, int]
    channels: int
    distinct_sizes: int = 1
    resizable: bool = False

    @property
    def train_images(self) -> int:
        return sum(self.train_per_class)

    @property
    def imbalance(self) -> float:
        """Largest training class / smallest (1.0 = balanced)."""
        smallest = min(self.train_per_class)
        return max(self.train_per_class) / smallest if smallest else math.inf


@dataclass(frozen=True)
class AutoSetup:
    """A chosen setup: TrainConfig values, and (topic, reason) lines saying why."""

    settings: dict[str, Any]
    reasons: tuple[tuple[str, str], ...]

    def lines(self, overridden: Sequence[str] = ()) -> list[str]:
        """What ``cnnkit train`` prints before training: one line per reason."""
        head = "auto setup (--recipe auto), chosen from the data; options you give win"
        lines = [head + ":"] + [f"  {topic:<10}{reason}" for topic, reason in self.reasons]
        if overridden:
            options = ", ".join(
                "--model-option" if name == "model_options" else "--" + name.replace("_", "-")
                for name in overridden
            )
            lines.append(f"  {'yours':<10}{options} as you gave")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """For the run card: the chosen values and the reasons."""
        return {"chosen": dict(self.settings), "reasons": [f"{t}: {r}" for t, r in self.reasons]}


def check_classes(classes: Sequence[str], images_per_class: Sequence[int]) -> None:
    """Refuse classes too small to train on and measure.

    Raises:
        DataError: a class with fewer than :data:`MIN_PER_CLASS` images, named.
    """
    small = [
        (name, n) for name, n in zip(classes, images_per_class, strict=True) if n < MIN_PER_CLASS
    ]
    if len(classes) < 2:
        raise DataError(
            f"the data has {len(classes)} class; a classifier needs at least 2 class folders"
        )
    if small:
        listed = ", ".join(f"{name!r} ({n} image{'s' if n != 1 else ''})" for name, n in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise DataError(
            f"class(es) {listed}{more} have fewer than {MIN_PER_CLASS} images: a class needs "
            "at least one image each to train on, to validate and to test; add images or "
            "remove the folder"
        )


def _train_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled (aspect ratio kept) so its longer side is at most :data:`MAX_SIDE` and
    its shorter side at least :data:`MIN_SIDE` (the shorter-side rule wins)."""
    height, width = size
    scale = max(min(1.0, MAX_SIDE / max(height, width)), MIN_SIDE / min(height, width))
    if scale == 1.0:
        return size
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def _with_size(source: str, size: tuple[int, int]) -> str:
    """``folder:PATH?opts`` with ``size=HxW`` added."""
    from cnnkit.data.folder import folder_source_name, parse_folder_source

    root, options = parse_folder_source(source)
    return folder_source_name(root, replace(options, size=size))


def choose_setup(facts: DataFacts) -> AutoSetup:
    """The auto setup for ``facts``: TrainConfig values and the reasons for each.

    Raises:
        DataError: a class too small to train on (see :func:`check_classes`).
    """
    check_classes(facts.classes, facts.images_per_class)
    counts = facts.train_per_class
    height, width = facts.size
    sizes = f", files of {facts.distinct_sizes} sizes" if facts.distinct_sizes > 1 else ""
    each = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
    reasons = [
        (
            "data",
            f"{facts.train_images} training images, {len(facts.classes)} classes "
            f"({each} each), {height}x{width} "
            f"{'grey' if facts.channels == 1 else 'colour'}{sizes}",
        ),
        (
            "model",
            f"fastnet width {WIDTH}, a small residual BatchNorm net (LeNet overfits small folders)",
        ),
    ]
    settings: dict[str, Any] = {"model": "fastnet", "model_options": {"width": WIDTH}}

    size = _train_size(facts.size) if facts.resizable else facts.size
    if size != facts.size:
        settings["data"] = _with_size(facts.source, size)
        work = (height * width) / (size[0] * size[1])
        why = (
            f"{work:.0f}x less work"
            if work > 1
            else f"fastnet halves the size 3 times: its last stage sees {height // 8}x"
            f"{width // 8} at {height}x{width}, {size[0] // 8}x{size[1] // 8} at "
            f"{size[0]}x{size[1]}"
        )
        reasons.append(
            (
                "size",
                f"{size[0]}x{size[1]}, not {height}x{width}: {why} (folder:PATH?size=HxW chooses)",
            )
        )

    batch = 32 if facts.train_images < 2000 else 64
    steps = math.ceil(facts.train_images / batch)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps)))
    settings |= {
        "epochs": epochs,
        "batch_size": batch,
        "optimizer": "sgd",
        "lr": SGD_LR,
        "momentum": MOMENTUM,
        "nesterov": True,
        "weight_decay": WEIGHT_DECAY,
        "schedule": "onecycle:peak=0.25",
        "label_smoothing": LABEL_SMOOTHING,
    }
    reasons += [
        (
            "epochs",
            f"{epochs}, of {steps} step{'s' if steps > 1 else ''} of {batch} images: "
            f"{epochs * steps} steps (aim: {MIN_STEPS}, {MIN_EPOCHS}-{MAX_EPOCHS} epochs)",
        ),
        (
            "optimizer",
            f"SGD, Nesterov momentum {MOMENTUM:g}, weight decay {WEIGHT_DECAY:g} (a few "
            f"pictures are easily overfit), one-cycle schedule peaking at lr {SGD_LR:g}, "
            f"label smoothing {LABEL_SMOOTHING:g}",
        ),
    ]

    if facts.val_images >= MIN_VAL_TO_STOP:
        patience = max(5, epochs // 4)
        settings["early_stopping"] = {
            "monitor": "val_loss",
            "patience": patience,
            "restore_best_weights": True,
        }
        reasons.append(
            ("stopping", f"after {patience} epochs without a better val_loss; best weights kept")
        )
    elif facts.val_images:
        reasons.append(
            (
                "stopping",
                f"none: {facts.val_images} validation images are too few to stop on (one image "
                f"is {100 / facts.val_images:.2g} points; early stopping from "
                f"{MIN_VAL_TO_STOP:,}); the schedule runs to its end, the last weights are kept",
            )
        )
    else:
        reasons.append(("stopping", "none: there is no validation split"))

    shift = max(2, round(max(size) / 16))
    if facts.channels == 3:
        settings["augment"] = ["flip", f"translate-reflect:{shift}", ERASE]
        reasons.append(
            (
                "augment",
                f"mirror, shift up to {shift} px, erase a random box from half the pictures "
                "(colour: photos, drawings)",
            )
        )
    else:
        settings["augment"] = [f"translate:{shift}", "rotate:max_left=10,max_right=10", ERASE]
        reasons.append(
            (
                "augment",
                f"shift up to {shift} px, rotate up to 10 degrees, erase a random box from half "
                "the pictures, no flips: grey pictures are often digits or letters, which "
                "mirroring changes (--augment flip adds them)",
            )
        )

    if facts.imbalance > IMBALANCE_WARN:
        settings["class_weight"] = "balanced"
        big = facts.classes[counts.index(max(counts))]
        small = facts.classes[counts.index(min(counts))]
        reasons.append(
            (
                "balance",
                f"{big!r} {max(counts)} vs {small!r} {min(counts)} images "
                f"({facts.imbalance:.1f}x): weighted loss (--class-weight balanced)",
            )
        )

    per_class = facts.train_images / len(facts.classes)
    if facts.channels == 3 and per_class < FINETUNE_HINT_PER_CLASS:
        reasons.append(
            (
                "try",
                f"{per_class:.0f} colour pictures per class: a pretrained net may do better: "
                f"cnnkit finetune --data {facts.source}",
            )
        )
    return AutoSetup(settings=settings, reasons=tuple(reasons))


@dataclass(frozen=True)
class FinetuneDefaults:
    """Input size and epochs for fine-tuning a pretrained backbone on ``facts``."""

    input_size: int
    epochs: int
    batch_size: int
    reasons: tuple[tuple[str, str], ...]


def choose_finetune(facts: DataFacts, *, native: int = 224) -> FinetuneDefaults:
    """Fine-tuning defaults: an input side near the images' own (at least 96, at most the
    backbone's ``native``), and enough epochs for :data:`FINETUNE_MIN_STEPS` steps."""
    check_classes(facts.classes, facts.images_per_class)
    side = max(facts.size)
    input_size = next((s for s in FINETUNE_SIDES if s >= side and s <= native), native)
    batch = 32
    steps = math.ceil(facts.train_images / batch)
    epochs = min(30, max(5, math.ceil(FINETUNE_MIN_STEPS / steps)))
    reasons = (
        (
            "input",
            f"{input_size}x{input_size}: the images are {facts.size[0]}x{facts.size[1]}; "
            f"larger inputs than the pictures hold cost time and add nothing (native {native})",
        ),
        (
            "epochs",
            f"{epochs} epochs of {steps} steps at batch {batch} (at least "
            f"{FINETUNE_MIN_STEPS} steps)",
        ),
    )
    return FinetuneDefaults(input_size=input_size, epochs=epochs, batch_size=batch, reasons=reasons)


def read_facts(
    source: str,
    *,
    data_dir: str | None = None,
    val_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
    group_by: str | None = None,
    split_file: str | None = None,
) -> DataFacts:
    """Read ``source`` and split it as training will, and return its facts.

    Raises:
        DataError: a class too small to split into training, validation and test.
    """
    from cnnkit.data.folder import parse_folder_source
    from cnnkit.data.sources import canonical_source, make_splits, read_source

    data = read_source(source, data_dir)
    classes = tuple(data.parts["train"].classes)
    per_part = [part.class_counts() for part in data.parts.values()]
    images_per_class = tuple(sum(counts) for counts in zip(*per_part, strict=True))
    check_classes(classes, images_per_class)  # before splitting, which would fail less clearly
    splits = make_splits(
        source,
        data,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        group_by=group_by,
        split_file=split_file,
    )
    name = canonical_source(source)
    channels, height, width = splits.train.image_shape
    return DataFacts(
        source=name,
        classes=classes,
        images_per_class=images_per_class,
        train_per_class=tuple(splits.train.class_counts()),
        val_images=len(splits.val) if splits.val is not None else 0,
        size=(height, width),
        channels=channels,
        distinct_sizes=len(data.report.sizes) if data.report is not None else 1,
        resizable=name.startswith(FOLDER_PREFIX) and parse_folder_source(name)[1].size is None,
    )


def wants_auto(recipe: str | None, given: dict[str, Any]) -> bool:
    """Whether ``cnnkit train`` uses the auto setup: ``--recipe auto``, or a folder source
    with no recipe and no model named."""
    if recipe is not None:
        return recipe == AUTO
    data = given.get("data")
    if not data or "model" in given:
        return False
    return source_spec(str(data)).startswith(FOLDER_PREFIX)  # folder:PATH or a folder's path


def finetune_setup(config: FinetuneConfig, given: set[str]) -> tuple[FinetuneConfig, list[str]]:
    """``cnnkit finetune`` on a folder: the input size and epochs ``given`` leaves open,
    chosen by :func:`choose_finetune`, and the lines saying so (none for other sources)."""
    if not source_spec(config.data).startswith(FOLDER_PREFIX):
        return config, []
    facts = read_facts(config.data, data_dir=config.data_dir, seed=config.seed)
    defaults = choose_finetune(facts)
    chosen: dict[str, Any] = {}
    lines = ["chosen from the data (options you give win):"]
    if "input_size" not in given and config.backbone == "efficientnet_lite0":
        chosen["input_size"] = defaults.input_size
    if "epochs" not in given:
        chosen["epochs"] = defaults.epochs
    for topic, reason in defaults.reasons:
        key = "input_size" if topic == "input" else topic
        if key in chosen:
            lines.append(f"  {topic:<10}{reason}")
    if not chosen:
        return config, []
    return replace(config, **chosen), lines


def transfer_input_size(
    source: str, backbones: Sequence[str], *, data_dir: str | None = None, seed: int = 0
) -> tuple[int | None, list[str]]:
    """``cnnkit transfer`` on a folder: the input side for ImageNet backbones, chosen as
    :func:`choose_finetune` chooses it, and the lines saying so; ``(None, [])`` for other
    sources, or when a backbone is a run (``run:PATH`` keeps its own input)."""
    if not source_spec(source).startswith(FOLDER_PREFIX) or any(
        spec != "efficientnet_lite0" for spec in backbones
    ):
        return None, []
    defaults = choose_finetune(read_facts(source, data_dir=data_dir, seed=seed))
    reason = dict(defaults.reasons)["input"]
    return defaults.input_size, [
        "chosen from the data (--input-size wins):",
        f"  {'input':<10}{reason}",
    ]
