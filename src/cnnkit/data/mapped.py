"""Image arrays that live in a file on disk (memory-mapped) rather than in memory.

A decoded folder cache (:mod:`cnnkit.data.cache`) is a raw uint8 file of ``(N, C, H, W)``
images. Mapped with :func:`map_images` it behaves as an ordinary array or tensor whose pages
the operating system reads on first touch and may drop again under memory pressure, so a
split larger than memory can be trained on. Slices of it are views (no copy); a subset at
arbitrary rows (a validation split held out of a folder) is written to a file of its own by
:func:`take_rows`, never gathered into memory. Such row files are bounded: together at most
the size of the decoded images (least recently used removed first), so a folder's cache
takes at most twice its decoded size on disk, however many seeds are tried.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

CHUNK_BYTES = 64 << 20  # rows copied per step when writing a subset file
ROWS_SHARE = 1.0  # row files of a folder take at most this times its decoded images' bytes

# data pointer range [start, end) of every live mapping -> the file it maps
_REGIONS: dict[int, tuple[int, Path]] = {}


def map_images(path: str | os.PathLike[str], shape: tuple[int, ...]) -> np.ndarray:
    """The uint8 file ``path`` as an array of ``shape``, read on demand.

    Mapped copy-on-write: the file never changes, and torch (which wants writable memory)
    can share the pages without a copy.
    """
    path = Path(path)
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=np.uint8)
    array = np.memmap(path, dtype=np.uint8, mode="c", shape=shape)
    start = array.ctypes.data
    _REGIONS[start] = (start + array.nbytes, path)
    weakref.finalize(array, _REGIONS.pop, start, None)
    return array


def mapped_file(data: np.ndarray | torch.Tensor) -> Path | None:
    """The file ``data`` is a view of, or None when it lives in memory."""
    region = mapped_region(data)
    return None if region is None else region[0]


def mapped_region(data: np.ndarray | torch.Tensor) -> tuple[Path, int] | None:
    """The file ``data`` is a view of and the byte offset where it starts; None in memory."""
    if isinstance(data, torch.Tensor):
        pointer = data.data_ptr() if data.device.type == "cpu" else 0
    else:
        pointer = data.ctypes.data
    for start, (end, path) in _REGIONS.items():
        if start <= pointer < end:
            return path, pointer - start
    return None


def contiguous_range(index: np.ndarray) -> slice | None:
    """``slice(a, b)`` when ``index`` is exactly ``a, a+1, ..., b-1``; else None."""
    if len(index) == 0:
        return None
    first, last = int(index[0]), int(index[-1])
    if last - first + 1 != len(index):
        return None
    return slice(first, last + 1) if bool((np.diff(index) == 1).all()) else None


def take_rows(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``images[index]`` without holding the result in memory when ``images`` is mapped.

    A run of consecutive rows is a view. Other rows of a mapped array are copied, a chunk at
    a time, into a file beside the mapped one (named by the rows taken, so the same subset is
    written once) and that file is mapped. The row files of a folder take at most
    :data:`ROWS_SHARE` times its decoded images: the least recently used are removed first
    (a process that has one mapped keeps reading it; the disk space is freed when it is
    done). In-memory arrays are indexed as usual.
    """
    index = np.asarray(index, dtype=np.int64)
    source = mapped_file(images)
    if source is None:
        return images[index]
    rows = contiguous_range(index)
    if rows is not None:
        return images[rows]
    shape = (len(index), *images.shape[1:])
    digest = hashlib.sha256(np.ascontiguousarray(index).tobytes()).hexdigest()[:20]
    target = source.with_name(f"{source.stem}-rows-{digest}.u8")
    size = int(np.prod(shape))
    with locked(source.parent):
        if target.is_file() and target.stat().st_size == size:
            os.utime(target)  # recently used
        else:
            _make_room(source.parent, size)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
            per_row = max(1, int(np.prod(images.shape[1:])))
            step = max(1, CHUNK_BYTES // per_row)
            for first in range(0, len(index), step):
                part = index[first : first + step]
                order = np.argsort(part, kind="stable")  # read in file order
                out[first + order] = images[part[order]]
            out.flush()
            del out
            os.replace(tmp, target)
        return map_images(target, shape)


def _make_room(folder: Path, size: int) -> None:
    """Remove least recently used row files of ``folder`` until ``size`` more bytes fit."""
    decoded = sum(p.stat().st_size for p in folder.glob("*.u8") if "-rows-" not in p.name)
    taken = sorted(folder.glob("*-rows-*.u8"), key=lambda p: p.stat().st_mtime_ns)
    used = sum(p.stat().st_size for p in taken)
    while taken and used + size > ROWS_SHARE * decoded:
        oldest = taken.pop(0)
        used -= oldest.stat().st_size
        oldest.unlink()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One process at a time writes or checks the files of ``folder`` (DDP ranks, parallel
    jobs reading the same cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
