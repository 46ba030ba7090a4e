"""Named data sources (``mnist``, ...) and the one entry point that loads them as splits."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.mnist import FASHION_MNIST, MNIST, IdxSource, candidate_dirs, load_idx_source
from cnnkit.data.split import split_validation
from cnnkit.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """A named source: how to read its train/test parts and its default validation size."""

    name: str
    description: str
    read: Callable[[Path | None], dict[str, Dataset]]  # data_dir -> {"train": ..., "test": ...}
    val_size: int | float
    locate: Callable[[Path | None], Path | None]  # data_dir -> folder the files are in, or None
    how_to_get: str


def _idx(source: IdxSource, description: str) -> Source:
    return Source(
        name=source.name,
        description=description,
        read=lambda data_dir: load_idx_source(source, data_dir),
        val_size=source.val_size,
        locate=lambda data_dir: next(
            (d for d in candidate_dirs(source, data_dir) if source.locate(d) is not None), None
        ),
        how_to_get=source.how_to_get,
    )


IDX_SOURCES: dict[str, IdxSource] = {s.name: s for s in (MNIST, FASHION_MNIST)}

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        _idx(MNIST, "MNIST handwritten digits, 28x28 grey, 60,000 train / 10,000 test"),
        _idx(
            FASHION_MNIST,
            "Fashion-MNIST clothing, 28x28 grey, 10 classes, 60,000 train / 10,000 test",
        ),
    )
}


def get_source(name: str) -> Source:
    """The source called ``name``; unknown names fail with a suggestion."""
    try:
        return SOURCES[name]
    except KeyError:
        close = difflib.get_close_matches(name, SOURCES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown data source {name!r}.{hint} Known: {', '.join(sorted(SOURCES))}"
        ) from None


def load_dataset(
    name: str = "mnist",
    *,
    data_dir: str | Path | None = None,
    val_size: int | float | None = None,
    seed: int = 0,
) -> Splits:
    """Load a named source as train / validation / test splits.

    Args:
        name: a source name (``cnnkit datasets`` lists them).
        data_dir: look only in this folder for the source's files.
        val_size: validation part held out of the training set, stratified and seeded —
            a count or a fraction; ``None`` takes the source's default (MNIST: 5,000),
            ``0`` keeps no validation set.
        seed: seeds the validation split.

    Returns:
        Splits with uint8 images; MNIST gives 55,000 / 5,000 / 10,000 by default.
    """
    source = get_source(name)
    parts = source.read(Path(data_dir) if data_dir is not None else None)
    size = source.val_size if val_size is None else val_size
    train, val = parts["train"], None
    if size:
        train, val = split_validation(train, size, seed=seed)
    return Splits(train=train, val=val, test=parts.get("test"))
