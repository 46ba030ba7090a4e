"""Batch sources: seeded per-epoch order, DDP shards, and a streaming source through fit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.train.batches import (
    Batch,
    BatchSource,
    TensorBatches,
    epoch_order,
    steps_per_epoch,
)
from cnnkit.train.loop import fit
from tests.train.conftest import same_weights

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


def numbered(n: int) -> Dataset:
    """Images whose first pixel holds the sample's index (mod 256), labels = index % 10."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    return Dataset(images, torch.arange(n) % 10, tuple("0123456789"))


def test_each_epoch_is_a_seeded_permutation() -> None:
    source = TensorBatches(numbered(250))
    epoch0 = torch.cat([x[:, 0, 0, 0] for x, _ in source.batches(epoch=0, batch_size=64, seed=1)])
    again = torch.cat([x[:, 0, 0, 0] for x, _ in source.batches(epoch=0, batch_size=64, seed=1)])
    epoch1 = torch.cat([x[:, 0, 0, 0] for x, _ in source.batches(epoch=1, batch_size=64, seed=1)])
    assert sorted(epoch0.tolist()) == list(range(250))
    assert torch.equal(epoch0, again) and not torch.equal(epoch0, epoch1)
    assert [len(y) for _, y in source.batches(epoch=0, batch_size=64, seed=1)] == [64] * 3 + [58]


def test_start_skips_batches_exactly() -> None:
    source = TensorBatches(numbered(250))
    full = [y for _, y in source.batches(epoch=3, batch_size=64, seed=0)]
    tail = [y for _, y in source.batches(epoch=3, batch_size=64, seed=0, start=2)]
    assert all(torch.equal(a, b) for a, b in zip(full[2:], tail, strict=True))


def test_shards_split_every_global_batch_disjointly() -> None:
    source = TensorBatches(numbered(251))  # odd: one sample is left out with 2 shards
    parts = [
        list(source.batches(epoch=0, batch_size=50, seed=0, shard=r, shards=2)) for r in (0, 1)
    ]
    assert len(parts[0]) == len(parts[1]) == steps_per_epoch(251, 50, 2) == 5
    whole = list(source.batches(epoch=0, batch_size=50, seed=0))
    for (x0, _), (x1, _), (x, _) in zip(*parts, whole, strict=False):
        ids0, ids1 = set(x0[:, 0, 0, 0].tolist()), set(x1[:, 0, 0, 0].tolist())
        assert not ids0 & ids1 and len(ids0) == len(ids1)
        assert ids0 | ids1 <= set(x[:, 0, 0, 0].tolist())


class NpyChunks:
    """A small streaming source: images stored as .npy chunk files, read one at a time.

    Per epoch it visits the chunks in a seeded order and shuffles inside each chunk, so it
    never holds more than one chunk in memory (how a folder of images would stream).
    """

    def __init__(self, folder: Path, dataset: Dataset, chunk: int) -> None:
        self.files = []
        for i, start in enumerate(range(0, len(dataset), chunk)):
            path = folder / f"chunk{i}.npz"
            part = dataset.subset(range(start, min(start + chunk, len(dataset))))
            np.savez(path, images=part.images.numpy(), labels=part.labels.numpy())
            self.files.append(path)
        self._n, self._shape = len(dataset), dataset.image_shape
        self.reads = 0

    @property
    def num_samples(self) -> int:
        return self._n

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._shape

    def batches(
        self, *, epoch: int, batch_size: int, seed: int, start: int = 0, shard=0, shards=1
    ) -> Iterator[Batch]:
        rng = np.random.default_rng([seed, epoch])
        pending_x, pending_y = [], []
        emitted = 0
        for index in rng.permutation(len(self.files)):
            with np.load(self.files[index]) as chunk:
                self.reads += 1
                order = rng.permutation(len(chunk["labels"]))
                pending_x.append(torch.from_numpy(chunk["images"][order]))
                pending_y.append(torch.from_numpy(chunk["labels"][order]))
            x, y = torch.cat(pending_x), torch.cat(pending_y)
            while len(y) >= batch_size:
                if emitted >= start:
                    yield x[:batch_size][shard::shards], y[:batch_size][shard::shards]
                emitted += 1
                x, y = x[batch_size:], y[batch_size:]
            pending_x, pending_y = [x], [y]
        if len(pending_y[0]) and emitted >= start:
            yield pending_x[0][shard::shards], pending_y[0][shard::shards]


def test_a_streaming_source_trains_through_fit(mini, tiny_model, tmp_path) -> None:
    train, val, pre = mini
    stream = NpyChunks(tmp_path, train, chunk=100)
    assert isinstance(stream, BatchSource)
    history = fit(
        tiny_model(), train=stream, val=val, preprocessing=pre, epochs=2, batch_size=32, lr=0.01
    )
    assert stream.reads == 2 * len(stream.files)
    assert history[-1]["val_accuracy"] > 0.5


class Replay:
    """A streaming source replaying another source's batches (to compare with it)."""

    def __init__(self, inner: TensorBatches) -> None:
        self.inner = inner
        self.num_samples, self.image_shape = inner.num_samples, inner.image_shape

    def batches(self, **kwargs) -> Iterator[Batch]:
        for x, y in self.inner.batches(**kwargs):
            yield x.clone(), y.clone()


def test_the_streaming_path_and_the_in_memory_path_train_identically(mini, tiny_model) -> None:
    train, _, pre = mini
    a, b = tiny_model(), tiny_model()
    fit(a, train=train, preprocessing=pre, epochs=1, batch_size=64, precision="fp32")
    fit(b, train=Replay(TensorBatches(train)), preprocessing=pre, epochs=1, batch_size=64,
        precision="fp32")  # fmt: skip
    assert same_weights(a, b)


def test_epoch_order_is_a_function_of_seed_and_epoch_only() -> None:
    torch.manual_seed(0)
    first = epoch_order(100, seed=4, epoch=2)
    torch.manual_seed(1)  # the global generator does not matter
    assert torch.equal(first, epoch_order(100, seed=4, epoch=2))
