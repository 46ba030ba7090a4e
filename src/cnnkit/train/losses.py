"""Loss functions by name, all taking logits.

Every loss here maps ``(logits (N, K), targets)`` to a scalar mean, where targets are either
sparse class indices ``(N,)`` (int64) or one-hot / soft labels ``(N, K)`` (float). Models
always output logits; the loss applies the matching output function itself:

- ``cross_entropy``: softmax + categorical cross-entropy (Keras's
  ``SparseCategoricalCrossentropy(from_logits=True)`` or ``CategoricalCrossentropy``);
- ``binary_cross_entropy``: a sigmoid per class + binary cross-entropy against one-hot labels,
  the textbooks' sigmoid-output variant;
- ``mse``: softmax probabilities against one-hot labels, squared error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cnnkit.errors import ConfigError, did_you_mean

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")


def soft_targets(targets: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Class indices ``(N,)`` or one-hot ``(N, K)`` -> float ``(N, K)``, optionally smoothed.

    Label smoothing moves ``smoothing`` of the probability mass evenly over all K classes.
    """
    if targets.ndim == 1:
        dense = F.one_hot(targets, num_classes).float()
    elif targets.ndim == 2 and targets.shape[1] == num_classes:
        dense = targets.float()
    else:
        raise ConfigError(
            f"targets of shape {tuple(targets.shape)} fit neither sparse labels (N,) nor "
            f"one-hot labels (N, {num_classes})"
        )
    if smoothing:
        dense = dense * (1.0 - smoothing) + smoothing / num_classes
    return dense


CLASS_WEIGHTS = ("balanced",)


def check_class_weight(mode: str | None) -> None:
    """Raise ConfigError unless ``mode`` is None or one of :data:`CLASS_WEIGHTS`."""
    if mode is not None and mode not in CLASS_WEIGHTS:
        raise ConfigError(f"unknown class weight {mode!r}; choose {', '.join(CLASS_WEIGHTS)}")


def class_weights(mode: str, counts: Sequence[int]) -> list[float]:
    """Per-class loss weights from the training split's class ``counts``.

    ``balanced`` (scikit-learn's rule): ``n_samples / (n_classes * count)``, so every class
    carries the same total weight; a class with no samples gets weight 0.

    Raises:
        ConfigError: unknown mode.
    """
    check_class_weight(mode)
    total = sum(counts)
    return [total / (len(counts) * n) if n else 0.0 for n in counts]


def make_loss(
    name: str, *, label_smoothing: float = 0.0, class_weight: Sequence[float] | None = None
) -> LossFn:
    """The loss called ``name`` (see :data:`LOSSES`), with optional label smoothing and, for
    cross-entropy, per-class weights (the weighted mean over the batch, as in torch).

    Raises:
        ConfigError: unknown name, smoothing outside ``[0, 1)``, or class weights with a loss
            other than cross-entropy.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {label_smoothing}")
    if class_weight is not None and name != "cross_entropy":
        raise ConfigError(f"class weights work with the cross_entropy loss, not {name!r}")
    if name == "cross_entropy":
        weight = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32)

        def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            w = None if weight is None else weight.to(logits.device)
            if targets.ndim == 1:  # sparse labels: torch's fused kernel, smoothing included
                return F.cross_entropy(
                    logits.float(), targets, weight=w, label_smoothing=label_smoothing
                )
            dense = soft_targets(targets, logits.shape[1], label_smoothing)
            return F.cross_entropy(logits.float(), dense, weight=w)

        return cross_entropy
    if name == "binary_cross_entropy":

        def binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            dense = soft_targets(targets, logits.shape[1], label_smoothing)
            return F.binary_cross_entropy_with_logits(logits.float(), dense)

        return binary_cross_entropy
    if name == "mse":

        def mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            dense = soft_targets(targets, logits.shape[1], label_smoothing)
            return F.mse_loss(logits.float().softmax(1), dense)

        return mse
    raise ConfigError(
        f"unknown loss {name!r}.{did_you_mean(name, LOSSES)} Choose one of {', '.join(LOSSES)}"
    )
