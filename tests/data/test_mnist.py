"""Finding, reading and downloading MNIST."""

from __future__ import annotations

import gzip
import io
import typing
from pathlib import Path

import pytest

from cnnkit.data import mnist
from cnnkit.data.download import download, expect_sha256
from cnnkit.data.mnist import MNIST, find_files, load_idx_source
from cnnkit.data.sources import load_dataset
from cnnkit.errors import ConfigError, DataNotFoundError, DownloadError


def test_packaged_mnist_is_the_real_thing(mnist_parts) -> None:
    train, test = mnist_parts["train"], mnist_parts["test"]
    assert (len(train), len(test)) == (60000, 10000)
    assert train.image_shape == (1, 28, 28)
    assert train.class_counts()[:3] == [5923, 6742, 5958]
    assert train.ids[7] == "mnist:train/7"


def test_textbook_split_is_55000_5000_10000(tiny_mnist_dir: Path, monkeypatch) -> None:
    splits = load_dataset("mnist", val_size=300, data_dir=tiny_mnist_dir, seed=1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (900, 300, 300)
    assert mnist.MNIST.val_size == 5000


def test_explicit_data_dir_is_the_only_place_searched(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        find_files(MNIST, tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message
    assert "--data-dir" in message


def test_user_cache_comes_before_the_packaged_copy(tiny_mnist_dir, tmp_path, monkeypatch) -> None:
    (tmp_path / "mnist").symlink_to(tiny_mnist_dir)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    parts = load_idx_source(MNIST)
    assert len(parts["train"]) == 1200


def test_unknown_source_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'mnist'"):
        load_dataset("mnsit")


class FakeResponse(io.BytesIO):
    headers: typing.ClassVar[dict[str, str]] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _serve(monkeypatch, payloads: dict[str, bytes]) -> list[str]:
    asked: list[str] = []

    def urlopen(request, timeout):
        asked.append(request.full_url)
        if request.full_url not in payloads:
            raise OSError("connection refused")
        return FakeResponse(payloads[request.full_url])

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    return asked


def test_download_refuses_plain_http(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="non-HTTPS"):
        download(["http://example.com/x"], tmp_path / "x", verify=expect_sha256("0"))


def test_download_checks_sha256_and_leaves_nothing_on_mismatch(tmp_path, monkeypatch) -> None:
    _serve(monkeypatch, {"https://a/x": b"evil", "https://b/x": b"good"})
    import hashlib

    good = hashlib.sha256(b"good").hexdigest()
    target = download(["https://a/x", "https://b/x"], tmp_path / "x", verify=expect_sha256(good))
    assert target.read_bytes() == b"good"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(["https://a/x"], tmp_path / "y", verify=expect_sha256(good))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def _real_payloads() -> dict[str, bytes]:
    real = Path(mnist.__file__).parent / "files" / "mnist"
    return {
        f"https://mirror/{spec.name}.gz": (real / f"{spec.name}.gz").read_bytes()
        for spec in MNIST.files.values()
    }


def test_mnist_download_verifies_uncompressed_content(tmp_path, monkeypatch) -> None:
    payloads = _real_payloads()
    # a mirror serving a recompressed but otherwise identical file is accepted
    name = MNIST.files["test-labels"].name
    payloads[f"https://mirror/{name}.gz"] = gzip.compress(
        gzip.decompress(payloads[f"https://mirror/{name}.gz"]), compresslevel=1
    )
    asked = _serve(monkeypatch, payloads)
    folder = mnist.download_idx_source(MNIST, tmp_path / "dl", mirrors=["https://mirror/"])
    assert len(asked) == 4 and MNIST.locate(folder) is not None
    # present and correct files are not fetched again
    mnist.download_idx_source(MNIST, tmp_path / "dl", mirrors=["https://mirror/"])
    assert len(asked) == 4


def test_mnist_download_rejects_tampered_content(tiny_mnist_dir, tmp_path, monkeypatch) -> None:
    payloads = _real_payloads()
    name = MNIST.files["train-labels"].name
    payloads[f"https://mirror/{name}.gz"] = (tiny_mnist_dir / f"{name}.gz").read_bytes()
    _serve(monkeypatch, payloads)
    with pytest.raises(DownloadError, match=f"{name}: checksum mismatch"):
        mnist.download_idx_source(MNIST, tmp_path, mirrors=["https://mirror/"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_fashion_mnist_reads_the_same_format_with_its_class_names(tiny_mnist_dir) -> None:
    splits = load_dataset("fashion-mnist", data_dir=tiny_mnist_dir, val_size=0)
    assert splits.val is None and len(splits.train) == 1200
    assert splits.train.classes[0] == "T-shirt/top" and splits.train.classes[9] == "Ankle boot"
    assert splits.test.ids[0] == "fashion-mnist:test/0"
