"""Optimizers by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cnnkit.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    Args:
        name: ``adam`` or ``sgd``.
        params: parameters, or parameter groups (dicts with ``params`` and e.g. ``lr``).
        lr: learning rate.
        momentum: SGD momentum (0 = plain SGD).
        weight_decay: L2 penalty added to the gradient.
    """
    if lr <= 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
