"""Block-wise shuffling of a mapped split: a seeded permutation that reads the file in blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.mapped import map_images
from cnnkit.train import batches
from cnnkit.train.batches import MappedBatches, block_order, epoch_order

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


def test_block_order_is_a_seeded_permutation_that_changes_every_epoch() -> None:
    order = block_order(1003, seed=4, epoch=0, block=10, window=80)
    assert sorted(order.tolist()) == list(range(1003))  # the short last block included
    assert torch.equal(order, block_order(1003, seed=4, epoch=0, block=10, window=80))
    assert not torch.equal(order, block_order(1003, seed=4, epoch=1, block=10, window=80))
    assert not torch.equal(order, block_order(1003, seed=5, epoch=0, block=10, window=80))


def test_each_window_reads_whole_blocks_one_from_each_stretch_of_the_file() -> None:
    block, places, n = 10, 8, 1000  # 100 blocks: 13 windows of 8 (or fewer) blocks
    order = block_order(n, seed=0, epoch=2, block=block, window=block * places)
    blocks = (order // block).tolist()
    # the order is whole blocks dealt into windows: a block's rows are all in one window
    windows, current, done = [], set(), set()
    for position, b in enumerate(blocks):
        if b in done:
            raise AssertionError(f"block {b} comes back at {position}")
        current.add(b)
        rows_read = sum(1 for x in blocks[: position + 1] if x in current)
        rows_in = sum(min(block, n - x * block) for x in current)
        if rows_read == rows_in:  # every block of this window is fully read: it ends here
            windows.append(sorted(current))
            done |= current
            current = set()
    assert not current and sorted(done) == list(range(100))
    assert all(len(w) <= places for w in windows) and len(windows) == 13
    # one block from each stretch of 13 consecutive blocks: windows draw from the whole file
    for w in windows:
        strata = [b // 13 for b in w]
        assert len(set(strata)) == len(strata)
    assert windows != sorted(windows)  # windows come in a random order
    # and the rows of a window are mixed, not block after block
    assert sum(1 for a, b in itertools.pairwise(blocks) if a != b) > 500


def test_every_window_holds_the_classes_of_a_class_sorted_file_evenly() -> None:
    """A folder stores one class after another: each window still sees every class about as
    often as the whole does (within a block of the expected count)."""
    labels = torch.arange(10).repeat_interleave(1000)  # 10 classes x 1,000, sorted
    order = block_order(10_000, seed=1, epoch=0, block=50, window=50 * 40)
    for first in range(0, 10_000, 2000):
        counts = torch.bincount(labels[order[first : first + 2000]], minlength=10)
        assert (counts - 200).abs().max() <= 50, counts


def test_a_split_that_fits_one_window_gets_the_in_memory_order() -> None:
    assert torch.equal(
        block_order(500, seed=3, epoch=1, block=10, window=500), epoch_order(500, seed=3, epoch=1)
    )


@pytest.fixture
def mapped(tmp_path, monkeypatch) -> Dataset:
    """1,000 mapped 1x4x4 images (128 rows a block, 512 a window) numbered by their first bytes."""
    monkeypatch.setattr(batches, "BLOCK_BYTES", 16 * 128)
    monkeypatch.setattr(batches, "WINDOW_BYTES", 16 * 512)
    pixels = np.zeros((1000, 1, 4, 4), dtype=np.uint8)
    pixels[:, 0, 0, 0], pixels[:, 0, 0, 1] = np.arange(1000) % 256, np.arange(1000) // 256
    pixels.tofile(tmp_path / "images.u8")
    images = torch.from_numpy(map_images(tmp_path / "images.u8", (1000, 1, 4, 4)))
    return Dataset(images, torch.arange(1000) % 10, tuple("0123456789"))


def numbers(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()


@pytest.mark.parametrize("shards", [1, 2])
def test_mapped_batches_follow_the_block_order_and_resume_exactly(mapped, shards) -> None:
    source = MappedBatches(mapped)
    assert (source.block, source.window) == (128, 512)
    for epoch in range(2):
        order = block_order(1000, seed=7, epoch=epoch, block=128, window=512).tolist()
        parts = []
        for shard in range(shards):
            args = {"epoch": epoch, "batch_size": 100, "seed": 7, "shard": shard, "shards": shards}
            got = list(source.batches(**args))
            parts.append(got)
            for (x, y), step in zip(got, range(10), strict=True):
                assert numbers(x) == order[step * 100 : (step + 1) * 100][shard::shards]
                assert torch.equal(y, torch.tensor(numbers(x)) % 10)
            resumed = list(source.batches(**args, start=6))  # batch 6 begins mid-window
            assert len(resumed) == 4
            for (x, y), (u, v) in zip(resumed, got[6:], strict=True):
                assert torch.equal(x, u) and torch.equal(y, v)
        every = sorted(n for part in parts for x, _ in part for n in numbers(x))
        assert every == list(range(1000))


def test_a_mapped_split_without_shuffling_keeps_file_order(mapped) -> None:
    source = MappedBatches(mapped)
    source.shuffle = False
    got = [n for x, _ in source.batches(epoch=0, batch_size=300, seed=0) for n in numbers(x)]
    assert got == list(range(1000))
