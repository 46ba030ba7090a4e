"""Block-wise shuffling of a mapped split: a seeded permutation that reads the file in blocks."""

from __future__ import annotations

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


def test_each_window_reads_a_few_whole_blocks_in_random_order() -> None:
    order = block_order(1000, seed=0, epoch=2, block=10, window=80)
    blocks_seen = []
    for first in range(0, 1000, 80):
        window = order[first : first + 80]
        blocks = set((window // 10).tolist())
        assert len(blocks) == len(window) // 10  # 8 whole blocks
        blocks_seen.append(sorted(blocks))
        # shuffled within the window, not block after block
        assert (window // 10).diff().ne(0).sum() > 20
    assert [b for window in blocks_seen for b in window] != list(range(100))  # blocks shuffled


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
