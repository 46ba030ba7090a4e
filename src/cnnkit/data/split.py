"""Seeded, stratified splits of a dataset."""

from __future__ import annotations

import numpy as np

from cnnkit.data.dataset import Dataset
from cnnkit.errors import ConfigError


def stratified_indices(
    labels: np.ndarray, size: int | float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (kept, held out), preserving class proportions.

    Args:
        labels: int labels ``(N,)``.
        size: held-out part as a count (int ≥ 1) or a fraction (0 < float < 1).
        seed: the split is a pure function of ``labels``, ``size`` and ``seed``.

    Returns:
        Two sorted int64 index arrays that together cover ``0..N-1`` once.
    """
    from sklearn.model_selection import train_test_split

    n = len(labels)
    held = round(size * n) if isinstance(size, float) else int(size)
    if isinstance(size, float) and not 0.0 < size < 1.0:
        raise ConfigError(f"a split fraction must be between 0 and 1, got {size}")
    if not 0 < held < n:
        raise ConfigError(f"cannot hold out {held} of {n} samples; choose 1..{n - 1}")
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    kept, out = train_test_split(
        np.arange(n), test_size=held, random_state=seed, shuffle=True, stratify=stratify
    )
    return np.sort(kept), np.sort(out)


def split_validation(train: Dataset, size: int | float, *, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out a stratified validation set from ``train``; returns ``(train, val)``."""
    kept, held = stratified_indices(train.labels.numpy(), size, seed=seed)
    base = train.source.split(" ", 1)[0]
    return (
        train.subset(kept, name=f"{base} (train part, seed {seed})"),
        train.subset(held, name=f"{base} (validation part, seed {seed})"),
    )


def stratified_sample(
    dataset: Dataset, *, per_class: int | None = None, size: int | None = None, seed: int = 0
) -> Dataset:
    """A seeded, stratified sample of ``dataset``, in the dataset's order.

    Give exactly one of ``per_class`` (that many samples of every class, e.g. 100 per class
    of Fashion-MNIST) or ``size`` (that many samples in total, class proportions kept).
    The sample is a pure function of the data, the count and ``seed``.

    Raises:
        ConfigError: both or neither count given, or a count the data cannot provide.
    """
    if (per_class is None) == (size is None):
        raise ConfigError("give exactly one of per_class and size for a stratified sample")
    labels = dataset.labels.numpy()
    base = dataset.source.split(" ", 1)[0]
    if size is not None:
        if size == len(dataset):
            return dataset
        _, chosen = stratified_indices(labels, int(size), seed=seed)
        return dataset.subset(chosen, name=f"{base} (sample of {size}, seed {seed})")
    if per_class is None or per_class < 1:
        raise ConfigError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    picks = []
    for label, count in enumerate(np.bincount(labels, minlength=dataset.num_classes)):
        if count < per_class:
            raise ConfigError(
                f"{base}: class {dataset.classes[label]!r} has {count} samples, fewer than "
                f"the {per_class} per class asked for; ask for at most {count}"
            )
        members = np.flatnonzero(labels == label)
        picks.append(rng.permutation(members)[:per_class])
    chosen = np.sort(np.concatenate(picks))
    return dataset.subset(chosen, name=f"{base} ({per_class} per class, seed {seed})")
