"""Input preprocessing: what turns uint8 images into the float tensors a model was trained on.

A :class:`Preprocessing` is computed once from the training split, stored in the run
directory, and applied identically by training, evaluation, prediction and export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.errors import DataError, RunError


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation ``(x / 255 - mean) / std`` for images of ``input_shape``.

    Attributes:
        input_shape: ``(C, H, W)`` the model expects.
        mean: per-channel mean of the training pixels, on the 0..1 scale.
        std: per-channel standard deviation, on the 0..1 scale.
    """

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"normalisation needs one mean and std per channel ({channels}), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise DataError(f"normalisation std must be positive, got {self.std}")

    @classmethod
    def from_dataset(cls, dataset: Dataset, *, chunk: int | None = None) -> Preprocessing:
        """Channel statistics of ``dataset``, accumulated in float64 over chunks of images.

        ``chunk`` images at a time: by default 4096, fewer for large images (at most 64 MiB
        of float64 at once, so a dataset read from a disk cache is never held in memory).
        """
        channels = dataset.image_shape[0]
        if chunk is None:
            chunk = max(1, min(4096, (64 << 20) // (8 * int(np.prod(dataset.image_shape)))))
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        for start in range(0, len(dataset), chunk):
            block = dataset.images[start : start + chunk].to(torch.float64).div_(255.0)
            total += block.sum(dim=(0, 2, 3))
            total_sq += block.square().sum(dim=(0, 2, 3))
        count = len(dataset) * dataset.image_shape[1] * dataset.image_shape[2]
        if count == 0:
            raise DataError(f"{dataset.source}: cannot compute statistics of an empty dataset")
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(1e-12).sqrt()
        return cls(
            input_shape=dataset.image_shape,
            mean=tuple(round(float(m), 6) for m in mean),
            std=tuple(round(max(float(s), 1e-3), 6) for s in std),
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` on any device -> normalised float32 on the same device."""
        if images.shape[1:] != self.input_shape:
            raise DataError(
                f"images of shape {tuple(images.shape[1:])} do not match the model's "
                f"input shape {self.input_shape}"
            )
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return images.float().div_(255.0).sub_(mean).div_(std)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        try:
            return cls(
                input_shape=tuple(int(v) for v in data["input_shape"]),  # type: ignore[arg-type]
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"preprocessing record is incomplete or malformed: {exc}") from exc
