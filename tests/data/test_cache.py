"""The decoded folder cache: built once, reused, rebuilt on change; batches as from memory."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.data import cache
from cnnkit.data.folder import FolderOptions, read_folder
from cnnkit.data.mapped import mapped_file
from cnnkit.data.sources import load_dataset
from cnnkit.data.split import split_record, write_split_file
from cnnkit.errors import DataError
from cnnkit.train.batches import MappedBatches, TensorBatches, batch_source
from tests.data import imagefiles as f

CACHED = FolderOptions(cache=True)
IN_MEMORY = FolderOptions(cache=False)


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cache folder (``$CNNKIT_DATA/folder-cache``)."""
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "home"))
    return tmp_path / "home" / "folder-cache"


@pytest.fixture
def photos(tmp_path) -> Path:
    """Three classes of 30 pictures (most 16x16, a few 20x12 to be fitted) and a truncated
    JPEG in the middle of class b: enough files for the multi-process build."""
    root = tmp_path / "photos"
    for k, name in enumerate("abc"):
        for i in range(30):
            pixels = f.rgb_array(100 * k + i, 20, 12) if i % 7 == 0 else f.rgb_array(100 * k + i)
            f.write(root / name / f"{i:02d}.png", f.png(pixels))
    f.write(root / "b" / "15x.jpg", f.truncated(f.jpeg(f.rgb_array(5, 64, 64))))
    return root


def cache_files(home: Path) -> list[Path]:
    return sorted(home.glob("*/images.u8"))


def test_cached_folder_equals_the_in_memory_read_and_reports_the_same(photos, cache_home) -> None:
    memory = read_folder(photos, IN_MEMORY)
    cached = read_folder(photos, CACHED)
    [data] = cache_files(cache_home)
    train = cached.parts["train"]
    assert mapped_file(train.images) is not None  # on disk, not in memory
    assert mapped_file(memory.parts["train"].images) is None
    assert torch.equal(train.images, memory.parts["train"].images)
    assert (
        train.ids == memory.parts["train"].ids
        and train.fingerprint() == memory.parts["train"].fingerprint()
    )
    # the truncated JPEG is found by decoding (in a worker process) and reported as today
    assert [p for p, _ in cached.report.unreadable] == ["b/15x.jpg"]
    assert dataclasses.asdict(cached.report) == dataclasses.asdict(memory.report)
    assert len(cached.report.fitted) == 15
    header = json.loads(data.with_name("header.json").read_text())
    assert header["shape"] == [91, 3, 16, 16] and list(header["errors"]) == ["46"]


def test_planted_problems_are_reported_the_same_from_cache(planted_dir, monkeypatch) -> None:
    monkeypatch.setattr(cache, "MIN_PARALLEL", 1)  # a small folder, decoded on processes too
    options = FolderOptions(allow_empty=True)
    memory = read_folder(planted_dir, options)
    for _ in range(2):  # built, then reused: the report comes back from the header
        cached = read_folder(planted_dir, dataclasses.replace(options, cache=True))
        assert dataclasses.asdict(cached.report) == dataclasses.asdict(memory.report)
        for name, part in memory.parts.items():
            assert torch.equal(cached.parts[name].images, part.images)


def test_cache_is_reused_and_rebuilt_only_when_the_folder_changes(photos, cache_home) -> None:
    read_folder(photos, CACHED)
    [data] = cache_files(cache_home)
    built = data.stat().st_mtime_ns
    read_folder(photos, CACHED)
    assert data.stat().st_mtime_ns == built  # reused
    # a changed file (new content, new size and time) rebuilds it, and the new pixels are read
    new = f.rgb_array(999)
    f.write(photos / "a" / "00.png", f.png(new))
    changed = read_folder(photos, CACHED).parts["train"]
    assert data.stat().st_mtime_ns != built
    assert np.array_equal(changed.images[0].numpy(), new.transpose(2, 0, 1))
    rebuilt = data.stat().st_mtime_ns
    # a removed file does too
    (photos / "c" / "29.png").unlink()
    assert len(read_folder(photos, CACHED).parts["train"]) == 89
    assert data.stat().st_mtime_ns != rebuilt


def test_other_decode_settings_get_their_own_cache(photos, cache_home) -> None:
    small = read_folder(photos, FolderOptions(cache=True, size=(8, 8), channels=1))
    read_folder(photos, CACHED)
    assert small.parts["train"].image_shape == (1, 8, 8)
    assert len(cache_files(cache_home)) == 2
    expected = read_folder(photos, FolderOptions(cache=False, size=(8, 8), channels=1))
    assert torch.equal(small.parts["train"].images, expected.parts["train"].images)


