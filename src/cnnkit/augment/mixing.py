"""Mixup and CutMix: training-time transforms that mix pairs of images and their labels.

Unlike the per-image transforms they need the batch's labels, and they turn each label into
a soft target: image ``i`` is mixed with image ``partner[i]`` of the same batch, and its
target is ``weight[i]`` of its own class plus ``1 - weight[i]`` of the partner's. The loss
must accept such ``(N, K)`` targets (cnnkit's losses do). They are for training only: an
image file has one class folder, so the offline pipeline refuses them.

- **mixup** (Zhang et al. 2018): ``x = w x + (1 - w) x[partner]``, ``w ~ Beta(alpha, alpha)``;
- **cutmix** (Yun et al. 2019): a rectangle of about ``1 - w`` of the image is pasted from
  the partner, and ``w`` is set to the share of the image left untouched.

The random draws come from the same explicit generator as every other transform (the Beta
draws through a NumPy generator seeded from it), so mixed batches are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.augment.transforms import Params, Transform
from cnnkit.errors import ConfigError


@dataclass(frozen=True)
class Mixing:
    """How a batch's images were mixed: what the loss needs to build soft targets.

    Attributes:
        labels: the batch's class indices ``(N,)``.
        partner: the image each image was mixed with ``(N,)``.
        weight: the share of each image's own class in its target ``(N,)``, 0..1.
    """

    labels: torch.Tensor
    partner: torch.Tensor
    weight: torch.Tensor

    def targets(self, num_classes: int) -> torch.Tensor:
        """Soft targets ``(N, K)``: ``weight`` of the own class, the rest the partner's."""
        own = F.one_hot(self.labels, num_classes).float()
        weight = self.weight.to(own.device, torch.float32).view(-1, 1)
        return weight * own + (1 - weight) * own[self.partner.to(own.device)]


def _beta(n: int, alpha: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws from Beta(alpha, alpha), reproducible from ``generator``."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, n)).float()


@dataclass(frozen=True)
class MixTransform(Transform):
    """Base of the label-mixing transforms; ``p`` is the share of images that are mixed.

    Attributes:
        alpha: the Beta(alpha, alpha) distribution's parameter (> 0).
    """

    alpha: float = 1.0

    main: ClassVar[str | None] = "alpha"

    def check(self) -> None:
        if self.alpha <= 0:
            raise ConfigError(f"{self.name}: alpha must be positive, got {self.alpha}")

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        partner = torch.randperm(n, generator=generator)
        return {"partner": partner, "weight": _beta(n, self.alpha, generator)}

    def mix(
        self, x: torch.Tensor, labels: torch.Tensor, params: Params
    ) -> tuple[torch.Tensor, Mixing]:
        """Mix the float32 working batch ``x`` in place; return it and the :class:`Mixing`."""
        raise NotImplementedError

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        raise ConfigError(
            f"{self.name} mixes labels too; it runs only in training (cnnkit train --augment), "
            "not on single images or in cnnkit augment"
        )


@dataclass(frozen=True)
class Mixup(MixTransform):
    """Mixup: blend each image with a partner from the batch, ``w ~ Beta(alpha, alpha)``."""

    alpha: float = 0.2

    name: ClassVar[str] = "mixup"

    def mix(
        self, x: torch.Tensor, labels: torch.Tensor, params: Params
    ) -> tuple[torch.Tensor, Mixing]:
        partner = params["partner"].to(x.device)
        weight = torch.where(params["apply"], params["weight"], 1.0).to(x.device)
        w = weight.view(-1, 1, 1, 1)
        mixed = w * x + (1 - w) * x[partner]
        return mixed, Mixing(labels=labels, partner=partner, weight=weight)


@dataclass(frozen=True)
class CutMix(MixTransform):
    """CutMix: paste a rectangle of about ``1 - w`` of the image from a partner."""

    alpha: float = 1.0

    name: ClassVar[str] = "cutmix"

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        params = super().draw(n, shape, generator)
        _, h, w = shape
        side = (1 - params["weight"]).sqrt()  # the box covers about 1 - weight of the image
        height, width = (side * h).round().long(), (side * w).round().long()
        centre_y = torch.randint(0, h, (n,), generator=generator)
        centre_x = torch.randint(0, w, (n,), generator=generator)
        top, left = (centre_y - height // 2).clamp(0, h), (centre_x - width // 2).clamp(0, w)
        bottom = (centre_y - height // 2 + height).clamp(0, h)
        right = (centre_x - width // 2 + width).clamp(0, w)
        params["box"] = torch.stack([top, left, bottom - top, right - left], dim=1)
        return params

    def mix(
        self, x: torch.Tensor, labels: torch.Tensor, params: Params
    ) -> tuple[torch.Tensor, Mixing]:
        n, _, h, w = x.shape
        partner = params["partner"].to(x.device)
        box = torch.where(params["apply"].view(-1, 1), params["box"], 0).to(x.device)
        top, left, height, width = (box[:, i].view(n, 1, 1, 1) for i in range(4))
        rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
        inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
        mixed = torch.where(inside, x[partner], x)
        weight = 1 - (box[:, 2] * box[:, 3]).float() / (h * w)  # the share actually kept
        return mixed, Mixing(labels=labels, partner=partner, weight=weight)


MIXING: tuple[type[MixTransform], ...] = (Mixup, CutMix)
