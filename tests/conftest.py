"""Shared fixtures: tiny data files written in the real formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``, written by hand from the format description."""
    big = array.astype(array.dtype.newbyteorder(">"))
    code = IDX_CODES[big.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    data = idx_bytes(array)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def mnist_parts():
    """The real MNIST train and test parts (read once per session)."""
    from cnnkit.data.mnist import MNIST, load_idx_source

    return load_idx_source(MNIST)


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory, mnist_parts) -> Path:
    """A folder of the four MNIST files holding a real 1,200 / 300 sample of MNIST."""
    folder = tmp_path_factory.mktemp("tiny-mnist")
    for split, count, names in (
        ("train", 1200, ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")),
        ("test", 300, ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    ):
        part = mnist_parts[split]
        write_idx(folder / names[0], part.images[:count, 0].numpy())
        write_idx(folder / names[1], part.labels[:count].numpy().astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def trained(tiny_mnist_dir, tmp_path_factory):
    """LeNet trained one epoch on 1,000 real MNIST digits, filters recorded at epochs 0 and 1.

    Made once per session: evaluation, prediction, export and the web demo share it.
    """
    from cnnkit.train.job import TrainConfig, run_training

    config = TrainConfig(
        data_dir=str(tiny_mnist_dir),
        val_size=200,
        epochs=1,
        runs_dir=str(tmp_path_factory.mktemp("runs")),
        name="tiny",
        device="cpu",
        record_filters=[0, 1],
    )
    return run_training(config).run


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory) -> Path:
    """A train/ test/ folder of pictures with every problem the health check finds."""
    from tests.data.imagefiles import planted_folder

    return planted_folder(tmp_path_factory.mktemp("planted") / "pets")


@pytest.fixture
def single_thread():
    """Run torch on one thread: tiny models gain nothing from more, and on a loaded machine
    OpenMP's waiting between threads makes each small op up to 50x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
