"""Small labelled samples of a data source, the setting transfer learning is for.

A :class:`Sample` says how much of each split to keep (``100 per class`` of train, ``2000``
test images, ...). It is seeded and stratified, so it is a pure function of the data; its
:meth:`~Sample.records` go on a run card, so ``cnnkit evaluate`` re-draws the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.sources import load_dataset
from cnnkit.data.split import stratified_sample
from cnnkit.errors import ConfigError


@dataclass(frozen=True)
class Sample:
    """How much of each split to use; ``None`` keeps a split whole, ``0`` drops val.

    Attributes:
        train_per_class: training images per class.
        val_size: validation images in total (stratified); 0 for no validation.
        test_size: test images in total (stratified).
        seed: seeds the draw.
    """

    train_per_class: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_per_class", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1, got {value}")
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"val size must be 0 or more, got {self.val_size}")

    @property
    def holdout(self) -> int | None:
        """The ``val_size`` for ``load_dataset``: 0 when validation is dropped, else the
        source's default hold-out (the sample is then drawn from it)."""
        return 0 if self.val_size == 0 else None

    def records(self) -> dict[str, dict[str, Any]]:
        """Per split, the ``stratified_sample`` arguments that re-draw it (for the run card)."""
        records: dict[str, dict[str, Any]] = {}
        if self.train_per_class is not None:
            records["train"] = {"per_class": self.train_per_class, "seed": self.seed}
        if self.val_size:
            records["val"] = {"size": self.val_size, "seed": self.seed}
        if self.test_size is not None:
            records["test"] = {"size": self.test_size, "seed": self.seed}
        return records

    def apply(self, splits: Splits) -> Splits:
        """The sampled splits."""
        records = self.records()

        def draw(name: str, dataset: Dataset | None) -> Dataset | None:
            if dataset is None or name not in records:
                return dataset
            return stratified_sample(dataset, **records[name])

        return Splits(
            train=draw("train", splits.train) or splits.train,
            val=None if self.val_size == 0 else draw("val", splits.val),
            test=draw("test", splits.test),
        )

    def describe(self) -> str:
        """``100 per class, 2000 test`` for messages and tables."""
        parts = []
        if self.train_per_class is not None:
            parts.append(f"{self.train_per_class} per class")
        if self.val_size is not None:
            parts.append(f"{self.val_size} val")
        if self.test_size is not None:
            parts.append(f"{self.test_size} test")
        return ", ".join(parts) or "all data"


def load_sample(
    data: str,
    sample: Sample,
    *,
    data_dir: str | Path | None = None,
) -> Splits:
    """Load the source ``data`` (its default validation split) and draw ``sample`` from it."""
    splits = load_dataset(data, data_dir=data_dir, val_size=sample.holdout, seed=sample.seed)
    return sample.apply(splits)
