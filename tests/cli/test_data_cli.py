"""``cnnkit data ...`` and training on a folder, run in-process through the CLI app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cnnkit.cli.main import app
from cnnkit.data.sources import load_dataset
from cnnkit.errors import ConfigError
from tests.data import imagefiles as f


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if ok and result.exit_code != 0:
        raise AssertionError(f"cnnkit {' '.join(args)}: {result.output}\n{result.exception!r}")
    return result


def test_datasets_lists_every_source_with_how_to_get_it() -> None:
    text = run("datasets").output
    for name in ("mnist", "fashion-mnist", "cifar10", "cifar100", "cifar100-coarse", "folder:PATH"):
        assert name in text
    assert "cnnkit data download cifar10" in text


def test_check_prints_the_health_report_and_writes_json(planted_dir, tmp_path) -> None:
    result = run(
        "data", "check", f"folder:{planted_dir}", "--json", str(tmp_path / "r.json"), ok=False
    )
    assert result.exit_code == 1  # the report has errors
    text = result.output
    assert "health report" in text and "3 error(s)" in text
    assert "[leak]" in text and "train:dog/01.png = test:dog/leak.png" in text
    assert "truncated.jpg" in text and "train/.cache/" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["folder"]["sizes"]["16x16"] == 24
    strict = run("data", "check", f"folder:{planted_dir}", "--strict", ok=False)
    assert strict.exit_code == 1


def test_info_on_a_folder_and_fashion_mnist(planted_dir) -> None:
    text = run("data", "info", f"folder:{planted_dir}?allow_empty=1").output
    assert "3 classes" in text and "16x16 RGB" in text and "unreadable file(s) skipped" in text


def test_show_writes_grids(tiny_mnist_dir, tmp_path) -> None:
    out = tmp_path / "grid.png"
    args = ("data", "show", "mnist", "--data-dir", str(tiny_mnist_dir), "--val-size", "200")
    run(*args, "--count", "6", "--one-hot", "--out", str(out))
    run(*args, "--per-class", "--split", "test", "--out", str(tmp_path / "classes.png"))
    for path in (out, tmp_path / "classes.png"):
        with Image.open(path) as png:
            assert png.format == "PNG"


def test_export_then_import_is_lossless(tiny_mnist_dir, tmp_path) -> None:
    folder = tmp_path / "pngs"
    run(
        "data", "export", "mnist", "--data-dir", str(tiny_mnist_dir), "--val-size", "0",
        "--split", "test", "--count", "25", "--naming", "image_no", "--out", str(folder),
    )  # fmt: skip
    assert (folder / "7" / "image_no_1.png").is_file()
    text = run("data", "import", str(folder), "--out", str(tmp_path / "a.npz")).output
    test = load_dataset("mnist", data_dir=tiny_mnist_dir, val_size=0).test.subset(range(25))
    assert f"fingerprint {test.fingerprint()[:12]}" in text
    import numpy as np

    arrays = np.load(tmp_path / "a.npz")
    assert (arrays["images"] == test.images.numpy()).all()
    assert (arrays["labels"] == test.labels.numpy()).all()


def test_unknown_split_and_bad_source_are_clear_errors(tiny_mnist_dir) -> None:
    result = run("data", "show", "mnist", "--data-dir", str(tiny_mnist_dir), "--val-size", "0",
                 "--split", "dev", ok=False)  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert "choose one of train, test" in str(result.exception)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A small learnable folder: bright vs dark pictures, 12 of each, in sub-folders."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    for i in range(12):
        f.write(root / "bright" / f"b{i:02d}.png", f.png(200 + f.rgb_array(i, 12, 12) // 5))
        f.write(root / "dark" / f"d{i:02d}.png", f.png(f.rgb_array(50 + i, 12, 12) // 5))
    return root


def test_train_on_a_folder_then_evaluate_and_reuse_its_split(shapes, tmp_path) -> None:
    runs = tmp_path / "runs"
    common = ("--model", "lenet", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
              "--runs-dir", str(runs))  # fmt: skip
    trained = run("train", "--data", f"folder:{shapes}", "--name", "one", *common).output
    accuracy = re.search(r"test accuracy (\d+\.\d+)%", trained).group(1)
    card = json.loads((runs / "one" / "run.json").read_text())
    assert (
        card["data"]["source"] == f"folder:{shapes}" and card["data"]["split_file"] == "split.json"
    )
    assert card["data"]["sizes"] == {"train": 17, "val": 2, "test": 5}
    assert card["model"]["input_shape"] == [3, 12, 12]
    evaluated = run("evaluate", str(runs / "one"), "--device", "cpu").output
    assert f"test accuracy {accuracy}%" in evaluated
    run("train", "--data", f"folder:{shapes}", "--name", "two", "--split-file", str(runs / "one"),
        "--seed", "7", *common)  # fmt: skip
    second = json.loads((runs / "two" / "run.json").read_text())
    assert second["data"]["fingerprints"] == card["data"]["fingerprints"]