def test_fingerprint_covers_files_classes_and_settings(photos) -> None:
    files = [("train", 0, p) for p in sorted((photos / "a").iterdir())]
    settings = {"size": [16, 16], "channels": 3, "fit": "pad"}
    base = cache.fingerprint(files, settings)
    assert cache.fingerprint(files, settings) == base
    assert cache.fingerprint(files, {**settings, "fit": "crop"}) != base
    assert cache.fingerprint([("train", 1, files[0][2]), *files[1:]], settings) != base
    assert cache.fingerprint(files[1:], settings) != base
    os.utime(files[0][2], ns=(1, 1))
    assert cache.fingerprint(files, settings) != base


def test_a_torn_cache_is_built_again(photos, cache_home) -> None:
    expected = read_folder(photos, IN_MEMORY).parts["train"].images
    read_folder(photos, CACHED)
    [data] = cache_files(cache_home)
    data.with_name("header.json").write_text("{")  # as if killed while writing the header
    assert torch.equal(read_folder(photos, CACHED).parts["train"].images, expected)
    with open(data, "r+b") as file:  # an images file of the wrong size
        file.truncate(10)
    assert torch.equal(read_folder(photos, CACHED).parts["train"].images, expected)


def test_corrupt_fail_stops_on_build_and_on_reuse(photos) -> None:
    options = FolderOptions(cache=True, corrupt="fail")
    for _ in range(2):
        with pytest.raises(DataError, match=r"(?s)15x\.jpg.*truncated.*corrupt=fail stops"):
            read_folder(photos, options)


def test_automatic_choice_by_decoded_size(monkeypatch, caplog) -> None:
    monkeypatch.setattr(cache, "available_memory", lambda: 1000)
    assert cache.use_cache(None, 400, limit=4 << 30) is False
    assert cache.use_cache(None, 600, limit=4 << 30) is True  # more than half the free memory
    assert "reading them from a decoded cache on disk" in caplog.text
    assert cache.use_cache(None, 300, limit=200) is True  # over the in-memory limit
    assert cache.use_cache(True, 1, limit=4 << 30) is True
    assert cache.use_cache(False, 10**12, limit=4 << 30) is False
    assert cache.available_memory() == 1000 and cache.available_memory is not None


def test_a_folder_too_large_for_memory_goes_to_the_cache(photos, monkeypatch, caplog) -> None:
    monkeypatch.setattr("cnnkit.data.folder.MAX_BYTES", 1000)
    train = read_folder(photos).parts["train"]
    assert mapped_file(train.images) is not None and len(train) == 90
    assert "reading them from a decoded cache on disk" in caplog.text


def test_available_memory_is_positive_and_below_the_machine() -> None:
    free = cache.available_memory()
    assert 0 < free <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_splits_of_a_cached_folder_stay_on_disk_and_equal_memory(
    photos, cache_home, tmp_path
) -> None:
    memory = load_dataset(f"folder:{photos}?cache=0", seed=3)
    cached = load_dataset(f"folder:{photos}?cache=1", seed=3)
    for (name, part), (_, on_disk) in zip(memory.items(), cached.items(), strict=True):
        assert mapped_file(on_disk.images) is not None, name
        assert torch.equal(part.images, on_disk.images) and part.ids == on_disk.ids
    before = sorted(p.name for p in cache_home.glob("*/*.u8"))
    load_dataset(f"folder:{photos}?cache=1", seed=3)  # subsets are written once
    assert sorted(p.name for p in cache_home.glob("*/*.u8")) == before
    # a split file (evaluate, resume) takes the same parts, still on disk
    record = split_record(cached, source=f"folder:{photos}?cache=1", root=photos)
    write_split_file(tmp_path / "split.json", record)
    again = load_dataset(f"folder:{photos}?cache=1", split_file=tmp_path / "split.json")
    for (name, part), (_, on_disk) in zip(memory.items(), again.items(), strict=True):
        assert mapped_file(on_disk.images) is not None, name
        assert torch.equal(part.images, on_disk.images) and part.ids == on_disk.ids


