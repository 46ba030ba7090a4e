"""``keras.losses``: Keras's losses by name or class, computed on cnnkit's engine.

A model whose output layer ends in ``softmax`` or ``sigmoid`` trains on the values *before* that
activation: ``softmax`` + categorical cross-entropy becomes ``log_softmax`` + negative
log-likelihood, ``sigmoid`` + binary cross-entropy becomes ``binary_cross_entropy_with_logits``
(one fused, numerically stable step each, as ``from_logits=True`` is). Every other combination is
computed as Keras computes it, on the model's outputs: probabilities are clipped to
``[1e-7, 1 - 1e-7]`` (and normalised for categorical cross-entropy).

Targets must be what the loss takes in Keras: integer class indices ``(N,)`` or ``(N, 1)`` for
the sparse loss, one-hot or probability rows ``(N, K)`` for the others; anything else is a
:class:`~cnnkit.errors.DataError` saying how to convert it (never a silent reinterpretation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import DataError
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.layers.base import make_activation

EPSILON = 1e-7  # Keras's clipping of probabilities
EngineLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Loss:
    """Base of the losses: ``loss(y_true, y_pred)`` on arrays, and the engine's form."""

    name = "loss"
    sparse = False

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        if reduction != "sum_over_batch_size":
            raise unsupported(f"{type(self).__name__}(reduction={reduction!r})", "use the default")
        if not 0.0 <= label_smoothing < 1.0:
            raise DataError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        self.name = name or self.name

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    # -- targets ------------------------------------------------------------------------------

    def targets(self, y: Any, outputs: int) -> torch.Tensor:
        """The labels as the engine takes them for a model with ``outputs`` output units."""
        y = np.asarray(y)
        if outputs == 1 and y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != outputs:
            raise DataError(
                f"{type(self).__name__} takes targets of shape (N, {outputs}) for a model with "
                f"{outputs} outputs, got {y.shape}"
                + (
                    f"; for integer class labels use keras.utils.to_categorical(y, {outputs}) "
                    "or loss='sparse_categorical_crossentropy'"
                    if y.ndim <= 2 and (y.ndim == 1 or y.shape[1] == 1) and outputs > 1
                    else ""
                )
            )
        if y.dtype.kind not in "biuf":
            raise DataError(f"targets must be numbers, got dtype {y.dtype}")
        return torch.as_tensor(y.astype(np.float32, copy=False))

    # -- computing ------------------------------------------------------------------------------

    def engine_fn(
        self, activation: str | None, class_weight: Mapping[int, float] | None = None
    ) -> EngineLoss:
        """``(pre-activation outputs (N, K), targets) -> mean loss``, for cnnkit's ``fit``.

        ``activation`` is the output activation the model applies after those values.
        """
        function = make_activation(activation) if activation else None

        def loss(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            per_sample = self.per_sample(z.float(), targets, activation, function)
            if not class_weight:
                return per_sample.mean()
            labels = targets if targets.ndim == 1 else targets.argmax(1)
            if targets.ndim == 2 and targets.shape[1] == 1:
                labels = (targets[:, 0] > 0.5).long()
            weights = _class_weights(class_weight, max(z.shape[1], 2)).to(z.device)
            return (per_sample * weights[labels]).mean()  # Keras: sum(w * loss) / batch size

        return loss

    def per_sample(
        self,
        z: torch.Tensor,
        targets: torch.Tensor,
        activation: str | None,
        function: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        """The mean loss of predictions (model outputs) against targets, as Keras's does."""
        outputs = torch.as_tensor(np.asarray(y_pred, dtype=np.float32))
        outputs = outputs.reshape(len(outputs), -1)
        targets = self.targets(y_true, outputs.shape[1])
        return float(self.per_sample(outputs, targets, None, None).mean())


def _class_weights(class_weight: Mapping[int, float], classes: int) -> torch.Tensor:
    """Weight per class index (1 for classes the mapping leaves out)."""
    weights = torch.ones(max(classes, max(int(k) for k in class_weight) + 1))
    for key, value in class_weight.items():
        weights[int(key)] = float(value)
    return weights


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or probability) rows ``(N, K)``."""

    name = "categorical_crossentropy"

    def per_sample(self, z, targets, activation, function):  # type: ignore[no-untyped-def]
        if targets.ndim == 1:
            targets = F.one_hot(targets, z.shape[1]).float()
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / z.shape[1]
        return -(targets * _log_probabilities(z, activation, function, self.from_logits)).sum(1)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class indices ``(N,)`` or ``(N, 1)``."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        ignore_class: int | None = None,
    ) -> None:
        if ignore_class is not None:
            raise unsupported("SparseCategoricalCrossentropy(ignore_class=...)", "drop it")
        super().__init__(from_logits, 0.0, reduction, name)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}

    def targets(self, y: Any, outputs: int) -> torch.Tensor:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(
                f"SparseCategoricalCrossentropy takes integer class labels (N,) or (N, 1), got "
                f"{y.shape}; for one-hot labels use loss='categorical_crossentropy' "
                "(or y.argmax(1))"
            )
        if y.size and (y.dtype.kind not in "biuf" or np.any(np.mod(y, 1) != 0)):
            raise DataError(f"class labels must be whole numbers, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= outputs):
            raise DataError(
                f"class labels {y.min()}..{y.max()} do not fit a model with {outputs} outputs"
            )
        return torch.as_tensor(y.astype(np.int64))

    def per_sample(self, z, targets, activation, function):  # type: ignore[no-untyped-def]
        if _fused(activation, "softmax", self.from_logits):
            return F.cross_entropy(z, targets, reduction="none")  # torch's fused kernel
        logp = _log_probabilities(z, activation, function, self.from_logits)
        return -logp.gather(1, targets[:, None])[:, 0]


def _fused(activation: str | None, output: str, from_logits: bool) -> bool:
    """Whether the values before ``activation`` are the logits the loss wants: the model ends
    in ``output`` (softmax/sigmoid) and the loss takes probabilities, or it ends in nothing and
    the loss takes logits."""
    return (activation == output and not from_logits) or (not activation and from_logits)


def _log_probabilities(
    z: torch.Tensor,
    activation: str | None,
    function: Callable[[torch.Tensor], torch.Tensor] | None,
    from_logits: bool,
) -> torch.Tensor:
    """log p per class, fused with a softmax output; else as Keras computes it."""
    if _fused(activation, "softmax", from_logits):
        return F.log_softmax(z, dim=1)
    outputs = function(z) if function is not None else z
    if from_logits:
        return F.log_softmax(outputs, dim=1)
    probabilities = outputs / outputs.sum(1, keepdim=True)
    return probabilities.clamp(EPSILON, 1 - EPSILON).log()


class BinaryCrossentropy(Loss):
    """Binary cross-entropy per output unit against 0/1 (or probability) targets, averaged."""

    name = "binary_crossentropy"

    def per_sample(self, z, targets, activation, function):  # type: ignore[no-untyped-def]
        targets = targets.reshape(z.shape).float()
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if _fused(activation, "sigmoid", self.from_logits):
            return F.binary_cross_entropy_with_logits(z, targets, reduction="none").mean(1)
        outputs = function(z) if function is not None else z
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").mean(1)
        p = outputs.clamp(EPSILON, 1 - EPSILON)
        return -(targets * p.log() + (1 - targets) * (1 - p).log()).mean(1)


class MeanSquaredError(Loss):
    """Mean of ``(output - target)**2`` over the output units (after the output activation)."""

    name = "mean_squared_error"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None) -> None:
        super().__init__(False, 0.0, reduction, name)

    def get_config(self) -> dict[str, Any]:
        return {}

    def per_sample(self, z, targets, activation, function):  # type: ignore[no-untyped-def]
        outputs = function(z) if function is not None else z
        return (outputs - targets.reshape(z.shape)).square().mean(1)


class MeanAbsoluteError(MeanSquaredError):
    """Mean of ``|output - target|`` over the output units."""

    name = "mean_absolute_error"

    def per_sample(self, z, targets, activation, function):  # type: ignore[no-untyped-def]
        outputs = function(z) if function is not None else z
        return (outputs - targets.reshape(z.shape)).abs().mean(1)


NAMES: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
#: each class by its name (what a saved model names)
CLASSES: dict[str, type[Loss]] = {cls.__name__: cls for cls in NAMES.values()}


def _function(name: str) -> Callable[..., Any]:
    def loss(y_true: Any, y_pred: Any, from_logits: bool = False) -> float:
        kind = NAMES[name]
        made = kind() if kind in (MeanSquaredError, MeanAbsoluteError) else kind(from_logits)
        return made(y_true, y_pred)

    loss.__name__ = loss.__qualname__ = name
    return loss


categorical_crossentropy = _function("categorical_crossentropy")
sparse_categorical_crossentropy = _function("sparse_categorical_crossentropy")
binary_crossentropy = _function("binary_crossentropy")
mean_squared_error = mse = _function("mean_squared_error")
mean_absolute_error = mae = _function("mean_absolute_error")


def get(identifier: str | Loss | Callable[..., Any]) -> Loss:
    """A loss object from a name, a class instance, or one of the functions here."""
    if isinstance(identifier, Loss):
        return identifier
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", "")
    if isinstance(identifier, type) and identifier.__name__ in CLASSES:
        return CLASSES[identifier.__name__]()
    if name in NAMES and (isinstance(identifier, str) or globals().get(name) is identifier):
        return NAMES[name]()
    raise unsupported(
        f"loss {identifier!r}",
        f"use one of {', '.join(NAMES)} or the classes {', '.join(CLASSES)}",
    )


__getattr__ = missing(
    __name__,
    {
        "CategoricalFocalCrossentropy": "use CategoricalCrossentropy (class_weight= in fit "
        "helps with imbalance)",
        "BinaryFocalCrossentropy": "use BinaryCrossentropy (class_weight= in fit helps)",
        "KLDivergence": "use CategoricalCrossentropy (same gradient for fixed targets)",
        "Huber": "use MeanSquaredError or MeanAbsoluteError",
        "Hinge": "use CategoricalCrossentropy",
        "CategoricalHinge": "use CategoricalCrossentropy",
        "CosineSimilarity": "use CategoricalCrossentropy",
    },
)
