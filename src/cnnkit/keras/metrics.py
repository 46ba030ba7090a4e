"""``keras.metrics``: accuracy and top-k accuracy, counted on the engine each batch.

``"accuracy"`` means what a learner means by it: the fraction of samples whose top-scoring
class is the labelled one (top-1), for any loss; with a single sigmoid output unit, the fraction
on the right side of 0.5. Keras instead turns ``"accuracy"`` into *binary* accuracy (per output
unit) when the loss is binary cross-entropy, which reads about 90 % for a 10-class model that
has learnt nothing; ask for ``"binary_accuracy"`` to get Keras's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.train.loop import count_correct

Counter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Metric:
    """A metric: its log name and the per-batch count of hits the engine sums."""

    name = "metric"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).name

    def hits(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class Accuracy(Metric):
    """Top-1 accuracy (see the module's note on how it differs from Keras)."""

    name = "accuracy"

    def hits(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return count_correct(z, targets)


class CategoricalAccuracy(Accuracy):
    name = "categorical_accuracy"


class SparseCategoricalAccuracy(Accuracy):
    name = "sparse_categorical_accuracy"


class BinaryAccuracy(Metric):
    """Keras's per-unit accuracy: output > threshold against 0/1 targets, averaged per sample."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        super().__init__(name)
        if threshold != 0.5:
            raise unsupported(f"BinaryAccuracy(threshold={threshold})", "use threshold=0.5")

    def hits(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.ndim == 1 and z.shape[1] > 1:
            targets = torch.nn.functional.one_hot(targets, z.shape[1])
        return ((z > 0) == (targets.reshape(z.shape) > 0.5)).float().mean(1).sum()


class TopKCategoricalAccuracy(Metric):
    """The fraction of samples whose label is among the ``k`` highest scores."""

    name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        super().__init__(name)
        self.k = int(k)

    def hits(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels = targets.argmax(1) if targets.ndim == 2 else targets
        top = z.topk(min(self.k, z.shape[1]), dim=1).indices
        return (top == labels[:, None]).any(1).sum()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    name = "sparse_top_k_categorical_accuracy"


NAMES: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
}
#: each class by its name (what a saved model names)
CLASSES: dict[str, type[Metric]] = {cls.__name__: cls for cls in NAMES.values()}


def get(identifier: str | Metric | type) -> Metric:
    """A metric from a name (``"accuracy"``, ``"acc"``, ...), a class or an instance."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and identifier.__name__ in CLASSES:
        return CLASSES[identifier.__name__]()
    if isinstance(identifier, str) and identifier in NAMES:
        return NAMES[identifier](name=identifier)
    raise unsupported(
        f"metric {identifier!r}",
        f"use one of {', '.join(NAMES)} (loss and val_loss are always logged)",
    )


__getattr__ = missing(
    __name__,
    {
        "Precision": "use model.predict and sklearn.metrics.classification_report",
        "Recall": "use model.predict and sklearn.metrics.classification_report",
        "AUC": "use model.predict and sklearn.metrics.roc_auc_score",
        "F1Score": "use model.predict and sklearn.metrics.f1_score",
        "MeanSquaredError": "use loss='mse' (the loss is always logged)",
        "MeanAbsoluteError": "use loss='mae' (the loss is always logged)",
        "Mean": "compute it from History.history",
    },
)
