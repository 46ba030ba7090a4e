"""The spec format: strings (CLI flags), mappings, YAML/JSON files, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnkit.augment import Crop, Distort, Erase, FlipLR, Mixup, Pipeline, Rotate, Translate
from cnnkit.augment.spec import TRANSFORMS, parse_augment, vocabulary
from cnnkit.errors import ConfigError


def test_strings_shorthands_bare_values_and_aliases() -> None:
    pipeline = parse_augment(
        "rotate:p=0.9,max=25; flip; translate:2; translate-reflect:3; "
        "distort:grid=3,magnitude=1.5; crop:size=24x20,fill=edge; erase:value=noise"
    )
    assert pipeline.steps == (
        Rotate(p=0.9, max_left=25, max_right=25),
        FlipLR(p=0.5),
        Translate(pixels=2),
        Translate(pixels=3, fill="reflect"),
        Distort(grid_width=3, grid_height=3, magnitude=1.5),
        Crop(size=(24, 20), fill="edge"),
        Erase(value="noise"),
    )
    assert parse_augment(["rotate:10,p=0.5"]).steps == (Rotate(p=0.5, max_left=10, max_right=10),)


def test_python_objects_mappings_and_lists_mix() -> None:
    pipeline = parse_augment(
        [
            Rotate(max_left=5, max_right=5),
            {"translate": 1},
            "crop:size=8",
            {"mixup": {"alpha": 0.3}},
        ]
    )
    assert pipeline.steps[1] == Translate(pixels=1)
    assert pipeline.steps[2] == Crop(size=(8, 8))
    assert pipeline.mixing == Mixup(alpha=0.3)
    assert parse_augment(None).steps == () and parse_augment(pipeline) is pipeline


def test_yaml_and_json_files(tmp_path: Path) -> None:
    spec = tmp_path / "aug.yaml"
    spec.write_text(
        "augment:\n"
        "  - rotate: {p: 0.9, max_left: 25, max_right: 10}\n"
        "  - flip_lr\n"
        "  - 'translate:2'\n"
        "  - distort: {grid: 4, magnitude: 2}\n"
    )
    pipeline = parse_augment(str(spec))
    assert [s.name for s in pipeline.steps] == ["rotate", "flip_lr", "translate", "distort"]
    assert pipeline.steps[0] == Rotate(p=0.9, max_left=25, max_right=10)
    as_json = tmp_path / "aug.json"
    as_json.write_text(json.dumps([{"rotate": {"p": 0.9, "max_left": 25, "max_right": 10}}]))
    assert parse_augment(as_json).steps[0] == pipeline.steps[0]


def test_describe_reads_back_as_the_same_pipeline() -> None:
    pipeline = parse_augment(
        [f"{name}" for name in TRANSFORMS if name not in ("mixup", "cutmix")]
        + ["crop:size=12x10", "erase:value=noise", "cutmix:0.5"]
    )
    again = parse_augment(pipeline.describe())
    assert again.steps == pipeline.steps
    assert "rotate:p=1,max_left=25,max_right=25,fill=black" in pipeline.describe()


def test_every_transform_is_listed_with_its_defaults() -> None:
    rows = {name: settings for name, _, settings in vocabulary()}
    assert set(rows) == set(TRANSFORMS)
    assert rows["rotate"]["max_left"] == 25.0 and rows["flip_lr"]["p"] == 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rotat:25", r"unknown augmentation 'rotat'\. Did you mean 'rotate'\?"),
        (
            "rotate:maxleft=3",
            r"rotate: unknown setting 'maxleft'; it takes p, max_left, max_right, fill, max",
        ),
        ("rotate:max=abc", r"rotate: max_left='abc' is not a valid value \(a number\)"),
        ("translate:1.5", r"translate: pixels=1.5 is not a valid value \(a whole number\)"),
        ("translate:-1", "translate: pixels must be a whole number >= 0"),
        ("flip:2", "flip_lr: p must be a probability 0..1, got 2"),
        ("flip:p=yes", "flip_lr: p=True is not a valid value"),
        ("rotate:p=1.5", "p must be a probability"),
        ("crop:size=big", r"crop: size='big' is not a valid value \(pixels: 24 or 24x20\)"),
        ("shear:axis=3", r"shear: axis=3 is not a valid value \(a word\)"),
        ("rotate:10,20", "only one setting may be given without a name"),
        ("brightness:1.2", "brightness has no main setting"),
        ("mixup; flip", "put it last"),
    ],
)
def test_bad_specs_say_what_and_where(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_augment(spec)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.yaml: no such augmentation spec file"):
        parse_augment(str(tmp_path / "no-such.yaml"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"empty.yaml: empty"):
        parse_augment(str(empty))
    broken = tmp_path / "broken.yml"
    broken.write_text("- rotate: {p: 0.9\n")
    with pytest.raises(ConfigError, match=r"broken.yml: not valid YAML"):
        parse_augment(str(broken))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("- rotate: {speed: 3}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: rotate: unknown setting 'speed'"):
        parse_augment(str(wrong))
    with pytest.raises(ConfigError, match="must be a string like"):
        parse_augment([3])  # type: ignore[list-item]
    assert isinstance(parse_augment([]), Pipeline)
