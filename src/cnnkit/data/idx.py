"""Reader for the IDX format of MNIST and Fashion-MNIST (gzipped or raw).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <rank>``, then ``rank``
big-endian uint32 dimensions, then the payload in C order and big-endian byte order.
Everything is validated before the payload is allocated; every failure is a
:class:`~cnnkit.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnkit.errors import DataError

# IDX dtype code -> (name, big-endian numpy dtype)
IDX_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype(">u1")),
    0x09: ("signed byte", np.dtype(">i1")),
    0x0B: ("short", np.dtype(">i2")),
    0x0C: ("int", np.dtype(">i4")),
    0x0D: ("float", np.dtype(">f4")),
    0x0E: ("double", np.dtype(">f8")),
}
MAX_RANK = 8  # MNIST uses 1 and 3; anything above this is not an IDX file we can trust
GZIP_MAGIC = b"\x1f\x8b"
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this: bounds what gzip may hold


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as raw:
        return raw.read(2) == GZIP_MAGIC


def _gzip_declared_size(path: Path) -> int:
    """The uncompressed size recorded in a gzip trailer (modulo 2**32)."""
    with path.open("rb") as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell() < 18:  # 10-byte header + 8-byte trailer is the smallest gzip file
            raise DataError(f"{path}: gzip file is truncated ({raw.tell()} bytes)")
        raw.seek(-4, os.SEEK_END)
        return int(struct.unpack("<I", raw.read(4))[0])


def _read_exact(stream: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DataError(f"{path}: file ends inside the {what} ({len(data)} of {n} bytes)")
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file into a native-endian numpy array.

    Args:
        path: an ``.idx``/``-ubyte`` file, gzipped or not (decided by content, not name).

    Returns:
        The array with the file's shape and dtype (``uint8`` for MNIST).

    Raises:
        DataError: missing file, bad magic, unknown dtype code, bad rank, or a payload
            whose size does not equal the product of the dimensions times the item size.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        gzipped = _is_gzip(path)
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as stream:
            return _parse(stream, path, gzipped)  # type: ignore[arg-type]
    except DataError:
        raise
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({exc}); download the file again") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from exc


def _parse(stream: BinaryIO, path: Path, gzipped: bool) -> np.ndarray:
    magic = _read_exact(stream, 4, path, "4-byte magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{path}: not an IDX file (magic {magic.hex()} does not start with 0000); "
            "expected e.g. 00000803 for images or 00000801 for labels"
        )
    code, rank = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: {known})")
    if not 1 <= rank <= MAX_RANK:
        raise DataError(f"{path}: IDX rank {rank} is out of range 1..{MAX_RANK}")
    dims = struct.unpack(f">{rank}I", _read_exact(stream, 4 * rank, path, "dimension header"))
    if 0 in dims:  # an empty array would still be shaped by the other (unchecked) dimensions
        raise DataError(
            f"{path}: header declares shape {tuple(dims)}, with a zero-sized dimension; "
            "an IDX file of MNIST images or labels holds at least one item"
        )
    dtype = IDX_DTYPES[code][1]
    header_size = 4 + 4 * rank
    payload = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if gzipped:
        declared = _gzip_declared_size(path)
        compressed = path.stat().st_size
        if payload > DEFLATE_MAX_RATIO * compressed or declared != (header_size + payload) % 2**32:
            raise DataError(
                f"{path}: header declares shape {tuple(dims)} of {IDX_DTYPES[code][0]} "
                f"({payload} payload bytes) but the gzip stream holds "
                f"{declared - header_size} payload bytes"
            )
    else:
        actual = path.stat().st_size - header_size
        if actual != payload:
            raise DataError(
                f"{path}: header declares shape {tuple(dims)} of {IDX_DTYPES[code][0]} "
                f"({payload} payload bytes) but the file holds {actual} payload bytes"
            )
    array = np.empty(dims, dtype=dtype)
    view = array.reshape(-1).view(np.uint8).data
    got = 0
    while got < payload:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise DataError(
                f"{path}: file ends inside the payload ({got} of {payload} bytes); "
                "the file is truncated, download it again"
            )
        got += n
    if stream.read(1):
        raise DataError(f"{path}: extra bytes after the {payload}-byte payload")
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file (N, H, W) and its labels file (N,) and check they belong together.

    Returns:
        ``(images uint8 (N, H, W), labels int64 (N,))``.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected unsigned-byte images of rank 3 (N, H, W), "
            f"got rank {images.ndim} of {images.dtype}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: expected unsigned-byte labels of rank 1 (N,), "
            f"got rank {labels.ndim} of {labels.dtype}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the two files do not belong together"
        )
    if len(labels) and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{labels_path}: label {int(labels[bad])} at index {bad} is out of range "
            f"0..{num_classes - 1}"
        )
    return images, labels.astype(np.int64)
