"""Comparing transfer set-ups on one sample: backbones x heads, and a from-scratch baseline.

The textbook's advice when results disappoint is to swap the backbone and compare;
:func:`compare_heads` does that for any list of backbones and heads on the same train and
test images, and :func:`scratch_baseline` adds what a registered model trained from scratch
on the same few images reaches, so the table shows whether transfer pays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError
from cnnkit.evaluate.metrics import measure
from cnnkit.models.registry import build_model
from cnnkit.train.loop import fit
from cnnkit.transfer.features import CachedFeatures
from cnnkit.transfer.finetune import BACKBONE_EVAL_BATCH
from cnnkit.transfer.heads import fit_head, score_head

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One line of a comparison table.

    Attributes:
        method: what was trained (``features + logreg``, ``from scratch``, ...).
        backbone: the backbone spec, or the model name for a from-scratch baseline.
        head: the head name (``logreg`` ...), or ``-``.
        features: embedding width (0 for a baseline).
        train_size: training images used.
        test_size: test images measured.
        accuracy: test accuracy, 0..1.
        balanced_accuracy: test balanced accuracy (mean per-class recall), 0..1.
        seconds: time to fit the head or train the baseline (features excluded).
    """

    method: str
    backbone: str
    head: str
    features: int
    train_size: int
    test_size: int
    accuracy: float
    balanced_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_heads(
    features: dict[str, dict[str, CachedFeatures]],
    heads: Sequence[str],
    *,
    seed: int = 0,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Fit every head on every backbone's train features; score on its test features.

    Args:
        features: backbone name -> split name -> cached features (``train`` and ``test``).
        heads: head names (:data:`~cnnkit.transfer.heads.HEADS`).
        on_row: called with each row as soon as it is measured.
    """
    rows = []
    for backbone, splits in features.items():
        if "train" not in splits or "test" not in splits:
            raise ConfigError(f"{backbone}: comparing heads needs train and test features")
        train, test = splits["train"], splits["test"]
        for head in heads:
            started = time.perf_counter()
            fitted = fit_head(head, train.features, train.labels, seed=seed)
            seconds = time.perf_counter() - started
            scores = score_head(fitted, test.features, test.labels)
            row = Row(
                method=f"features + {head}",
                backbone=backbone,
                head=head,
                features=int(train.features.shape[1]),
                train_size=len(train.labels),
                test_size=len(test.labels),
                accuracy=scores["accuracy"],
                balanced_accuracy=scores["balanced_accuracy"],
                seconds=seconds,
            )
            log.info("%s on %s: test accuracy %.4f", head, backbone, row.accuracy)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def scratch_baseline(
    model: str,
    splits: Splits,
    *,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Row:
    """Train registered ``model`` from scratch on ``splits.train`` (Adam) and test it."""
    if splits.test is None:
        raise ConfigError("the from-scratch baseline needs a test split to be measured on")
    preprocessing = Preprocessing.from_dataset(splits.train)
    torch.manual_seed(seed)
    network = build_model(
        model, input_shape=splits.train.image_shape, num_classes=splits.train.num_classes
    )
    started = time.perf_counter()
    fit(
        network,
        train=splits.train,
        preprocessing=preprocessing,
        optimizer="adam",
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    return _model_row(
        network,
        splits.test,
        preprocessing,
        device,
        method=f"from scratch, {epochs} epochs",
        backbone=model,
        train_size=len(splits.train),
        seconds=seconds,
    )


def run_row(run_path: str, splits: Splits, *, device: torch.device | str = "cpu") -> Row:
    """A saved run's own model (e.g. a fine-tuned one) measured on ``splits.test``.

    Raises:
        ConfigError: the run's classes or image shape differ from the data's.
    """
    from cnnkit.run import Run

    if splits.test is None:
        raise ConfigError("measuring a run needs a test split")
    run = Run.open(run_path)
    card = run.card
    if card.classes != splits.test.classes:
        raise ConfigError(
            f"{run.path} was trained on other classes ({', '.join(card.classes[:5])} ...) "
            f"than the data compared ({', '.join(splits.test.classes[:5])} ...)"
        )
    preprocessing = card.preprocessing
    if preprocessing.input_shape != splits.test.image_shape:
        raise ConfigError(
            f"{run.path} takes images of shape {preprocessing.input_shape}, the data compared "
            f"has {splits.test.image_shape}"
        )
    transfer = card.transfer
    return _model_row(
        run.load_model(device),
        splits.test,
        preprocessing,
        device,
        method=transfer.describe() if transfer is not None else "saved run",
        backbone=transfer.backbone if transfer is not None else card.model.name,
        train_size=card.data.sizes.get("train", 0),
        seconds=card.train_seconds or 0.0,
    )


def _model_row(
    network: torch.nn.Module,
    test: Dataset,
    preprocessing: Preprocessing,
    device: torch.device | str,
    *,
    method: str,
    backbone: str,
    train_size: int,
    seconds: float,
) -> Row:
    """The row of a whole network (no separate head, no feature cache) measured on ``test``."""
    _, scores = measure(
        network,
        test,
        split="test",
        preprocessing=preprocessing,
        device=device,
        batch_size=BACKBONE_EVAL_BATCH,
    )
    return Row(
        method=method,
        backbone=backbone,
        head="-",
        features=0,
        train_size=train_size,
        test_size=len(test),
        accuracy=scores["accuracy"],
        balanced_accuracy=scores["balanced_accuracy"],
        seconds=seconds,
    )
