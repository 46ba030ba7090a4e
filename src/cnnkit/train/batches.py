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
  (:mod:`cnnkit.data.cache`): each batch is gathered from the memory-mapped file (rows in
  file order, then put back in the epoch's order) while the previous one trains, and only
  the batch is moved to the device — the same batches as :class:`TensorBatches`, bit for bit;
- streaming sources (for example a folder of images read lazily) implement the same
  :class:`BatchSource` protocol and yield batches as they read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.mapped import mapped_file

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_generator(seed: int, epoch: int, *, stream: int = 0) -> torch.Generator:
    """A CPU random generator determined by ``(seed, epoch, stream)`` alone.

    ``stream`` separates independent uses within one epoch (0: shuffling, 1: augmentation).
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


def epoch_order(num_samples: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The seeded permutation of ``range(num_samples)`` used for ``epoch``."""
    return torch.randperm(num_samples, generator=epoch_generator(seed, epoch))


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

    def _indices(
        self, *, epoch: int, batch_size: int, seed: int, start: int, shard: int, shards: int
    ) -> Iterator[torch.Tensor]:
        """Each batch's sample indices, from batch ``start`` on, for shard ``shard``."""
        usable = self.num_samples - self.num_samples % shards
        if self.shuffle:
            order = epoch_order(self.num_samples, seed=seed, epoch=epoch)
        else:
            order = torch.arange(self.num_samples)
        order = order[:usable].to(self.labels.device)
        for first in range(start * batch_size, usable, batch_size):
            yield order[first : first + batch_size][shard::shards]


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
        for index in self._indices(
            epoch=epoch, batch_size=batch_size, seed=seed, start=start, shard=shard, shards=shards
        ):
            yield self.images[index], self.labels[index]


class MappedBatches(_IndexedBatches):
    """A :class:`BatchSource` over a :class:`Dataset` whose images are a memory-mapped file.

    The split stays on disk (the operating system caches what memory allows); each batch is
    read with its rows sorted (locality), put back in the epoch's order, and moved to
    ``device``. The next batch is read on a thread while the current one trains.
    """

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.images = dataset.images
        self.labels = dataset.labels

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
        with ThreadPoolExecutor(1) as reader:
            pending: Future[Batch] | None = None
            for index in self._indices(
                epoch=epoch,
                batch_size=batch_size,
                seed=seed,
                start=start,
                shard=shard,
                shards=shards,
            ):
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
