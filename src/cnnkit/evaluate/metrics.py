"""The textbook metrics, computed once from a model's predictions and kept JSON-ready.

Predictions are made in the dataset's fixed order (:func:`cnnkit.models.forward.predict_logits`)
and keep each sample's id (file path or ``"<source>/<index>"``), so every number here can be
traced back to the images behind it.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.atomic import atomic_open
from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import DataError
from cnnkit.models.forward import EVAL_BATCH, predict_logits, score_logits

TOP_K = 5  # the top-k accuracy reported besides top-1 (ImageNet's custom)
CONFUSED_PAIRS = 10  # most-confused (true, predicted) pairs kept


@dataclass(frozen=True, repr=False)
class Predictions:
    """A model's outputs on a dataset, in the dataset's order.

    Attributes:
        logits: float32 ``(N, K)``.
        labels: the true labels, int64 ``(N,)``.
        classes: the ``K`` class names.
        ids: one id per sample (file path or ``"<source>/<index>"``).
    """

    logits: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    ids: tuple[str, ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"<Predictions: {len(self.labels):,} samples, {len(self.classes)} classes>"

    def __post_init__(self) -> None:
        n = int(self.labels.shape[0]) if self.labels.ndim == 1 else -1
        if self.logits.ndim != 2 or self.logits.shape[0] != n or n < 0:
            raise DataError(
                f"predictions need logits (N, K) and labels (N,), got "
                f"{tuple(self.logits.shape)} and {tuple(self.labels.shape)}"
            )
        if self.logits.shape[1] != len(self.classes):
            raise DataError(
                f"the model gives {self.logits.shape[1]} outputs but the data has "
                f"{len(self.classes)} classes; evaluate with the data the model was built for"
            )
        if len(self.ids) != n:
            raise DataError(f"{len(self.ids)} sample ids for {n} predictions")

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        dataset: Dataset,
        *,
        preprocessing: Preprocessing,
        device: torch.device | str = "cpu",
        batch_size: int = EVAL_BATCH,
    ) -> Predictions:
        """Run ``model`` over ``dataset`` (eval mode, no gradients, fixed order)."""
        logits = predict_logits(
            model, dataset.images, preprocessing=preprocessing, device=device, batch_size=batch_size
        )
        return cls(logits, dataset.labels, dataset.classes, dataset.sample_ids())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the logits, ``(N, K)``."""
        return self.logits.softmax(dim=1)

    @property
    def predicted(self) -> torch.Tensor:
        """The top-1 predicted label of each sample, ``(N,)``."""
        return self.logits.argmax(dim=1)

    @property
    def losses(self) -> torch.Tensor:
        """Per-sample cross-entropy, ``(N,)``."""
        return F.cross_entropy(self.logits, self.labels, reduction="none")

    def top_losses(self, count: int) -> list[int]:
        """Indices of the ``count`` samples with the highest loss, worst first."""
        count = min(count, len(self))
        return self.losses.topk(count).indices.tolist() if count else []


