"""The IDX reader: valid files (raw and gzipped) and every malformed case, one test each."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.idx import read_idx, read_idx_pair
from cnnkit.errors import DataError
from tests.conftest import idx_bytes, write_idx

IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
LABELS = np.array([0, 9, 3], dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_valid_files_raw_and_gzipped(tmp_path: Path, gz: bool) -> None:
    path = write_idx(tmp_path / "images", IMAGES, gz=gz)
    array = read_idx(path)
    assert array.dtype == np.uint8 and array.shape == (3, 4, 5)
    np.testing.assert_array_equal(array, IMAGES)


@pytest.mark.parametrize("dtype", ["i1", ">i2", ">i4", ">f4", ">f8"])
def test_reads_every_idx_dtype_in_native_byte_order(tmp_path: Path, dtype: str) -> None:
    values = np.array([[1, -2], [3, 4]], dtype=dtype)
    array = read_idx(write_idx(tmp_path / "x.idx", values))
    assert array.dtype.isnative
    np.testing.assert_array_equal(array, values)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "images.raw"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES)))
    np.testing.assert_array_equal(read_idx(path), IMAGES)


def _expect(path: Path, *fragments: str) -> None:
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "absent", "no such file")


def test_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    _expect(path, "not an IDX file", "12340801")


def test_unknown_dtype_code(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    _expect(path, "unknown IDX dtype code 0x07")


@pytest.mark.parametrize("rank", [0, 9, 255])
def test_rank_out_of_range(tmp_path: Path, rank: int) -> None:
    path = tmp_path / "bad"
    path.write_bytes(bytes([0, 0, 8, rank]) + b"\x00" * 8)
    _expect(path, f"rank {rank} is out of range")


def test_file_shorter_than_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00")
    _expect(path, "magic", "2 of 4 bytes")


def test_header_cut_inside_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 10))
    _expect(path, "dimension header", "4 of 12 bytes")


def test_payload_shorter_than_dimensions_say(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(idx_bytes(IMAGES)[:-7])
    _expect(path, "header declares shape (3, 4, 5)", "60 payload bytes", "53 payload bytes")


def test_payload_longer_than_dimensions_say(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(idx_bytes(IMAGES) + b"\x00")
    _expect(path, "60 payload bytes", "61 payload bytes")


def test_huge_declared_size_fails_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x0e\x03" + struct.pack(">3I", 2**31, 2**31, 2**31))
    _expect(path, "header declares shape")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims", [(0, 2**32 - 1, 2**32 - 1), (0,), (5, 0, 28)])
def test_zero_sized_dimension_is_refused_before_allocating(tmp_path: Path, dims, gz) -> None:
    # (0, 2^32-1, 2^32-1) has an empty payload, so the size checks alone let it through
    header = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(header) if gz else header)
    _expect(path, "zero-sized dimension")


def test_gzip_payload_disagrees_with_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES)[:-5]))
    _expect(path, "header declares shape", "55 payload bytes")


def test_gzip_huge_declared_size_fails_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 2**16, 2**16)
    path.write_bytes(gzip.compress(header))
    _expect(path, "header declares shape (60000, 65536, 65536)")


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(IMAGES)))
    data[12:20] = b"\xff" * 8  # scribble over the deflate stream
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    _expect(path, "corrupt gzip stream")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:-12])
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_pair_count_mismatch(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "images", IMAGES)
    labels = write_idx(tmp_path / "labels", LABELS[:2])
    with pytest.raises(DataError, match=r"holds 3 images but .* holds 2 labels"):
        read_idx_pair(images, labels, num_classes=10)


def test_pair_label_out_of_range(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "images", IMAGES)
    labels = write_idx(tmp_path / "labels", np.array([0, 10, 3], dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels: label 10 at index 1 is out of range 0..9"):
        read_idx_pair(images, labels, num_classes=10)


def test_pair_images_of_wrong_rank(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "images", IMAGES.reshape(3, 20))
    labels = write_idx(tmp_path / "labels", LABELS)
    with pytest.raises(DataError, match=r"images: expected unsigned-byte images of rank 3"):
        read_idx_pair(images, labels, num_classes=10)


def test_pair_labels_of_wrong_dtype(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "images", IMAGES)
    labels = write_idx(tmp_path / "labels", LABELS.astype(">i4"))
    with pytest.raises(DataError, match=r"labels: expected unsigned-byte labels of rank 1"):
        read_idx_pair(images, labels, num_classes=10)


def test_pair_returns_int64_labels(tmp_path: Path) -> None:
    images, labels = read_idx_pair(
        write_idx(tmp_path / "i", IMAGES), write_idx(tmp_path / "l", LABELS), num_classes=10
    )
    assert labels.dtype == np.int64 and labels.tolist() == [0, 9, 3]
    assert images.shape == (3, 4, 5)
