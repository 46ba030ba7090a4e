"""Optimizers by name: SGD (with momentum and Nesterov), Adam, AdamW, RMSprop, Adagrad.

Where torch has a fused kernel for the optimizer (Adam, AdamW and SGD, on CPU and CUDA) it
is used: one kernel updates every parameter instead of a Python loop over tensors, which
matters for models with a few large layers (the textbook LeNet's 3136x1024 dense layer).
Every optimizer is built and steps without importing torch's compiler while nothing compiles
(:mod:`cnnkit.train.eager`: 1.5-2 s of every process that trains).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cnnkit.errors import ConfigError, did_you_mean
from cnnkit.train.eager import build_eager

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    Args:
        name: ``sgd``, ``adam``, ``adamw``, ``rmsprop`` or ``adagrad``.
        params: parameters, or parameter groups (dicts with ``params`` and e.g. ``lr``).
        lr: learning rate.
        momentum: SGD and RMSprop momentum (0 = none).
        nesterov: Nesterov momentum (SGD; needs ``momentum > 0``).
        weight_decay: L2 penalty added to the gradient; decoupled decay for ``adamw``.

    Raises:
        ConfigError: unknown name or out-of-range hyper-parameters.
    """
    if lr <= 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    if momentum < 0 or weight_decay < 0:
        raise ConfigError(
            f"momentum and weight decay must be >= 0, got {momentum} and {weight_decay}"
        )
    if momentum and name in ("adam", "adamw"):
        raise ConfigError(
            f"{name} has no momentum setting (its betas play that part); drop --momentum "
            "or use --optimizer sgd / rmsprop"
        )
    if nesterov and (name != "sgd" or momentum == 0):
        raise ConfigError("nesterov needs the sgd optimizer and a momentum > 0 (--momentum 0.9)")
    items: list[Any] = list(params)
    if items and isinstance(items[0], dict):
        # groups keep their frozen parameters, so unfreezing later needs no new optimizer
        tensors: list[torch.nn.Parameter] = [p for group in items for p in group["params"]]
    else:
        items = tensors = [p for p in items if p.requires_grad]
    if not any(p.requires_grad for p in tensors):
        raise ConfigError("the model has no trainable parameters to optimize")
    fused = all(p.device.type in ("cpu", "cuda") for p in tensors)
    return build_eager(_construct, name, items, lr, momentum, nesterov, weight_decay, fused)


def _construct(
    name: str,
    params: list[Any],
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    fused: bool,
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            fused=fused,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "rmsprop":
        # rho 0.9 as in Keras (torch's default is 0.99): the textbooks' RMSprop runs as written
        return torch.optim.RMSprop(
            params, lr=lr, alpha=0.9, momentum=momentum, weight_decay=weight_decay
        )
    if name == "adagrad":
        # Keras's starting accumulator (torch's default is 0)
        return torch.optim.Adagrad(
            params, lr=lr, initial_accumulator_value=0.1, weight_decay=weight_decay
        )
    raise ConfigError(
        f"unknown optimizer {name!r}.{did_you_mean(name, OPTIMIZERS)} Choose one of "
        f"{', '.join(OPTIMIZERS)}"
    )
