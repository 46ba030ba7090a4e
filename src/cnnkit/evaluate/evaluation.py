"""Evaluating a run directory: rebuild the model from the run alone and measure it again."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.card import RunCard
from cnnkit.data.dataset import Dataset
from cnnkit.devices import resolve_device
from cnnkit.errors import DataError, RunError
from cnnkit.evaluate.metrics import TOP_K, Predictions, measure, write_predictions_csv
from cnnkit.run import Run
from cnnkit.run_files import METRICS, predictions_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class Evaluation:
    """One split of a run measured: the data, the predictions and the metrics.

    Attributes:
        run: the run directory evaluated.
        split: ``test``, ``val`` or ``train``.
        dataset: the images and labels evaluated (in prediction order).
        predictions: logits, labels and sample ids.
        metrics: the split's metrics (:func:`~cnnkit.evaluate.metrics.measure`).
        model: the run's model, rebuilt from its directory (eval mode).
        device: where the model lives.
    """

    run: Run
    split: str
    dataset: Dataset
    predictions: Predictions
    metrics: dict[str, Any]
    model: nn.Module
    device: torch.device

    def __repr__(self) -> str:
        return (
            f"<Evaluation of {self.run.path.name} on {len(self.dataset):,} {self.split} samples: "
            f"accuracy {self.metrics['accuracy']:.2%}, loss {self.metrics['loss']:.4f}>"
        )


def evaluate_split(
    run: Run | str | os.PathLike[str],
    *,
    split: str | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    top_k: int = TOP_K,
) -> Evaluation:
    """Measure a run's saved model on one split of its data (or of another source).

    Args:
        run: a run directory written by ``cnnkit train``.
        split: ``test``, ``val`` or ``train``; default ``test``, or ``val`` when the run's data
            has no test split.
        data: evaluate on this data source's split instead of the run's own (same classes
            and image shape required; no fingerprint check).
        data_dir: read the data source from this folder instead of the recorded one.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        top_k: the k of the top-k accuracy reported besides top-1.

    Raises:
        RunError: the run directory is incomplete or its data changed.
        DataError: ``data`` does not match the run's classes or image shape.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    card = run.card
    split = split or card.data.default_split()
    dataset = _load(run, card, split, data, data_dir)
    torch_device = resolve_device(device)
    model = run.load_model(torch_device)
    predictions, metrics = measure(
        model,
        dataset,
        split=split,
        preprocessing=card.preprocessing,
        device=torch_device,
        top_k=top_k,
    )
    log.info("evaluated %s on %d %s samples", run.path, len(dataset), split)
    return Evaluation(run, split, dataset, predictions, metrics, model, torch_device)


def evaluate_run(
    run_path: str | os.PathLike[str],
    *,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
) -> dict[str, float]:
    """Loss and accuracy of the run's saved model on one split of the run's data.

    :func:`evaluate_split` gives everything else (report, confusion matrix, BER, ...).
    """
    metrics = evaluate_split(run_path, split=split, data_dir=data_dir, device=device).metrics
    return {"loss": metrics["loss"], "accuracy": metrics["accuracy"]}


def save_evaluation(
    evaluation: Evaluation, out: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write ``metrics.json`` and the predictions CSV into the run directory or ``out``.

    ``metrics.json`` keeps one entry per split: this split's entry is replaced by the full
    metrics, the others are kept. Predictions go to ``predictions.csv`` for the test split and
    ``predictions-<split>.csv`` for the others.

    Returns:
        The two files written.
    """
    folder = Path(out) if out is not None else evaluation.run.path
    folder.mkdir(parents=True, exist_ok=True)
    metrics_file = folder / METRICS
    existing: dict[str, Any] = {}
    if metrics_file.is_file():
        try:
            loaded = json.loads(metrics_file.read_text(encoding="utf-8"))
            existing = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            log.warning("%s is not valid JSON; rewriting it", metrics_file)
    existing[evaluation.split] = evaluation.metrics
    Run(folder).write_json(METRICS, existing)
    predictions_file = folder / predictions_name(evaluation.split)
    write_predictions_csv(predictions_file, evaluation.predictions)
    return [metrics_file, predictions_file]


def _load(run: Run, card: RunCard, split: str, data: str | None, data_dir: str | None) -> Dataset:
    if data is None:
        return run.load_data(split, data_dir=data_dir)
    from cnnkit.data.sources import load_dataset

    parts = dict(load_dataset(data, data_dir=data_dir).items())
    if split not in parts:
        raise RunError(
            f"data source {data!r} has no {split} split; choose one of {', '.join(parts)}"
        )
    dataset = parts[split]
    if dataset.classes != card.classes:
        raise DataError(
            f"data source {data!r} has classes {list(dataset.classes)[:10]}, the run was "
            f"trained on {list(card.classes)[:10]}; evaluate with data of the same classes"
        )
    if dataset.image_shape != card.preprocessing.input_shape:
        raise DataError(
            f"data source {data!r} has images of shape {dataset.image_shape}, the run's model "
            f"takes {card.preprocessing.input_shape}"
        )
    return dataset
