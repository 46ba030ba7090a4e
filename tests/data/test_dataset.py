from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.split import split_validation, stratified_indices
from cnnkit.errors import ConfigError, DataError


def make(n: int = 20, classes: int = 4) -> Dataset:
    images = np.arange(n * 2 * 3 * 3, dtype=np.int64).reshape(n, 2, 3, 3) % 256
    return Dataset.from_numpy(
        images, np.arange(n) % classes, [f"c{i}" for i in range(classes)], source="toy"
    )


def test_from_numpy_adds_channel_axis_to_grey_images() -> None:
    ds = Dataset.from_numpy(np.zeros((5, 7, 8)), np.zeros(5), ["a"])
    assert ds.images.shape == (5, 1, 7, 8) and ds.images.dtype == torch.uint8
    assert ds.image_shape == (1, 7, 8) and len(ds) == 5


@pytest.mark.parametrize(
    ("images", "labels", "classes", "message"),
    [
        (torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.int64), ("a",), "uint8"),
        (
            torch.zeros(2, 3, 3, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ("a",),
            r"\(N, C, H, W\)",
        ),
        (
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.int64),
            ("a",),
            "labels must be int64 of shape",
        ),
        (
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
            torch.tensor([0, 2]),
            ("a", "b"),
            "does not fit 2 classes",
        ),
        (
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            (),
            "no class names",
        ),
    ],
)
def test_invalid_datasets_are_rejected(images, labels, classes, message) -> None:
    with pytest.raises(DataError, match=message):
        Dataset(images=images, labels=labels, classes=classes, source="toy")


def test_subset_keeps_order_classes_and_ids() -> None:
    ds = make()
    ds = Dataset(ds.images, ds.labels, ds.classes, "toy", ids=tuple(f"id{i}" for i in range(20)))
    sub = ds.subset([5, 2])
    assert sub.labels.tolist() == [1, 2] and sub.ids == ("id5", "id2")
    assert torch.equal(sub.images[0], ds.images[5]) and sub.classes == ds.classes


def test_class_counts_and_fingerprint() -> None:
    ds = make()
    assert ds.class_counts() == [5, 5, 5, 5]
    assert ds.fingerprint() == make().fingerprint()
    changed = ds.images.clone()
    changed[0, 0, 0, 0] += 1
    assert Dataset(changed, ds.labels, ds.classes).fingerprint() != ds.fingerprint()


def test_stratified_split_is_seeded_disjoint_and_proportional() -> None:
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    kept, held = stratified_indices(labels, 40, seed=3)
    assert len(held) == 40 and len(kept) == 160
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(200))
    assert np.bincount(labels[held]).tolist() == [20, 10, 6, 4]
    again = stratified_indices(labels, 40, seed=3)
    assert np.array_equal(held, again[1])
    assert not np.array_equal(held, stratified_indices(labels, 40, seed=4)[1])


def test_split_fraction_and_errors() -> None:
    train, val = split_validation(make(), 0.25, seed=0)
    assert len(train) == 15 and len(val) == 5
    with pytest.raises(ConfigError, match="cannot hold out 20 of 20"):
        stratified_indices(np.zeros(20, dtype=int), 20, seed=0)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        stratified_indices(np.zeros(20, dtype=int), 1.5, seed=0)


def test_preprocessing_normalises_to_zero_mean_unit_std() -> None:
    ds = make(40)
    pre = Preprocessing.from_dataset(ds, chunk=7)
    x = pre(ds.images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    with pytest.raises(DataError, match="do not match the model's input shape"):
        pre(torch.zeros(1, 1, 3, 3, dtype=torch.uint8))