def top_k_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of samples whose true label is among the ``k`` highest logits."""
    if len(labels) == 0:
        return float("nan")
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def compute_metrics(
    predictions: Predictions, *, top_k: int = TOP_K, pairs: int = CONFUSED_PAIRS
) -> dict[str, Any]:
    """Everything the textbooks report, as a JSON-ready dict.

    Keys: ``samples``, ``loss``, ``accuracy``, ``top_k_accuracy`` (``{"5": ...}``),
    ``balanced_accuracy``, ``ber`` (balanced error rate = 1 - balanced accuracy), ``report``
    (scikit-learn's classification report: per class ``precision``, ``recall``, ``f1-score``,
    ``support``, plus ``macro avg`` and ``weighted avg``), ``confusion_matrix`` (counts, rows
    = true class), ``confusion_matrix_normalized`` (each row divided by its total: recall on
    the diagonal), ``most_confused`` (the largest off-diagonal cells) and ``classes``.

    Raises:
        DataError: there are no predictions.
    """
    from sklearn.metrics import balanced_accuracy_score, classification_report, confusion_matrix

    if len(predictions) == 0:
        raise DataError("no predictions to measure: the evaluated split is empty")
    classes = list(predictions.classes)
    labels = list(range(len(classes)))
    y_true = predictions.labels.numpy()
    y_pred = predictions.predicted.numpy()
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    with warnings.catch_warnings():  # classes absent from y_true are reported, not warned about
        warnings.simplefilter("ignore")
        balanced = float(balanced_accuracy_score(y_true, y_pred))
        report = classification_report(
            y_true,
            y_pred,
            labels=labels,
            target_names=_unique_names(classes),
            output_dict=True,
            zero_division=0,
        )
    metrics: dict[str, Any] = {
        "samples": len(predictions),
        **score_logits(predictions.logits, predictions.labels),
        "top_k_accuracy": {
            str(k): top_k_accuracy(predictions.logits, predictions.labels, k)
            for k in sorted({1, top_k})
            if k <= len(classes)
        },
        "balanced_accuracy": balanced,
        "ber": 1.0 - balanced,
        "report": report,
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": normalize_rows(matrix).round(4).tolist(),
        "most_confused": most_confused(matrix, classes, count=pairs),
        "classes": classes,
    }
    return metrics


def measure(
    model: nn.Module,
    dataset: Dataset,
    *,
    split: str,
    preprocessing: Preprocessing,
    device: torch.device | str = "cpu",
    batch_size: int = EVAL_BATCH,
    top_k: int = TOP_K,
) -> tuple[Predictions, dict[str, Any]]:
    """``model`` measured on one split: its predictions, and the split's entry of
    ``metrics.json`` — :func:`compute_metrics`'s dict plus ``split`` and ``data`` (where the
    images came from).

    The end of a training or fine-tuning job and ``cnnkit evaluate`` all measure through
    here, so ``metrics.json`` has one shape whoever wrote it.
    """
    predictions = Predictions.from_model(
        model, dataset, preprocessing=preprocessing, device=device, batch_size=batch_size
    )
    metrics = compute_metrics(predictions, top_k=top_k)
    metrics["split"] = split
    metrics["data"] = dataset.source
    return predictions, metrics


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows that sum to 0 stay 0), as float64."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def most_confused(
    matrix: np.ndarray | Sequence[Sequence[int]], classes: Sequence[str], *, count: int
) -> list[dict[str, Any]]:
    """The ``count`` largest off-diagonal cells of a confusion matrix, largest first.

    Returns:
        ``{"true", "predicted", "count", "rate"}`` dicts, ``rate`` being the share of the
        true class's samples predicted as ``predicted``. Ties keep (true, predicted) order.
    """
    cm = np.asarray(matrix, dtype=np.int64)
    rates = normalize_rows(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = []
    for index in flat:
        i, j = divmod(int(index), cm.shape[1])
        if off[i, j] == 0:
            break
        pairs.append(
            {
                "true": classes[i],
                "predicted": classes[j],
                "count": int(cm[i, j]),
                "rate": round(float(rates[i, j]), 4),
            }
        )
    return pairs


def _unique_names(classes: Sequence[str]) -> list[str]:
    """Class names made unique for the report's dict keys (``a``, ``a (2)``)."""
    seen: dict[str, int] = {}
    names = []
    for name in classes:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def write_predictions_csv(path: str | os.PathLike[str], predictions: Predictions) -> None:
    """One row per sample: ``id``, ``true``, ``predicted``, ``loss``, then ``p_<class>``.

    Rows follow the dataset's order; the file is written atomically.
    """
    probabilities = predictions.probabilities.numpy()
    losses = predictions.losses.numpy()
    classes = predictions.classes
    true = predictions.labels.tolist()
    predicted = predictions.predicted.tolist()
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "true", "predicted", "loss", *(f"p_{c}" for c in classes)])
        for i, sample in enumerate(predictions.ids):
            writer.writerow(
                [
                    sample,
                    classes[true[i]],
                    classes[predicted[i]],
                    f"{losses[i]:.6g}",
                    *(f"{p:.6g}" for p in probabilities[i]),
                ]
            )
