"""``cnnkit augment``, run in-process through the CLI app."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from cnnkit.errors import ConfigError
from tests.augment.test_offline import COUNTS, write_folder
from tests.cli.test_data_cli import run


def test_the_textbook_example_in_one_command(tmp_path: Path) -> None:
    out = tmp_path / "output"
    result = run(
        "augment", "mnist", "--split", "test", "--count", "9",
        "-a", "rotate:p=0.9,max=25", "--sample", "10", "--rounds", "2", "--out", str(out),
    )  # fmt: skip
    assert "20 augmented images written to" in result.output
    assert len(list(out.rglob("*_aug*.png"))) == 20
    manifest = json.loads((out / "augment-manifest.json").read_text())
    assert manifest["pipeline"] == ["rotate:p=0.9,max_left=25,max_right=25,fill=black"]
    assert len(manifest["outputs"]) == 20 and (out / "preview.png").is_file()
    check = run("augment", "--regenerate", str(out / "augment-manifest.json"))
    assert "20 outputs regenerated: 20 identical to the recorded pixels" in check.output


def test_an_exported_folder_per_class_and_regeneration_into_a_folder(tmp_path: Path) -> None:
    photos = write_folder(tmp_path / "photos")
    result = run(
        "augment", str(photos), "-a", "flip", "-a", "rotate:max=15;distort:magnitude=1",
        "--per-class", "5", "--copy-originals", "--no-preview",
    )  # fmt: skip
    out = tmp_path / "photos-augmented"  # the default: beside the source
    assert "ant: 5, bee: 5, cat: 5" in result.output
    assert {d.name: len(list(d.glob("*.png"))) for d in out.iterdir() if d.is_dir()} == {
        name: 5 for name in COUNTS
    }
    again = run("augment", "--regenerate", str(out), "--out", str(tmp_path / "again"))
    assert "15 outputs regenerated, written to" in again.output
    assert len(list((tmp_path / "again").rglob("*.png"))) == 15


def test_preview_only_draws_and_writes_nothing_else(tmp_path: Path) -> None:
    photos = write_folder(tmp_path / "photos")
    picture = tmp_path / "look.png"
    run(
        "augment",
        str(photos),
        "-a",
        "skew:0.3",
        "--preview-only",
        "--out",
        str(picture),
        "--rows",
        "2",
    )
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width > 800
    assert sorted(p.name for p in tmp_path.iterdir()) == ["look.png", "photos"]


def test_list_and_errors(tmp_path: Path) -> None:
    listing = run("augment", "--list").output
    for name in ("rotate", "skew", "distort", "shear", "zoom", "crop", "mixup", "cutmix"):
        assert name in listing
    photos = write_folder(tmp_path / "photos")
    for args, message in [
        ((), "name the images to augment"),
        (
            (str(photos), "-a", "flip", "--sample", "2", "-o", str(photos / "o")),
            "inside the source",
        ),
        ((str(photos), "-a", "rotat", "--sample", "2"), "Did you mean 'rotate'"),
        ((str(photos), "--sample", "2"), "no augmentation given"),
    ]:
        failed = run("augment", *args, ok=False)
        assert isinstance(failed.exception, ConfigError) and message in str(failed.exception)
