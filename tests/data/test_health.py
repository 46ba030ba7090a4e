"""The health report: balance, files, exact and near duplicates, leaks between splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.health import check_health, find_duplicates
from cnnkit.data.sources import inspection_source, make_splits, read_source


def _by_topic(report) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for finding in report.findings:
        found.setdefault((finding.level, finding.topic), []).append(finding.message)
    return found


def test_planted_folder_report_finds_every_planted_problem(planted_dir: Path) -> None:
    name = inspection_source(f"folder:{planted_dir}")
    data = read_source(name)
    report = check_health(make_splits(name, data), source=name, folder=data.report)
    found = _by_topic(report)
    text = json.dumps(report.to_dict())
    assert any("no readable image" in m for m in found[("error", "files")])  # empty fish
    assert any("identical images shared between splits" in m for m in found[("error", "leak")])
    assert "leak.png" in text and "train/dog/01.png" in text
    assert any("near-identical" in m for m in found[("warning", "leak")])  # near_00.jpg
    warnings = " | ".join(found[("warning", "files")])
    assert "3 unreadable file(s)" in warnings and "extension does not match" in warnings
    assert any("identical images within a split" in m for m in found[("warning", "duplicates")])
    assert any("3 different sizes" in m for m in found[("warning", "sizes")])
    assert any("grey and colour images mixed" in m for m in found[("warning", "channels")])
    infos = " | ".join(found[("info", "files")] + found[("info", "channels")])
    assert "2 hidden" in infos and "EXIF orientation" in infos and "converted" in infos
    assert report.count("error") == 3
    assert [f.level for f in report.findings] == sorted(
        (f.level for f in report.findings), key=["error", "warning", "info"].index
    )


def _dataset(images: np.ndarray, labels, prefix: str) -> Dataset:
    return Dataset.from_numpy(
        images, np.asarray(labels), ["a", "b"], ids=[f"{prefix}/{i}" for i in range(len(images))]
    )


def test_exact_and_near_duplicates_and_leaks() -> None:
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(40, 1, 28, 28)).astype(np.uint8)
    test_x = rng.integers(0, 256, size=(10, 1, 28, 28)).astype(np.uint8)
    test_x[0] = train_x[5]  # exact leak
    noisy = train_x[7].astype(int) + rng.integers(-3, 4, size=(1, 28, 28))
    test_x[1] = np.clip(noisy, 0, 255)  # near leak: +-3 grey levels of noise
    train_x[9] = train_x[8]  # exact duplicate within train
    train = _dataset(train_x, np.arange(40) % 2, "train")
    test = _dataset(test_x, np.arange(10) % 2, "test")
    groups = find_duplicates([("train", train), ("test", test)])
    kinds = sorted((g.kind, g.leak, tuple(s for _, s in g.members)) for g in groups)
    assert kinds == [
        ("exact", False, ("train/8", "train/9")),
        ("exact", True, ("train/5", "test/0")),
        ("near", True, ("train/7", "test/1")),
    ]
    assert not any(
        g.kind == "near" for g in find_duplicates([("train", train), ("test", test)], near_rms=0)
    )
    report = check_health(Splits(train, None, test))
    assert report.count("error") == 1  # the exact leak; the near leak is a warning


def test_near_duplicate_threshold_is_rms_of_thumbnails() -> None:
    base = np.full((2, 3, 32, 32), 100, np.uint8)
    base[1] += 3  # every pixel 3 grey levels brighter: RMS 3
    ds = Dataset.from_numpy(base, np.array([0, 1]), ["a", "b"], ids=["x", "y"])
    assert [g.kind for g in find_duplicates([("train", ds)], near_rms=4)] == ["near"]
    assert find_duplicates([("train", ds)], near_rms=2) == []


def test_imbalance_and_missing_classes() -> None:
    images = torch.zeros(13, 1, 4, 4, dtype=torch.uint8)
    for i in range(13):
        images[i, 0, 0, 0] = i  # all different
    train = Dataset(images[:10], torch.tensor([0] * 8 + [1] * 2), ("a", "b"), ids=None)
    test = Dataset(images[10:], torch.tensor([0, 0, 0]), ("a", "b"), ids=None)
    report = check_health(Splits(train, None, test))
    found = _by_topic(report)
    assert any("imbalance ratio 4.00" in m for m in found[("warning", "balance")])
    assert any("test has no samples of 1 class" in m for m in found[("warning", "balance")])
    assert report.splits[0].imbalance == 4.0 and report.splits[1].imbalance == float("inf")
    assert json.loads(json.dumps(report.to_dict()))["splits"][1]["imbalance"] is None
