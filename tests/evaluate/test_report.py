"""A model trained a few steps gives every picture, metrics files and a self-contained report."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cnnkit.cli.main import app
from cnnkit.data import sources
from cnnkit.data.dataset import Dataset
from cnnkit.errors import DataError, ModelError, RunError
from cnnkit.evaluate.evaluation import evaluate_split
from cnnkit.evaluate.report import summarize_run, write_comparison
from cnnkit.run import Run

SECTIONS = (
    "run-card",
    "curves",
    "metrics",
    "confusion",
    "confused-pairs",
    "top-losses",
    "gradcam",
    "filters",
)
PICTURES = ("history", "confusion_matrix", "top_losses", "gradcam", "filters", "filter_epochs")


def test_report_holds_every_section_and_picture_embedded(trained, report) -> None:
    assert report == trained.path / "report.html"
    page = report.read_text(encoding="utf-8")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page, anchor
    for name in PICTURES:
        assert (trained.path / "plots" / f"{name}.png").is_file(), name
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(PICTURES)
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    # self-contained: nothing to fetch, no script
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<script" not in page
    assert "3,255,914" in page  # the model's parameter count in the run card
    assert trained.card.data.fingerprints["test"][:16] in page


def test_report_writes_full_metrics_and_predictions(trained, report) -> None:
    metrics = json.loads((trained.path / "metrics.json").read_text())
    assert set(metrics) >= {"val", "test"}  # training's entries kept, test made complete
    test = metrics["test"]
    assert test["split"] == "test" and test["samples"] == 300
    assert test["ber"] == pytest.approx(1 - test["balanced_accuracy"])
    assert np.array(test["confusion_matrix"]).sum() == 300
    with (trained.path / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 and rows[0]["id"] == "mnist:test/0"
    right = sum(row["true"] == row["predicted"] for row in rows) / 300
    assert right == pytest.approx(test["accuracy"])


def test_evaluate_prints_the_textbook_set(trained, tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnkit",
            "evaluate",
            str(trained.path),
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    accuracy = float(re.search(r"test accuracy (\d+\.\d+)%", text).group(1))
    assert accuracy == pytest.approx(
        trained.read_json("metrics.json")["test"]["accuracy"] * 100, abs=0.006
    )
    for phrase in (
        "top-5",
        "balanced accuracy",
        "BER",
        "classification report",
        "macro avg",
        "confusion matrix (rows: true class",
        "most-confused pairs",
    ):
        assert phrase in text, phrase
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "predictions.csv").is_file()


def test_evaluate_on_another_source_checks_its_classes(trained, monkeypatch) -> None:
    rng = np.random.default_rng(0)

    def other(classes: str, size: int):
        data = Dataset.from_numpy(
            rng.integers(0, 256, (20, size, size), dtype=np.uint8),
            np.arange(20) % 10,
            classes,
            source="other:test",
        )
        parts = sources.SourceData({"train": data, "test": data})
        return sources.Source("other", "test", lambda _dir: parts, 0, lambda _dir: None, "")

    digits = [str(i) for i in range(10)]
    monkeypatch.setitem(sources.SOURCES, "other", other(digits, 28))
    evaluation = evaluate_split(trained, data="other", device="cpu")
    assert evaluation.metrics["samples"] == 20 and evaluation.metrics["data"] == "other:test"
    monkeypatch.setitem(sources.SOURCES, "other", other([f"c{i}" for i in range(10)], 28))
    with pytest.raises(DataError, match=r"has classes .*'c0'.* the run was trained on"):
        evaluate_split(trained, data="other", device="cpu")
    monkeypatch.setitem(sources.SOURCES, "other", other(digits, 20))
    with pytest.raises(DataError, match=r"images of shape \(1, 20, 20\).*takes \(1, 28, 28\)"):
        evaluate_split(trained, data="other", device="cpu")
    with pytest.raises(RunError, match="has no val split"):
        evaluate_split(trained, data="other", split="val", device="cpu")


def test_interpretation_commands_write_their_pictures(trained, tiny_mnist_dir, tmp_path) -> None:
    digit = trained.load_data("test").images[0, 0].numpy()
    Image.fromarray(digit).resize((56, 56)).save(tmp_path / "seven.png")
    runner = CliRunner()
    run = str(trained.path)
    done = runner.invoke(app, ["filters", run, "--out", str(tmp_path / "f.png")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "f.png").is_file() and (tmp_path / "filter_epochs.png").is_file()
    done = runner.invoke(app, ["featuremaps", run, str(tmp_path / "seven.png"), "--device", "cpu"])
    assert done.exit_code == 0, done.output
    assert "64 maps of 14x14" in done.output
    assert (
        trained.path / "plots" / "featuremaps-seven-features.layers.conv2d_1.conv_ReLU.png"
    ).is_file()
    done = runner.invoke(
        app,
        [
            "gradcam",
            run,
            str(tmp_path / "seven.png"),
            str(tmp_path / "seven.png"),
            "--class",
            "3",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "g.png"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert done.output.count("explains 3") == 2 and (tmp_path / "g.png").is_file()
    wrong = runner.invoke(app, ["gradcam", run, str(tmp_path / "seven.png"), "--layer", "nope"])
    assert isinstance(wrong.exception, ModelError)
    assert "layers: conv2d, conv2d_1 " in str(wrong.exception)
    done = runner.invoke(
        app,
        [
            "featuremaps",
            run,
            str(tmp_path / "seven.png"),
            "--layer",
            "conv2d",
            "--out",
            str(tmp_path / "first.png"),
        ],
    )  # a layer's own name is enough; its output is read after its activation
    assert done.exit_code == 0 and "features.layers.conv2d: 32 maps of 28x28" in done.output
    wrong = runner.invoke(app, ["gradcam", run, str(tmp_path / "seven.png"), "--class", "cat"])
    assert "neither a class name nor an index" in str(wrong.exception)


def test_compare_puts_runs_side_by_side(trained, report, tmp_path) -> None:
    other = Run(shutil.copytree(trained.path, tmp_path / "other"))
    other.update_card(name="other", config={**other.card.config, "lr": 0.01})
    summary = summarize_run(other)
    assert summary["name"] == "other" and summary["lr"] == 0.01
    assert summary["ber"] == pytest.approx(1 - summary["balanced_accuracy"])
    page = write_comparison([trained, other], tmp_path / "compare.html")
    text = page.read_text()
    assert "tiny" in text and "other" in text and "0.01" in text and "test BER" in text
    assert (tmp_path / "compare.png").is_file()
    done = CliRunner().invoke(app, ["compare", str(trained.path), str(other.path)])
    assert done.exit_code == 0 and "learning rate" in done.output
    with pytest.raises(RunError, match="at least two run directories"):
        write_comparison([trained], tmp_path / "one.html")
