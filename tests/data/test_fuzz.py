"""Random and mutated bytes fed to every parser of foreign files.

The only acceptable outcomes are a result (arrays, extracted files) or a cnnkit error —
never another exception, a hang, or a large allocation. Each parser gets pure random
bytes and mutations (byte changes, truncation, insertion, splicing) of a small valid
file in its real format. The default run feeds a few hundred inputs per parser; the
``slow`` sweep ten times more.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import resource
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit.data.archive import extract_archive
from cnnkit.data.cifar import read_binary_batch, read_python_batch
from cnnkit.data.idx import read_idx
from cnnkit.data.images import load_image
from cnnkit.errors import CnnkitError
from tests.conftest import idx_bytes
from tests.data import imagefiles as f
from tests.data.cifarfiles import py2_pickle

WORK = Path(tempfile.mkdtemp(prefix="cnnkit-fuzz-"))
MAX_PIXELS = 1 << 20  # images: the decompression-bomb limit used here (4 MB of RGB at most)
FAST = 200  # inputs per parser and kind (random, mutated) in the default run
SLOW = 5000  # ... in the slow sweep


def _file(data: bytes, name: str) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def _idx(data: bytes) -> object:
    return read_idx(_file(data, "x-idx3-ubyte"))


def _cifar_python(data: bytes) -> object:
    return read_python_batch(_file(data, "data_batch_1"), label_key="labels", num_classes=10)


def _cifar_binary(data: bytes) -> object:
    return read_binary_batch(
        _file(data, "data_batch_1.bin"), label_bytes=1, label_index=0, num_classes=10
    )


def _image(data: bytes) -> object:
    return load_image(data, max_pixels=MAX_PIXELS, size=(16, 16))


def _archive(data: bytes) -> object:
    dest = WORK / "extracted"
    shutil.rmtree(dest, ignore_errors=True)
    return extract_archive(_file(data, "archive"), dest, max_bytes=1 << 20, max_members=100)


def _tar(mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, payload in (("d/a.txt", b"alpha" * 20), ("d/b.bin", bytes(range(200)))):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/a.txt", b"alpha" * 20)
        zf.writestr("d/b.bin", bytes(range(200)))
    return buffer.getvalue()


def _seeds() -> dict[str, tuple[Callable[[bytes], object], list[bytes]]]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    labels = np.array([1, 5, 9], np.uint8)
    picture = f.rgb_array(1, 12, 12)
    gif = f.encode(Image.fromarray(picture).convert("P"), "GIF")
    return {
        "idx": (
            _idx,
            [
                idx_bytes(rng.integers(0, 256, size=(3, 4, 4), dtype=np.uint8)),
                gzip.compress(idx_bytes(labels), mtime=0),
            ],
        ),
        "cifar-python": (
            _cifar_python,
            [py2_pickle({b"batch_label": b"b", b"labels": labels.tolist(), b"data": images})],
        ),
        "cifar-binary": (_cifar_binary, [np.concatenate([labels[:, None], images], 1).tobytes()]),
        "image": (
            _image,
            [
                f.png(picture),
                f.jpeg(picture),
                gif,
                f.encode(Image.fromarray(picture), "BMP"),
                f.encode(Image.fromarray(picture), "TIFF"),
                f.png16(picture[..., 0].astype(np.uint16) * 257),
                f.exif_rotated_jpeg(picture),
            ],
        ),
        "archive": (_archive, [_tar("w:gz"), _tar("w"), _zip()]),
    }


@pytest.fixture(scope="module", autouse=True)
def _clean_work_folder():
    yield
    shutil.rmtree(WORK, ignore_errors=True)


# Pillow warns (and carries on) about corrupt EXIF blocks in mutated images: expected here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

SEEDS = _seeds()
PARSERS = sorted(SEEDS)
COUNTS: dict[str, int] = dict.fromkeys(PARSERS, 0)


# 32-bit values that make sizes and counts huge, zero or negative when spliced into a header
EXTREME_INTS = [b"\xff\xff\xff\x7f", b"\0\0\0\0", b"\x80\0\0\0", b"\x7f\xff\xff\xff"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["set", "truncate", "insert", "splice", "zero-run"]))
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[where] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[where:]
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "splice":
            data[where : where + 4] = draw(st.sampled_from(EXTREME_INTS))
        elif kind == "zero-run":
            data[where : where + 64] = bytes(min(64, len(data) - where))
    return bytes(data)


def _feed(parser: str, data: bytes) -> None:
    function = SEEDS[parser][0]
    COUNTS[parser] += 1
    with contextlib.suppress(CnnkitError):  # the only acceptable failure
        function(data)


def _settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=timedelta(seconds=2),  # per input, on a slow shared CI machine
        derandomize=count == FAST,  # the default run is the same every time
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(parser: str, count: int) -> None:
    before = _max_rss_mb()
    fed = COUNTS[parser]

    @_settings(count)
    @given(data=st.binary(max_size=2048))
    def random_bytes(data: bytes) -> None:
        _feed(parser, data)

    @_settings(count)
    @given(data=mutated(SEEDS[parser][1]))
    def mutated_bytes(data: bytes) -> None:
        _feed(parser, data)

    random_bytes()
    mutated_bytes()
    fed = COUNTS[parser] - fed
    grown = _max_rss_mb() - before
    print(f"{parser}: {fed} inputs, peak memory +{grown:.0f} MB")  # shown with pytest -s
    assert fed >= count, f"{parser}: only {fed} inputs were tried"
    assert grown < 200, f"{parser}: peak memory grew by {grown:.0f} MB"


@pytest.mark.parametrize("parser", PARSERS)
def test_seeds_parse(parser: str) -> None:
    function, seeds = SEEDS[parser]
    for data in seeds:
        assert function(data) is not None


@pytest.mark.parametrize("parser", PARSERS)
def test_random_and_mutated_bytes_give_a_result_or_a_cnnkit_error(parser: str) -> None:
    _run(parser, FAST)


@pytest.mark.slow
@pytest.mark.parametrize("parser", PARSERS)
def test_random_and_mutated_bytes_sweep(parser: str) -> None:
    _run(parser, SLOW)
