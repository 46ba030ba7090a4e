"""CIFAR-10/100 from files in both real formats, and the restricted unpickler."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data import cifar
from cnnkit.data.cifar import (
    CIFAR10,
    CIFAR100,
    CIFAR100_COARSE_SOURCE,
    load_cifar,
    load_cifar_pickle,
    read_binary_batch,
    read_python_batch,
)
from cnnkit.errors import DataError, DataNotFoundError
from tests.data.cifarfiles import py2_pickle, tar_gz, write_cifar10, write_cifar100


def test_the_test_writer_makes_python2_style_pickles() -> None:
    data = py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]})
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert data[:2] == b"\x80\x02" and "SHORT_BINSTRING" in ops and "BINUNICODE" not in ops
    assert b"numpy.core.multiarray\n_reconstruct" in data
    # the standard library reads it the way the CIFAR page says (encoding="bytes")
    assert pickle.loads(data, encoding="bytes")[b"labels"] == [1]


@pytest.mark.parametrize("kind", ["python", "binary"])
def test_cifar10_reads_both_layouts(tmp_path, kind) -> None:
    train_x, train_y, test_x, test_y = write_cifar10(tmp_path, kind=kind)
    parts = load_cifar(CIFAR10, tmp_path)
    train, test = parts["train"], parts["test"]
    assert train.image_shape == (3, 32, 32) and len(train) == 20 and len(test) == 3
    assert np.array_equal(train.images.numpy(), train_x)
    assert np.array_equal(train.labels.numpy(), train_y)
    assert np.array_equal(test.images.numpy(), test_x) and np.array_equal(test.labels, test_y)
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert test.ids[2] == "cifar10:test/2" and "cifar10:train" in train.source


def test_channel_planar_rows_become_rgb_planes(tmp_path) -> None:
    row = np.concatenate([np.full(1024, 200), np.full(1024, 100), np.full(1024, 50)])
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": row.astype(np.uint8)[None], b"labels": [3]}
    (folder / "one").write_bytes(py2_pickle(batch))
    images, labels = read_python_batch(folder / "one", label_key="labels", num_classes=10)
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [3]
    assert (
        (images[0, 0] == 200).all() and (images[0, 1] == 100).all() and (images[0, 2] == 50).all()
    )


@pytest.mark.parametrize("kind", ["python", "binary"])
def test_cifar100_fine_and_coarse_labels(tmp_path, kind) -> None:
    written = write_cifar100(tmp_path, kind=kind)
    fine = load_cifar(CIFAR100, tmp_path)
    coarse = load_cifar(CIFAR100_COARSE_SOURCE, tmp_path)
    for split, (images, fine_labels, coarse_labels) in written.items():
        assert np.array_equal(fine[split].images.numpy(), images)
        assert np.array_equal(fine[split].labels.numpy(), fine_labels)
        assert np.array_equal(coarse[split].labels.numpy(), coarse_labels)
    assert fine["train"].num_classes == 100 and fine["train"].classes[-1] == "worm"
    assert coarse["train"].num_classes == 20 and coarse["train"].classes[0] == "aquatic_mammals"


def _with_archive_checksums(source, archive: Path):
    data = archive.read_bytes()
    layouts = tuple(
        dataclasses.replace(
            layout,
            archive=dataclasses.replace(
                layout.archive,
                md5=hashlib.md5(data).hexdigest(),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
        )
        for layout in source.layouts
    )
    return dataclasses.replace(source, layouts=layouts)


def test_a_downloaded_archive_is_checked_and_extracted(tmp_path) -> None:
    build = tmp_path / "build"
    train_x, *_ = write_cifar10(build, kind="python")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = tar_gz(build / "cifar-10-batches-py", data_dir / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"not the published cifar-10-python\.tar\.gz"):
        load_cifar(CIFAR10, data_dir)
    source = _with_archive_checksums(CIFAR10, archive)
    parts = load_cifar(source, data_dir)
    assert np.array_equal(parts["train"].images.numpy(), train_x)
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_download_fetches_verifies_and_extracts(tmp_path, monkeypatch) -> None:
    build = tmp_path / "build"
    write_cifar10(build, kind="binary")
    archive = tar_gz(build / "cifar-10-batches-bin", tmp_path / "cifar-10-binary.tar.gz")
    source = _with_archive_checksums(CIFAR10, archive)
    served = []

    class Response:
        status, headers = 200, {"Content-Length": str(archive.stat().st_size)}

        def __init__(self, url):
            served.append(url)
            self.data = [archive.read_bytes(), b""]

        def read(self, n):
            return self.data.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("urllib.request.urlopen", lambda req, timeout: Response(req.full_url))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "cache"))
    folder = cifar.download_cifar(source, kind="binary")
    assert served == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    assert folder == tmp_path / "cache" / "cifar10" / "cifar-10-batches-bin"
    assert len(load_cifar(source)["train"]) == 20
    cifar.download_cifar(source, kind="binary")  # already there: nothing fetched
    assert len(served) == 1


def test_not_found_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_cifar(CIFAR10, tmp_path)
    message = str(info.value)
    assert "cnnkit data download cifar10" in message and str(tmp_path) in message
    assert "cifar-10-batches-py" in message


# -- bad and malicious files ----------------------------------------------------------------


class CreatesFile:
    """Unpickling this would create a file: the classic code-running pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _evil_pickles(marker: Path) -> dict[str, bytes]:
    evil = {b"data": CreatesFile(marker), b"labels": [0]}
    inst = b"(S'" + str(marker).encode() + b"'\nS'w'\nibuiltins\nopen\n."  # protocol 0 INST
    return {
        "protocol-2 GLOBAL": pickle.dumps(evil, protocol=2),
        "protocol-4 STACK_GLOBAL": pickle.dumps(evil, protocol=4),
        "protocol-0 INST": inst,
        "numpy object dtype": py2_pickle({b"data": np.array([None, 1], dtype=object)}),
    }


