"""The input contract: how a picture becomes the float tensor a model was trained on.

A :class:`Preprocessing` is computed once from the training split, recorded on the run card
(``preprocessing``), read back from it, and applied identically by training, evaluation,
prediction, export and the web demo: image files are decoded to its channels and size by its
resize rule (:meth:`Preprocessing.load`), then normalised (calling it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.images import DEFAULT_FIT, FIT_MODES, ImageSource, load_image
from cnnkit.errors import DataError, RunError

MAX_PIXELS = 40_000_000  # larger image files are refused from their header, before decoding


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation ``(x / 255 - mean) / std`` for images of ``input_shape``,
    and the rule that brings a picture of another size to it.

    Attributes:
        input_shape: ``(C, H, W)`` the model expects: 1 (grey) or 3 (RGB) channels.
        mean: per-channel mean of the training pixels, on the 0..1 scale.
        std: per-channel standard deviation, on the 0..1 scale.
        fit: how a picture of another size is brought to ``H x W`` (``pad``, ``crop`` or
            ``stretch``; see :mod:`cnnkit.data.images`): the rule the training images were
            read with.
    """

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fit: str = DEFAULT_FIT
    # mean and std as (1, C, 1, 1) tensors, made once per device
    _tensors: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"normalisation needs one mean and std per channel ({channels}), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise DataError(f"normalisation std must be positive, got {self.std}")
        if self.fit not in FIT_MODES:
            raise DataError(f"fit must be one of {', '.join(FIT_MODES)}, not {self.fit!r}")

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, *, fit: str = DEFAULT_FIT, chunk: int | None = None
    ) -> Preprocessing:
        """Channel statistics of ``dataset``, accumulated in float64 over chunks of images;
        ``fit``: the resize rule its pictures were read with.

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
            fit=fit,
        )

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    def load(
        self, source: ImageSource, *, max_pixels: int | None = None, name: str | None = None
    ) -> np.ndarray:
        """Decode one image file (path or bytes) to uint8 ``(C, H, W)`` of this input.

        Args:
            max_pixels: refuse larger pictures (width x height) from their header, before
                decoding; default :data:`MAX_PIXELS` (40 megapixels: a 36 MP camera photo
                passes, a 9400 x 9400 PNG of a few hundred KB does not).
            name: what messages call the image (default: its path).

        Raises:
            DataError: not an image in an accepted format, corrupt, or too large.
        """
        return load_image(
            source,
            channels=self.channels,
            size=self.input_shape[1:],
            fit=self.fit,
            max_pixels=MAX_PIXELS if max_pixels is None else max_pixels,
            name=name,
        )

    def describe_input(self) -> dict[str, Any]:
        """What a picture is decoded to: ``channels``, ``height``, ``width``, ``fit``."""
        channels, height, width = self.input_shape
        return {"channels": channels, "height": height, "width": width, "fit": self.fit}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` on any device -> normalised float32 on the same device."""
        if images.shape[1:] != self.input_shape:
            raise DataError(
                f"images of shape {tuple(images.shape[1:])} do not match the model's "
                f"input shape {self.input_shape}"
            )
        mean, std = self._on(images.device)
        return images.float().div_(255.0).sub_(mean).div_(std)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``std`` as ``(1, C, 1, 1)`` float32 tensors on ``device``, cached."""
        if device not in self._tensors:
            self._tensors[device] = (
                torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                torch.tensor(self.std, device=device).view(1, -1, 1, 1),
            )
        return self._tensors[device]

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "mean": list(self.mean),
            "std": list(self.std),
            "fit": self.fit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        try:
            return cls(
                input_shape=tuple(int(v) for v in data["input_shape"]),  # type: ignore[arg-type]
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                fit=str(data.get("fit", DEFAULT_FIT)),
            )
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise RunError(f"preprocessing record is incomplete or malformed: {exc}") from exc
