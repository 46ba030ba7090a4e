"""Tiny CIFAR files in the real formats, written the way the originals were.

The python batches on the CIFAR website were pickled by Python 2 (protocol 2): every
string, keys included, is a Python-2 ``str`` (opcode ``BINSTRING``, read back as bytes),
and the array comes from ``numpy.core.multiarray._reconstruct``. :class:`Py2Pickler`
writes exactly that with Python 3.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from cnnkit.data.cifar import CIFAR10_CLASSES, CIFAR100_COARSE, CIFAR100_FINE

_RECONSTRUCT = np.empty(0).__reduce__()[0]


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us choose opcodes
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(root: Path, *, kind: str, per_batch: int = 4, test: int = 3, seed: int = 0):
    """Write a CIFAR-10 layout under ``root``; returns (train images, labels, test ...)."""
    rng = np.random.default_rng(seed)
    batches = [random_images(per_batch, seed + i) for i in range(6)]
    labels = [rng.integers(0, 10, size=len(b)) for b in batches]
    batches[5], labels[5] = batches[5][:test], labels[5][:test]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if kind == "python":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name, images, lab in zip(names, batches, labels, strict=True):
            batch = {
                b"batch_label": f"{name} of 5".encode(),
                b"labels": [int(v) for v in lab],
                b"data": images.reshape(len(images), -1),
                b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
            }
            (folder / name).write_bytes(py2_pickle(batch))
        meta = {b"num_cases_per_batch": per_batch, b"label_names": list(CIFAR10_CLASSES)}
        (folder / "batches.meta").write_bytes(py2_pickle(meta))
    else:
        folder = root / "cifar-10-batches-bin"
        folder.mkdir(parents=True)
        for name, images, lab in zip(names, batches, labels, strict=True):
            records = np.concatenate(
                [lab.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1
            )
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return (
        np.concatenate(batches[:5]),
        np.concatenate(labels[:5]),
        batches[5],
        labels[5],
    )


def write_cifar100(root: Path, *, kind: str, train: int = 6, test: int = 3, seed: int = 0):
    """Write a CIFAR-100 layout; returns {split: (images, fine, coarse)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", train), ("test", test)):
        images = random_images(n, seed + len(split))
        fine = rng.integers(0, 100, size=n)
        coarse = rng.integers(0, 20, size=n)
        out[split] = (images, fine, coarse)
    if kind == "python":
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for split, (images, fine, coarse) in out.items():
            batch = {
                b"filenames": [f"x{i}.png".encode() for i in range(len(images))],
                b"batch_label": f"{split} batch".encode(),
                b"fine_labels": [int(v) for v in fine],
                b"coarse_labels": [int(v) for v in coarse],
                b"data": images.reshape(len(images), -1),
            }
            (folder / split).write_bytes(py2_pickle(batch))
        meta = {
            b"fine_label_names": list(CIFAR100_FINE),
            b"coarse_label_names": list(CIFAR100_COARSE),
        }
        (folder / "meta").write_bytes(py2_pickle(meta))
    else:
        folder = root / "cifar-100-binary"
        folder.mkdir(parents=True)
        for split, (images, fine, coarse) in out.items():
            records = np.concatenate(
                [
                    coarse.astype(np.uint8)[:, None],
                    fine.astype(np.uint8)[:, None],
                    images.reshape(len(images), -1),
                ],
                axis=1,
            )
            (folder / f"{split}.bin").write_bytes(records.tobytes())
        (folder / "fine_label_names.txt").write_text("\n".join(CIFAR100_FINE) + "\n")
        (folder / "coarse_label_names.txt").write_text("\n".join(CIFAR100_COARSE) + "\n")
    return out


def tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
