"""Where the training loop's batches come from.

The loop asks a :class:`BatchSource` for each epoch's batches: uint8 images ``(B, C, H, W)``
and int64 labels ``(B,)`` on the training device, in an order that is a pure function of
``(seed, epoch)``. That makes a run reproducible from its seed, lets a resumed run pick up
at any batch of any epoch, and lets several processes (DDP) cut the same global batches into
disjoint shards.

Kinds of source sharing the interface:

- :class:`TensorBatches`, the fast path for data that fits in memory (MNIST, CIFAR): the
  whole split is one tensor on the device and a batch is one indexing operation;
- :class:`MappedBatches`, for a split read from a decoded folder cache on disk
  (:mod:`cnnkit.data.cache`): the order is shuffled by blocks of the file
  (:func:`block_order`, also a pure function of ``(seed, epoch)``) so an epoch reads the file
  in large pieces; each batch is gathered from the memory-mapped file while the previous one
  trains, and only the batch is moved to the device. A split of at most one window
  (:data:`WINDOW_BYTES`) gets the same batches as :class:`TensorBatches`, bit for bit;
- streaming sources (for example a folder of images read lazily) implement the same
  :class:`BatchSource` protocol and yield batches as they read them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.mapped import mapped_file, mapped_region

Batch = tuple[torch.Tensor, torch.Tensor]

BLOCK_BYTES = 2 << 20  # a block of a mapped split: consecutive rows read together (bytes)
WINDOW_BYTES = 256 << 20  # rows shuffled together (bytes); a mapped split up to this size
# gets the fully random order of the in-memory path
READ_AHEAD = True  # ask the OS to read the next window's blocks ahead (posix_fadvise)


def epoch_generator(seed: int, epoch: int, *, stream: int = 0) -> torch.Generator:
    """A CPU random generator determined by ``(seed, epoch, stream)`` alone.

    ``stream`` separates independent uses within one epoch (0: shuffling, 1: augmentation).
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


