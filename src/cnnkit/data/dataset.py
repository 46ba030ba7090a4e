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


@dataclass(frozen=True, repr=False)
class Dataset:
    """Images, labels, class names and where they came from.

    ``repr`` is one line (never the pixel values); a notebook shows a small table.

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
        layout: str = "nchw",
    ) -> Dataset:
        """Build from numpy arrays; grey ``(N, H, W)`` images get a channel axis.

        Only lossless conversions happen: pixels of any dtype must be whole numbers in 0..255
        and labels whole numbers (float images in [0, 1], as Keras programs feed them, are
        refused with the fix, never cast). ``layout="nhwc"`` reads channels-last arrays
        ``(N, H, W, C)``; in the default ``nchw`` layout an array whose last axis looks like
        channels (1, 3 or 4) while its second cannot be (more than 4) is refused rather than
        misread.

        Raises:
            DataError: the pixels or labels would change in the conversion, or the layout
                is ambiguous.
        """
        name = source or "dataset"
        images = np.asarray(images)
        if layout not in ("nchw", "nhwc"):
            raise DataError(f"{name}: layout must be 'nchw' or 'nhwc', got {layout!r}")
        if images.ndim == 3:
            images = images[:, None, :, :]
        elif images.ndim == 4 and layout == "nhwc":
            images = images.transpose(0, 3, 1, 2)
        elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] > 4:
            raise DataError(
                f"{name}: images of shape {images.shape} look channels-last (N, H, W, C); "
                "pass layout='nhwc' to read them so, or transpose to (N, C, H, W)"
            )
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(_lossless(images, np.uint8, name))),
            labels=torch.from_numpy(_lossless(np.asarray(labels), np.int64, name, "labels")),
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

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.source or '(no source)'}: {len(self):,} images "
            f"{_shape_text(self)}, {self.num_classes} classes {_classes_text(self.classes)}>"
        )

    def _repr_html_(self) -> str:
        from cnnkit.notebook import html_table

        counts = self.class_counts()
        classes = ", ".join(f"{name} ({n:,})" for name, n in zip(self.classes, counts, strict=True))
        return html_table(
            [
                ("source", self.source or "(none)"),
                ("images", f"{len(self):,}"),
                ("shape", _shape_text(self)),
                ("classes", f"{self.num_classes}: {classes}"),
            ],
            caption="Dataset",
        )

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


def _lossless(values: np.ndarray, dtype: type, name: str, what: str = "images") -> np.ndarray:
    """``values`` as ``dtype`` when every value survives the conversion; else a DataError."""
    if values.dtype == dtype:
        return values
    if values.size:
        info = np.iinfo(dtype)
        low, high = values.min(), values.max()
        whole = values.dtype.kind in "iub" or bool(np.all(np.mod(values, 1) == 0))
        if not whole or low < info.min or high > info.max:
            hint = (
                "; float images in [0, 1]: scale them with (x * 255).round().astype('uint8'), "
                "or train on the floats as they are with cnnkit.keras"
                if what == "images" and values.dtype.kind == "f"
                else ""
            )
            raise DataError(
                f"{name}: {what} of dtype {values.dtype} (values {low}..{high}) cannot become "
                f"{np.dtype(dtype).name} without changing them{hint}"
            )
    return values.astype(dtype)


@dataclass(frozen=True, repr=False)
class Splits:
    """The train / validation / test parts of one data source."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None

    def __post_init__(self) -> None:
        """The parts must hold images of one shape and the same classes (a model trained on
        one could not be evaluated on another, which would show only after training)."""
        for name, part in self.items()[1:]:
            if part.image_shape != self.train.image_shape:
                raise DataError(
                    f"{part.source or name}: the {name} images are {_shape(part.image_shape)} "
                    f"but the train images are {_shape(self.train.image_shape)}; every split "
                    "of a source must hold images of one size and channel count"
                )
            if part.classes != self.train.classes:
                raise DataError(
                    f"{part.source or name}: the {name} split has classes "
                    f"{list(part.classes)[:5]} but train has {list(self.train.classes)[:5]}"
                )

    def items(self) -> list[tuple[str, Dataset]]:
        """``(name, dataset)`` for each split that is present, in train/val/test order."""
        parts = (("train", self.train), ("val", self.val), ("test", self.test))
        return [(name, ds) for name, ds in parts if ds is not None]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {len(ds):,}" for name, ds in self.items())
        return (
            f"<Splits {sizes}: {_shape_text(self.train)}, {self.train.num_classes} classes "
            f"{_classes_text(self.train.classes)}>"
        )

    def _repr_html_(self) -> str:
        from cnnkit.notebook import html_table

        return html_table(
            [(name, f"{len(ds):,}", ds.source) for name, ds in self.items()],
            header=("split", "images", "source"),
            caption=f"Splits: {_shape_text(self.train)}, {self.train.num_classes} classes "
            f"{_classes_text(self.train.classes)}",
            right=(1,),
        )


def _shape_text(dataset: Dataset) -> str:
    """``1x28x28 uint8`` (C x H x W)."""
    return "x".join(map(str, dataset.image_shape)) + " uint8"


def _classes_text(classes: Sequence[str], shown: int = 6) -> str:
    """``(0, 1, 2, ..., 9)``: the first few names and the last."""
    names = list(classes) if len(classes) <= shown else [*classes[: shown - 2], "...", classes[-1]]
    return "(" + ", ".join(names) + ")"


def _shape(shape: tuple[int, int, int]) -> str:
    channels, height, width = shape
    return f"{height}x{width} with {channels} channel(s)"
