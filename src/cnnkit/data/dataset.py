"""The one in-memory dataset form every part of cnnkit consumes.

Readers (IDX, CIFAR, folders) produce a :class:`Dataset`; training, evaluation,
augmentation and export consume one. Images are a single uint8 tensor
``(N, C, H, W)``; labels a single int64 tensor ``(N,)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cnnkit.data.mapped import mapped_file, take_rows
from cnnkit.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Images, labels, class names and where they came from.

    Attributes:
        images: uint8 tensor ``(N, C, H, W)``, pixel values 0..255.
        labels: int64 tensor ``(N,)`` with values in ``0..len(classes)-1``.
        classes: class names; ``classes[label]`` names a label.
        source: provenance, e.g. ``"mnist:train (/path/train-images-idx3-ubyte.gz)"``.
        ids: optional per-sample identifier (file path or ``"mnist:train/123"``), length N.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""
    ids: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise DataError(f"{self.source or 'dataset'}: images must be a uint8 tensor")
        if self.images.ndim != 4:
            raise DataError(
                f"{self.source or 'dataset'}: images must have shape (N, C, H, W), "
                f"got {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"{self.source or 'dataset'}: labels must be int64 of shape "
                f"({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if not self.classes:
            raise DataError(f"{self.source or 'dataset'}: no class names given")
        if len(self.labels) and (
            int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)
        ):
            raise DataError(
                f"{self.source or 'dataset'}: labels range "
                f"{int(self.labels.min())}..{int(self.labels.max())} does not fit "
                f"{len(self.classes)} classes"
            )
        if self.ids is not None and len(self.ids) != len(self.labels):
            raise DataError(
                f"{self.source or 'dataset'}: {len(self.ids)} ids for {len(self.labels)} samples"
            )

    @classmethod
    def from_numpy(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        *,
        source: str = "",
        ids: Sequence[str] | None = None,
    ) -> Dataset:
        """Build from numpy arrays; grey ``(N, H, W)`` images get a channel axis."""
        if images.ndim == 3:
            images = images[:, None, :, :]
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
            labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            classes=tuple(classes),
            source=source,
            ids=tuple(ids) if ids is not None else None,
        )

    @classmethod
    def concat(cls, parts: Sequence[Dataset], *, source: str = "") -> Dataset:
        """The samples of ``parts`` one after the other; all must share classes and shape.

        Ids are kept when every part has its own (otherwise each part's default ids).
        """
        if not parts:
            raise DataError("cannot concatenate zero datasets")
        first = parts[0]
        if len(parts) == 1:  # no copy: a part read from a disk cache stays there
            return replace(first, source=source or first.source, ids=first.sample_ids())
        for part in parts[1:]:
            if part.classes != first.classes or part.image_shape != first.image_shape:
                raise DataError(
                    f"cannot concatenate {part.source or 'a dataset'} with "
                    f"{first.source or 'a dataset'}: classes or image shapes differ"
                )
        return cls(
            images=torch.cat([p.images for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            classes=first.classes,
            source=source or first.source,
            ids=tuple(i for p in parts for i in p.sample_ids()),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: torch.Tensor | np.ndarray | Sequence[int], name: str = "") -> Dataset:
        """The samples at ``indices`` (in that order), keeping class names and ids."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        ids = None if self.ids is None else tuple(self.ids[i] for i in index.tolist())
        if mapped_file(self.images) is not None:  # a decoded folder cache stays on disk
            images = torch.from_numpy(take_rows(self.images.numpy(), index.numpy()))
        else:
            images = self.images[index]
        return Dataset(
            images=images,
            labels=self.labels[index],
            classes=self.classes,
            source=name or self.source,
            ids=ids,
        )

    def class_counts(self) -> list[int]:
        """Number of samples per class, indexed by label."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def sample_ids(self) -> tuple[str, ...]:
        """Per-sample ids; ``"<source>/<index>"`` when the dataset has none of its own."""
        if self.ids is not None:
            return self.ids
        base = self.source.split(" ", 1)[0] or "sample"
        return tuple(f"{base}/{i}" for i in range(len(self)))

    def fingerprint(self) -> str:
        """SHA-256 over shape, pixels, labels and class names: identifies the exact data."""
        digest = hashlib.sha256()
        digest.update(repr((tuple(self.images.shape), self.classes)).encode())
        digest.update(self.images.contiguous().numpy().data)
        digest.update(self.labels.contiguous().numpy().data)
        return digest.hexdigest()


@dataclass(frozen=True)
class Splits:
    """The train / validation / test parts of one data source."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None

    def items(self) -> list[tuple[str, Dataset]]:
        """``(name, dataset)`` for each split that is present, in train/val/test order."""
        parts = (("train", self.train), ("val", self.val), ("test", self.test))
        return [(name, ds) for name, ds in parts if ds is not None]