def epoch_order(num_samples: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The seeded permutation of ``range(num_samples)`` used for ``epoch``."""
    return torch.randperm(num_samples, generator=epoch_generator(seed, epoch))


def block_order(
    num_samples: int, *, seed: int, epoch: int, block: int, window: int
) -> torch.Tensor:
    """A seeded permutation of ``range(num_samples)`` that keeps reads local.

    The samples are cut into blocks of ``block`` consecutive indices, and the blocks are dealt
    into windows of ``window // block`` blocks: the blocks are taken in strata of consecutive
    blocks, one stratum per place in a window, and each window gets one block of every
    stratum, at random. The windows come in a seeded random order, and the samples of each
    window are shuffled together. Each stretch of the order thus reads a few whole blocks of
    the file, every batch mixes samples from many blocks, and every window draws evenly from
    the whole file — so data stored one class after another (a folder) still gives each window
    the classes in their overall proportions. When everything fits in one window, this is
    :func:`epoch_order`, the same permutation as in memory.
    """
    if num_samples <= window:
        return epoch_order(num_samples, seed=seed, epoch=epoch)
    generator = epoch_generator(seed, epoch)
    places = max(1, window // block)  # blocks per window = strata
    windows = -(-num_samples // (block * places))
    slots = torch.arange(places * windows).reshape(places, windows)  # stratum x window
    dealt = torch.argsort(torch.rand(places, windows, generator=generator), dim=1)
    blocks = slots.gather(1, dealt)  # a random block of each stratum for each window
    blocks = blocks[:, torch.randperm(windows, generator=generator)]
    pieces = []
    for column in blocks.T:  # one window
        rows = (column[:, None] * block + torch.arange(block)).flatten()
        rows = rows[rows < num_samples]  # past the end (the last block may be short)
        pieces.append(rows[torch.randperm(len(rows), generator=generator)])
    return torch.cat(pieces)


def steps_per_epoch(num_samples: int, batch_size: int, shards: int = 1) -> int:
    """Optimizer steps in one epoch: ceil over the samples every shard can share equally."""
    usable = num_samples - num_samples % shards
    return (usable + batch_size - 1) // batch_size


@runtime_checkable
class BatchSource(Protocol):
    """What :func:`~cnnkit.train.loop.fit` trains from.

    ``batches(epoch=e, batch_size=b, seed=s, start=k, shard=r, shards=w)`` yields the
    batches of epoch ``e`` from batch ``k`` on, each ``(images uint8 (B, C, H, W), labels
    int64 (B,))``. The global batches are the same for every ``shard``; shard ``r`` of ``w``
    yields its own part of each, and all shards yield the same number of batches,
    :func:`steps_per_epoch`.
    """

    @property
    def num_samples(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    def batches(
        self,
        *,
        epoch: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        shard: int = 0,
        shards: int = 1,
    ) -> Iterator[Batch]: ...


class LabelledTensors(Protocol):
    """Images and labels in memory: a :class:`Dataset`, or the arrays ``cnnkit.keras`` trains
    on as given (uint8 or float images ``(N, ...)``; labels ``(N,)`` or soft ``(N, K)``)."""

    @property
    def images(self) -> torch.Tensor: ...

    @property
    def labels(self) -> torch.Tensor: ...


class _IndexedBatches:
    """What the two in-process sources share: images and labels cut into the batches of
    one epoch by index (the seeded order, or the data's own with ``shuffle=False``)."""

    images: torch.Tensor
    labels: torch.Tensor
    shuffle: bool = True

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def batches(
        self,
        *,
        epoch: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        shard: int = 0,
        shards: int = 1,
    ) -> Iterator[Batch]:
        order = self._order(seed=seed, epoch=epoch) if self.shuffle else None
        usable = self.num_samples - self.num_samples % shards
        taken = (order if order is not None else torch.arange(self.num_samples))[:usable]
        taken = taken.to(self.labels.device)
        indices = (
            taken[first : first + batch_size][shard::shards]
            for first in range(start * batch_size, usable, batch_size)
        )
        yield from self._read_batches(indices, order=order, batch_size=batch_size, start=start)

    def _order(self, *, seed: int, epoch: int) -> torch.Tensor:
        return epoch_order(self.num_samples, seed=seed, epoch=epoch)

    def _read_batches(
        self,
        indices: Iterator[torch.Tensor],
        *,
        order: torch.Tensor | None,
        batch_size: int,
        start: int,
    ) -> Iterator[Batch]:
        """The batches of ``indices`` (each batch's sample indices, from batch ``start`` on,
        for this shard; ``order``: the epoch's order, None for the data's own), one
        :meth:`_read` each."""
        return map(self._read, indices)

    def _read(self, index: torch.Tensor) -> Batch:
        raise NotImplementedError


class TensorBatches(_IndexedBatches):
    """A :class:`BatchSource` over in-memory images and labels living on ``device``.

    The images are copied to the device once; each batch is one gather by an index tensor.
    ``shuffle=False`` keeps the data's own order in every epoch.
    """

    def __init__(
        self, dataset: LabelledTensors, device: torch.device | str = "cpu", *, shuffle: bool = True
    ) -> None:
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.shuffle = shuffle

    def _read(self, index: torch.Tensor) -> Batch:
        return self.images[index], self.labels[index]


class MappedBatches(_IndexedBatches):
    """A :class:`BatchSource` over a :class:`Dataset` whose images are a memory-mapped file.

    The split stays on disk (the operating system caches what memory allows). The epoch's
    order is :func:`block_order`: blocks of about :data:`BLOCK_BYTES` of consecutive rows in a
    seeded order, shuffled together within windows of about :data:`WINDOW_BYTES`, so an epoch
    reads the file in large pieces and needs only a window of it in memory at a time (a fully
    random order over a file larger than the page cache reads it row by row from disk, ten
    times slower). A split that fits in one window gets :func:`epoch_order`, the same batches
    as :class:`TensorBatches`. Each batch is read with its rows sorted, put back in the
    epoch's order, and moved to ``device``; the next batch is read on a thread while the
    current one trains, and the next window's blocks are asked of the disk ahead of time.
    """

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.images = dataset.images
        self.labels = dataset.labels
        row = max(1, int(np.prod(self.image_shape)))
        self.block = max(1, BLOCK_BYTES // row)
        self.window = max(self.block, WINDOW_BYTES // row // self.block * self.block)
        self._file = mapped_region(self.images)

    def _order(self, *, seed: int, epoch: int) -> torch.Tensor:
        return block_order(
            self.num_samples, seed=seed, epoch=epoch, block=self.block, window=self.window
        )

    def _read(self, index: torch.Tensor) -> Batch:
        rows, where = index.sort()
        images = torch.empty((len(index), *self.images.shape[1:]), dtype=torch.uint8)
        images[where] = self.images[rows]
        pin = self.device.type == "cuda"
        if pin:
            images = images.pin_memory()
        return (
            images.to(self.device, non_blocking=pin),
            self.labels[index].to(self.device, non_blocking=pin),
        )

    def _read_ahead(self, rows: torch.Tensor) -> None:
        """Ask the operating system to start reading the blocks holding ``rows``."""
        if self._file is None or not READ_AHEAD or not hasattr(os, "posix_fadvise"):
            return
        path, offset = self._file
        row = int(np.prod(self.image_shape))
        starts = torch.unique(rows // self.block).tolist()
        with contextlib.suppress(OSError), open(path, "rb") as file:
            for block in starts:
                first = block * self.block
                count = min(self.block, self.num_samples - first)
                os.posix_fadvise(
                    file.fileno(), offset + first * row, count * row, os.POSIX_FADV_WILLNEED
                )

    def _read_batches(
        self,
        indices: Iterator[torch.Tensor],
        *,
        order: torch.Tensor | None,
        batch_size: int,
        start: int,
    ) -> Iterator[Batch]:
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as prefetch:
            pending: Future[Batch] | None = None
            for step, index in enumerate(indices, start):
                first = step * batch_size
                if order is not None and (step == start or first % self.window < batch_size):
                    ahead = first - first % self.window + (0 if step == start else self.window)
                    prefetch.submit(self._read_ahead, order[ahead : ahead + self.window])
                upcoming = reader.submit(self._read, index)
                if pending is not None:
                    yield pending.result()
                pending = upcoming
            if pending is not None:
                yield pending.result()


def batch_source(dataset: Dataset, device: torch.device | str = "cpu") -> BatchSource:
    """The source for ``dataset``: :class:`MappedBatches` when its images are on disk."""
    if mapped_file(dataset.images) is not None:
        return MappedBatches(dataset, device)
    return TensorBatches(dataset, device)