@pytest.mark.parametrize("shards", [1, 2])
def test_mapped_batches_equal_in_memory_batches_and_resume(photos, shards) -> None:
    memory = TensorBatches(read_folder(photos, IN_MEMORY).parts["train"])
    mapped = batch_source(read_folder(photos, CACHED).parts["train"])
    assert isinstance(mapped, MappedBatches) and mapped.num_samples == memory.num_samples == 90
    assert mapped.image_shape == (3, 16, 16)
    for epoch in range(2):
        for shard in range(shards):
            args = {"epoch": epoch, "batch_size": 16, "seed": 5, "shard": shard, "shards": shards}
            ours = list(mapped.batches(**args))
            theirs = list(memory.batches(**args))
            assert len(ours) == len(theirs) == 6
            for (x, y), (u, v) in zip(ours, theirs, strict=True):
                assert torch.equal(x, u) and torch.equal(y, v) and x.dtype == torch.uint8
            # resuming at batch 3 gives exactly the rest of the epoch
            resumed = list(mapped.batches(**args, start=3))
            assert len(resumed) == len(ours) - 3
            for (x, y), (u, v) in zip(resumed, ours[3:], strict=True):
                assert torch.equal(x, u) and torch.equal(y, v)


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "CNNKIT_DATA": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.slow
def test_train_and_evaluate_a_folder_through_the_cache_with_the_cli(photos, tmp_path) -> None:
    """The same run through the cache as in memory: same losses, same test metrics."""
    home, runs = tmp_path / "cli-home", tmp_path / "runs"
    common = ("--epochs", "2", "--batch-size", "16", "--device", "cpu", "--runs-dir", str(runs),
              "--model", "fastnet_tiny", "--augment", "flip")  # fmt: skip
    for name, cached in (("disk", 1), ("memory", 0)):
        source = f"folder:{photos}?cache={cached}"
        trained = run_cli(home, "train", "--data", source, "--name", name, *common)
        assert trained.returncode == 0, trained.stderr
        card = json.loads((runs / name / "run.json").read_text())
        assert card["data"]["source"] == source and card["status"] == "finished"
    assert len(list((home / "folder-cache").glob("*/images.u8"))) == 1
    disk, memory = (json.loads((runs / n / "metrics.json").read_text()) for n in ("disk", "memory"))
    assert disk == memory
    history = [json.loads((runs / n / "history.json").read_text()) for n in ("disk", "memory")]
    for epochs in history:
        for epoch in epochs:
            epoch.pop("time")
    assert history[0] == history[1] and len(history[0]) == 2
    evaluated = run_cli(home, "evaluate", str(runs / "disk"), "--device", "cpu")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {100 * disk['test']['accuracy']:.2f}%" in evaluated.stdout


def test_a_bad_cache_option_is_one_clear_cli_error(photos, tmp_path) -> None:
    result = run_cli(tmp_path / "h", "train", "--data", f"folder:{photos}?cache=maybe")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "folder option cache='maybe' is not valid" in result.stderr


def test_reusing_the_cache_opens_no_image_and_a_touched_file_rebuilds_it(
    photos, cache_home, monkeypatch
) -> None:
    from cnnkit.data import folder, images

    built = read_folder(photos, CACHED)
    [data] = cache_files(cache_home)
    opened: list[Path] = []

    def probe(path: Path) -> images.ImageInfo:
        opened.append(path)
        return images.probe_image(path)

    monkeypatch.setattr(folder, "probe_image", probe)
    reused = read_folder(photos, CACHED)
    assert opened == []  # headers come back from the cache, reports and pixels are the same
    assert dataclasses.asdict(reused.report) == dataclasses.asdict(built.report)
    assert torch.equal(reused.parts["train"].images, built.parts["train"].images)
    # the same bytes with a new modification time: probed and decoded again
    stamp = data.stat().st_mtime_ns
    target = photos / "a" / "03.png"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    read_folder(photos, CACHED)
    assert len(opened) == 91 and data.stat().st_mtime_ns != stamp
    opened.clear()
    read_folder(photos, CACHED)
    assert opened == []


def test_an_in_memory_read_leaves_no_cache_behind(photos, cache_home) -> None:
    read_folder(photos, IN_MEMORY)
    read_folder(photos, FolderOptions())  # small: the automatic choice is memory
    assert not cache_home.exists() or not any(cache_home.iterdir())


def test_split_files_of_many_seeds_stay_within_the_decoded_size(photos, cache_home) -> None:
    """Each seed holds out other rows; older row files make room, and parts already loaded
    keep reading theirs after the file is removed."""
    memory = {seed: load_dataset(f"folder:{photos}?cache=0", seed=seed) for seed in range(5)}
    loaded = {seed: load_dataset(f"folder:{photos}?cache=1", seed=seed) for seed in range(5)}
    [data] = cache_files(cache_home)
    rows = list(data.parent.glob("*-rows-*.u8"))
    assert sum(p.stat().st_size for p in rows) <= data.stat().st_size
    # the latest seed's parts are all on disk still; the first seed's are gone
    newest = {mapped_file(part.images) for _, part in loaded[4].items()}
    assert newest <= set(rows)
    assert not {mapped_file(part.images) for _, part in loaded[0].items()} & set(rows)
    for seed in range(5):
        for (name, part), (_, on_disk) in zip(
            memory[seed].items(), loaded[seed].items(), strict=True
        ):
            assert torch.equal(part.images, on_disk.images), (seed, name)
