"""Offline augmentation: counts, class folders, manifest, regeneration, preview, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.augment import Mixup, Pipeline
from cnnkit.augment.offline import (
    MANIFEST,
    PREVIEW,
    augment_to_folder,
    open_source,
    plan_outputs,
    read_manifest,
    regenerate,
)
from cnnkit.augment.spec import parse_augment
from cnnkit.data.images import load_image
from cnnkit.errors import ConfigError, DataError

COUNTS = {"ant": 2, "bee": 5, "cat": 1}  # an imbalanced folder
SPEC = "rotate:p=0.8,max=20; distort:p=0.5,magnitude=1.5; erase:p=0.3,value=noise; flip"


def picture(seed: int, size: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def write_folder(root: Path, counts: dict[str, int] = COUNTS) -> Path:
    seed = 0
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for k in range(count):
            Image.fromarray(picture(seed)).save(root / name / f"img{k}.png")
            seed += 1
    return root


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "photos")


def augment(*args, **options):
    """augment_to_folder without the preview (drawing it takes a second) unless asked."""
    options.setdefault("preview", False)
    return augment_to_folder(*args, **options)


def pngs(folder: Path) -> dict[str, list[str]]:
    """Class folder -> sorted PNG names in it."""
    return {
        d.name: sorted(p.name for p in d.glob("*.png"))
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }


def test_sample_writes_n_per_round_into_the_class_folders_with_a_manifest(photos, tmp_path) -> None:
    out = tmp_path / "out"
    result = augment(
        open_source(str(photos)), parse_augment(SPEC), out, sample=7, rounds=2, seed=3, preview=True
    )
    assert result.augmented == 14 and result.originals == 0
    files = pngs(out)
    assert set(files) <= set(COUNTS) and sum(len(v) for v in files.values()) == 14
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["seed"] == 3 and manifest["pipeline"] == parse_augment(SPEC).describe()
    assert manifest["source"]["kind"] == "folder" and manifest["source"]["size"] == [12, 12]
    assert [e["round"] for e in manifest["outputs"]] == [1] * 7 + [2] * 7
    for entry in manifest["outputs"]:
        source_class, source_file = entry["source"].split("/")
        assert entry["file"].startswith(f"{source_class}/{Path(source_file).stem}_aug")
        assert entry["class"] == source_class
        assert all({"step", "op"} <= set(op) for op in entry["ops"])
        assert (out / entry["file"]).is_file()
    assert result.per_class == {name: len(files.get(name, [])) for name in COUNTS}
    assert (out / PREVIEW).is_file() and result.preview == out / PREVIEW


def test_per_image_and_originals(photos, tmp_path) -> None:
    out = tmp_path / "out"
    result = augment(
        open_source(str(photos)), parse_augment("rotate"), out, per_image=3, copy_originals=True
    )
    assert result.augmented == 3 * 8 and result.originals == 8
    files = pngs(out)
    assert files["cat"] == ["img0.png", "img0_aug1.png", "img0_aug2.png", "img0_aug3.png"]
    original = load_image(out / "bee" / "img4.png")
    assert np.array_equal(original, load_image(photos / "bee" / "img4.png"))


def test_per_class_balances_an_imbalanced_folder(photos, tmp_path) -> None:
    balanced = augment(
        open_source(str(photos)),
        parse_augment(SPEC),
        tmp_path / "a",
        per_class=6,
        copy_originals=True,
    )
    assert {k: len(v) for k, v in pngs(tmp_path / "a").items()} == {"ant": 6, "bee": 6, "cat": 6}
    assert balanced.per_class == {"ant": 6, "bee": 6, "cat": 6} and balanced.augmented == 4 + 1 + 5
    augmented = augment(open_source(str(photos)), parse_augment(SPEC), tmp_path / "b", per_class=4)
    assert {k: len(v) for k, v in pngs(tmp_path / "b").items()} == {"ant": 4, "bee": 4, "cat": 4}
    assert augmented.originals == 0


def test_per_class_uses_every_image_of_a_class_evenly() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    plan = plan_outputs(labels, 2, per_class=7, generator=torch.Generator().manual_seed(0))
    sources = [i for i, _ in plan]
    assert sorted(sources.count(i) for i in (0, 1, 2)) == [2, 2, 3]
    assert sources.count(3) == 7


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({}, "exactly one of --sample N"),
        ({"sample": 2, "per_image": 1}, "got --sample, --per-image"),
        ({"sample": 0}, "at least 1"),
        ({"per_class": 3, "rounds": 2}, "drop --rounds"),
    ],
)
def test_bad_counts_are_refused(counts, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_outputs(torch.tensor([0, 1]), 2, generator=torch.Generator(), **counts)


def test_same_seed_same_files_other_seed_other_files(photos, tmp_path) -> None:
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        augment(open_source(str(photos)), parse_augment(SPEC), tmp_path / name, sample=6, seed=seed)
        runs.append(json.loads((tmp_path / name / MANIFEST).read_text())["outputs"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_every_output_is_regenerated_exactly_from_the_manifest(photos, tmp_path) -> None:
    out = tmp_path / "out"
    augment(open_source(str(photos)), parse_augment(SPEC), out, sample=20, copy_originals=True)
    result = regenerate(out / MANIFEST)
    assert (result.regenerated, result.identical, result.different) == (28, 28, [])
    # one file alone, rebuilt into another folder, equals the one written
    entry = next(e for e in read_manifest(out).outputs if len(e["ops"]) >= 2)
    again = regenerate(out, out=tmp_path / "again", files=[entry["file"]])
    assert again.identical == 1
    assert np.array_equal(
        load_image(tmp_path / "again" / entry["file"]), load_image(out / entry["file"])
    )
    # the source moved: point at it
    moved = tmp_path / "moved"
    shutil.move(photos, moved)
    assert regenerate(out, source_dir=moved).identical == 28


def test_regeneration_refuses_changed_sources_and_unknown_files(photos, tmp_path) -> None:
    out = tmp_path / "out"
    augment(open_source(str(photos)), parse_augment("rotate"), out, per_image=1)
    with pytest.raises(ConfigError, match=r"not in .*: cat/nothing.png"):
        regenerate(out, files=["cat/nothing.png"])
    Image.fromarray(picture(99)).save(photos / "cat" / "img0.png")
    with pytest.raises(DataError, match=r"cat/img0.png: the source image changed since"):
        regenerate(out)
    (out / MANIFEST).write_text("{}")
    with pytest.raises(DataError, match=r"augment-manifest\.json: format is missing"):
        regenerate(out)
    with pytest.raises(DataError, match="no such manifest"):
        regenerate(tmp_path / "nowhere")


def test_a_named_dataset_the_textbook_way(tmp_path) -> None:
    """Nine MNIST test digits, rotate p=0.9 up to 25 degrees, two rounds of ten samples."""
    source = open_source("mnist", split="test", count=9)
    assert len(source.dataset) == 9 and source.keys[0] == "mnist:test/0"
    result = augment(
        source, parse_augment("rotate:p=0.9,max=25"), tmp_path / "output", sample=10, rounds=2
    )
    assert result.augmented == 20 and sum(result.per_class.values()) == 20
    angles = [op["angle"] for e in read_manifest(tmp_path / "output").outputs for op in e["ops"]]
    assert 12 <= len(angles) <= 20 and all(-25 <= a <= 25 for a in angles)
    assert regenerate(tmp_path / "output").identical == 20


def test_split_layouts_are_mirrored(tmp_path) -> None:
    root = tmp_path / "pets"
    write_folder(root / "train", {"cat": 2, "dog": 2})
    write_folder(root / "test", {"cat": 1, "dog": 1})
    augment(open_source(str(root)), parse_augment("flip:1"), tmp_path / "out", per_image=1)
    found = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert "train/cat/img0_aug1.png" in found and "test/dog/img0_aug1.png" in found
    assert len([f for f in found if f != PREVIEW]) == 6


def test_start_and_count_pick_the_sources(photos) -> None:
    source = open_source(str(photos), start=2, count=3)
    assert source.keys == ("bee/img0.png", "bee/img1.png", "bee/img2.png")
    with pytest.raises(ConfigError, match="--start 8 is outside the 8 images"):
        open_source(str(photos), start=8)
    with pytest.raises(ConfigError, match="has no 'val' part"):
        open_source("mnist", split="val")


def test_output_never_lands_in_the_source_by_surprise(photos, tmp_path) -> None:
    pipeline = parse_augment("rotate")
    with pytest.raises(ConfigError, match=r"inside the source folder.*--inside-source"):
        augment(open_source(str(photos)), pipeline, photos / "output", sample=2)
    assert not (photos / "output").exists()
    augment(open_source(str(photos)), pipeline, photos / "output", sample=2, inside_source=True)
    assert len(list((photos / "output").rglob("*.png"))) == 2
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        augment(open_source(str(photos)), pipeline, photos / "output", sample=2, inside_source=True)


def test_pipelines_that_cannot_write_files_are_refused(photos, tmp_path) -> None:
    source = open_source(str(photos))
    with pytest.raises(ConfigError, match="no augmentation given"):
        augment(source, Pipeline(), tmp_path / "x", sample=1)
    with pytest.raises(ConfigError, match="mixup mixes pairs of images and their labels"):
        augment(source, Pipeline([Mixup()]), tmp_path / "x", sample=1)
    assert not (tmp_path / "x").exists()


def test_a_failed_run_leaves_no_half_folder(photos, tmp_path) -> None:
    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        augment(
            open_source(str(photos)),
            parse_augment("rotate"),
            tmp_path / "out",
            sample=3,
            progress=stop,
        )
    assert list(tmp_path.iterdir()) == [photos]


def test_previews_put_each_original_first_then_its_augmentations(photos, tmp_path) -> None:
    from cnnkit.augment.preview import plot_outputs, plot_pipeline

    figure = plot_pipeline(
        open_source(str(photos)).dataset, parse_augment("rotate"), rows=3, columns=4
    )
    titles = [[ax.get_title() for ax in figure.axes[row * 5 : row * 5 + 5]] for row in range(3)]
    assert [row[0].split("\n")[0] for row in titles] == [f"original: {c}" for c in COUNTS]
    assert all(
        cell.startswith("rotate ") and cell.endswith("°") for row in titles for cell in row[1:]
    )
    out = tmp_path / "out"
    augment(open_source(str(photos)), parse_augment("flip_tb:p=0.5"), out, per_image=2, seed=1)
    figure = plot_outputs(out / MANIFEST, rows=2, columns=8)
    cells = [ax for ax in figure.axes if ax.images]
    assert len(cells) == 2 * 3  # two originals, each with its two outputs
    assert {ax.get_title() for ax in cells[1:3]} <= {"flip ↕", "unchanged"}
