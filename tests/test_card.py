"""The run card: typed sections, a format version, old cards migrated, newer ones refused.

``tests/fixtures/run_format1`` is a run folder written by cnnkit before the card had a
format (commit a111d28: ``cnnkit train --data "folder:shapes?fit=crop&size=10x14" --model
tiny.yaml --epochs 1 --batch-size 8 --val-size 8``, a Flatten + Dense(2) model), with the
``shapes`` folder :func:`write_shapes` writes again here, pixel for pixel.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.card import FORMAT, RunCard, SplitSettings
from cnnkit.errors import RunError
from cnnkit.evaluate.report import _templates
from cnnkit.run import Run
from cnnkit.run_files import RunFiles
from tests.hostile.conftest import cli, edit_card, snapshot

OLD_RUN = Path(__file__).parent / "fixtures" / "run_format1"


def write_shapes(root: Path) -> Path:
    """The folder the format-1 run was trained on: bright and dark 10x14 grey pictures."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("test", 8)):
        for name in ("bright", "dark"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = 200 if name == "bright" else 40
                pixels = np.clip(base + rng.normal(0, 20, (10, 14)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture
def old_run(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_RUN, tmp_path / "old"))


def test_a_format_1_card_is_migrated_when_read() -> None:
    raw = json.loads((OLD_RUN / "run.json").read_text())
    assert "format" not in raw and "fit" not in raw["preprocessing"]
    card = Run(OLD_RUN).card
    # the resize rule the training pictures were read with, recovered from the source once
    assert card.preprocessing.fit == "crop"
    # how the split was made moved from the config to the data record
    assert card.data.split == SplitSettings(seed=0, val_size=8, test_size=None, group_by=None)
    assert card.model.input_shape == (1, 10, 14) and card.classes == ("bright", "dark")
    assert card.status == "finished" and card.environment.device == "cpu"
    written = card.to_dict()
    assert written["format"] == FORMAT == 2 and written["preprocessing"]["fit"] == "crop"
    assert RunCard.from_dict(written, "again") == card  # the current format round-trips


def test_an_old_run_folder_still_evaluates_and_predicts(old_run, tmp_path, monkeypatch, capsys):
    shapes = write_shapes(tmp_path / "shapes")
    before = (old_run / "run.json").read_bytes()
    out = tmp_path / "eval"
    code, stdout, err = cli(
        monkeypatch, capsys, "evaluate", str(old_run), "--data-dir", str(shapes), "--out", str(out)
    )
    assert code == 0, err
    recorded = json.loads((OLD_RUN / "metrics.json").read_text())["test"]
    measured = json.loads((out / "metrics.json").read_text())["test"]
    assert measured["accuracy"] == pytest.approx(recorded["accuracy"])
    assert measured["loss"] == pytest.approx(recorded["loss"], rel=1e-4)
    # a picture twice as large is cropped as the run's training pictures were
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((20, 40), 220, np.uint8)).save(wide)
    code, stdout, err = cli(monkeypatch, capsys, "predict", str(old_run), str(wide), "--json")
    assert code == 0, err
    assert json.loads(stdout)[0]["predicted"] == "bright"
    assert (old_run / "run.json").read_bytes() == before  # reading never rewrites the card


def test_writing_an_old_card_stores_the_current_format(old_run) -> None:
    run = Run(old_run)
    run.update_card(status="interrupted")
    raw = run.read_json(run.files.card)
    assert raw["format"] == FORMAT and raw["status"] == "interrupted"
    assert raw["preprocessing"]["fit"] == "crop" and raw["data"]["val_size"] == 8
    assert run.card == RunCard.from_dict(raw, "x")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"format": 3},
            "run card format 3 was written by a newer cnnkit; cnnkit 0.1.0 reads formats up to "
            "2. Upgrade cnnkit (pip install --upgrade cnnkit) to use this run",
        ),
        ({"format": "2"}, 'format must be a whole number, not "2"'),
        ({"format": 0}, "format is 0, out of range 1.."),
        ({"status": "done"}, 'status is "done", not one of "training", "finished"'),
        ({"colour": "blue"}, "colour is not a known field"),
        ({"data__source": 7}, "data.source must be a string, not 7"),
        ({"preprocessing__fit": "squash"}, 'preprocessing.fit is "squash", not one of "pad"'),
        ({"environment__cpu_threads": 0}, "environment.cpu_threads is 0, out of range 1.."),
        ({"training__best_epoch": "3"}, 'training.best_epoch must be a whole number, not "3"'),
        ({"data__sizes": {"train": -1}}, "data.sizes.train is -1, out of range 0.."),
    ],
)
def test_a_bad_or_newer_card_is_one_clear_error(
    old_run, tmp_path, monkeypatch, capsys, changes, message
) -> None:
    raw = json.loads((old_run / "run.json").read_text())
    raw["format"] = FORMAT  # start from a current card (the fixture is format 1)
    raw["preprocessing"]["fit"] = "crop"
    (old_run / "run.json").write_text(json.dumps(raw))
    edit_card(old_run, **changes)
    before = snapshot(old_run)
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((20, 40), 220, np.uint8)).save(wide)
    code, out, err = cli(monkeypatch, capsys, "predict", str(old_run), str(wide), "--json")
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"{old_run / 'run.json'}: {message}" in " ".join(err.split()), err
    assert snapshot(old_run) == before


def test_a_card_that_is_not_an_object_is_refused(tmp_path) -> None:
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(RunError, match=r"run\.json: the card must be a JSON object, not \[1, 2\]"):
        _ = Run(tmp_path).card


def test_the_run_owns_its_paths(tmp_path) -> None:
    files = Run(tmp_path).files
    assert isinstance(files, RunFiles)
    named = {
        files.card: "run.json",
        files.weights: "weights.safetensors",
        files.history: "history.json",
        files.split: "split.json",
        files.last_checkpoint: "checkpoints/last.pt",
        files.metrics: "metrics.json",
        files.report: "report.html",
        files.predictions("val"): "predictions-val.csv",
    }
    for path, name in named.items():
        assert path == tmp_path / name


def test_report_templates_escape_every_value() -> None:
    macros = _templates().get_template("macros.html.j2").module
    cell = "<script>alert('x')</script> & co"
    table = str(macros.table(["a<b"], [[cell]], numeric=[False]))
    pairs = str(macros.kv([("name", cell), ("prints", [("t<", "<digest>" * 3)])]))
    for html in (table, pairs):
        assert "<script>" not in html and "&lt;script&gt;" in html
    assert "a&lt;b" in table and "&amp; co" in table and 't&lt;: <span class="mono"' in pairs


def test_a_run_opened_by_a_relative_path_reads_its_own_files(old_run, monkeypatch) -> None:
    """`cnnkit report runs/x` after `cnnkit train` (runs/ relative to the current folder)."""
    monkeypatch.chdir(old_run.parent)
    run = Run.open(old_run.name)
    assert run.card.name == Run.open(old_run).card.name
    run.write_json(run.files.history, [{"epoch": 1}])
    assert run.read_json(run.files.history) == [{"epoch": 1}]
    assert run.read_json("history.json") == [{"epoch": 1}]
    assert (old_run / "history.json").is_file() and not (old_run / old_run.name).exists()