@pytest.mark.parametrize("variant", list(_evil_pickles(Path("x"))))
def test_malicious_pickles_are_refused_before_running(tmp_path, variant) -> None:
    marker = tmp_path / "pwned"
    data = _evil_pickles(marker)[variant]
    with pytest.raises(DataError, match=r"refusing to unpickle|not part of the format"):
        load_cifar_pickle(data)
    assert not marker.exists()
    # sanity: the standard unpickler would have run it
    if variant == "protocol-2 GLOBAL":
        pickle.loads(data)
        assert marker.exists()


def _array_pickle(shape_in_state, raw: bytes) -> bytes:
    """A pickled array whose BUILD state claims ``shape_in_state`` over ``raw`` bytes."""
    good = py2_pickle({b"data": np.zeros(4, np.uint8)})
    return good.replace(
        b"K\x04\x85", b"J" + int(shape_in_state).to_bytes(4, "little") + b"\x85"
    ).replace(b"U\x04\x00\x00\x00\x00", b"U" + bytes([len(raw)]) + raw)


def test_a_pickled_array_claiming_a_huge_shape_fails_without_allocating() -> None:
    data = _array_pickle(2_000_000_000, b"\x00" * 4)
    with pytest.raises(DataError, match="needs 2000000000 bytes but holds 4"):
        load_cifar_pickle(data)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "label 10 at index 1"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 2**70]}, "label 1180591620717"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-(2**70), 1]}, "at index 0"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"expected \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.int32), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", 1]}, "list of ints"),
        ({b"pixels": 1}, "not a CIFAR batch"),
    ],
)
def test_malformed_python_batches(tmp_path, batch, message) -> None:
    path = tmp_path / "batch"
    path.write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=message):
        read_python_batch(path, label_key="labels", num_classes=10)


def test_not_a_pickle_or_not_a_dict(tmp_path) -> None:
    with pytest.raises(DataError, match="not a valid pickle"):
        load_cifar_pickle(b"\x80\x02}q\x00(U\x04da")  # truncated
    with pytest.raises(DataError, match="expected a pickled dict"):
        load_cifar_pickle(py2_pickle([1, 2, 3]))


def test_malformed_binary_batches(tmp_path) -> None:
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(b"\x00" * (3073 * 2 - 1))
    with pytest.raises(DataError, match="not a whole number of 3073-byte records"):
        read_binary_batch(path, label_bytes=1, label_index=0, num_classes=10)
    record = bytearray(3073)
    record[0] = 10
    path.write_bytes(bytes(3073) + bytes(record))
    with pytest.raises(DataError, match=r"label 10 at index 1 is out of range 0\.\.9"):
        read_binary_batch(path, label_bytes=1, label_index=0, num_classes=10)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes"):
        read_binary_batch(path, label_bytes=1, label_index=0, num_classes=10)


def test_meta_file_with_the_wrong_class_count(tmp_path) -> None:
    write_cifar10(tmp_path, kind="binary")
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="names 2 classes; cifar10 has 10"):
        load_cifar(CIFAR10, tmp_path)
