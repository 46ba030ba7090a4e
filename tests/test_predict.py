"""Prediction: the same classes as evaluation, files decoded by the run's own rules."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnkit.data.folder import folder_source_name, parse_folder_source
from cnnkit.data.png_folder import MANIFEST, export_pngs
from cnnkit.errors import ConfigError, DataError, RunError
from cnnkit.evaluate.evaluation import evaluate_split
from cnnkit.predict import Predictor, image_files, save_predictions
from cnnkit.run import Run
from tests.data import imagefiles as f


def cnnkit(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


@pytest.fixture(scope="module")
def predictor(trained) -> Predictor:
    return Predictor(trained, device="cpu")


@pytest.fixture(scope="module")
def test_pngs(trained, tmp_path_factory):
    """The run's 300 test images as PNG files in class folders, with the export manifest."""
    folder = tmp_path_factory.mktemp("pngs") / "mnist-test"
    export_pngs(trained.load_data("test"), folder)
    return folder


def test_cli_predict_on_exported_pngs_matches_cli_evaluate(trained, test_pngs, tmp_path) -> None:
    """`cnnkit predict` on the PNGs of the test split = `cnnkit evaluate`'s predictions.csv."""
    evaluated = cnnkit("evaluate", str(trained.path), "--device", "cpu", "--out", str(tmp_path))
    assert evaluated.returncode == 0, evaluated.stderr
    out_csv = tmp_path / "predicted.csv"
    predicted = cnnkit(
        "predict", str(trained.path), str(test_pngs), "--out", str(out_csv), "--device", "cpu"
    )
    assert predicted.returncode == 0, predicted.stderr
    # the manifest is the only non-image file in the folder: skipped, and said so
    assert "skipped 1 file(s)" in predicted.stderr and MANIFEST in predicted.stderr
    assert "predicted 300 images" in predicted.stdout

    manifest = json.loads((test_pngs / MANIFEST).read_text())
    id_of = {
        str(test_pngs / rel): sample
        for rel, sample in zip(manifest["files"], manifest["ids"], strict=True)
    }
    with open(tmp_path / "predictions.csv", newline="") as handle:
        evaluation = {row["id"]: row for row in csv.DictReader(handle)}
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(evaluation) == 300
    same = 0
    for row in rows:
        expected = evaluation[id_of[row["file"]]]
        same += row["predicted"] == expected["predicted"]
        assert float(row["probability"]) == pytest.approx(
            float(expected[f"p_{row['predicted']}"]), abs=2e-6
        )
    assert same == 300


def test_predictor_agrees_with_evaluation_logits(trained, predictor, test_pngs) -> None:
    evaluation = evaluate_split(trained, device="cpu")
    files, _ = image_files([test_pngs])
    result = predictor.predict_files(files, top_k=10)
    assert len(result.predictions) == 300 and [s.path for s in result.skipped] == [
        str(test_pngs / MANIFEST)
    ]
    manifest = json.loads((test_pngs / MANIFEST).read_text())
    id_of = {
        str(test_pngs / rel): sample
        for rel, sample in zip(manifest["files"], manifest["ids"], strict=True)
    }
    order = {sample: i for i, sample in enumerate(evaluation.predictions.ids)}
    probabilities = evaluation.predictions.probabilities
    for prediction in result.predictions:
        row = probabilities[order[id_of[prediction.source]]]
        got = torch.zeros(10)
        for score in prediction.top:
            got[score.index] = score.probability
        assert torch.allclose(got, row, atol=1e-6)
        assert [s.probability for s in prediction.top] == sorted(
            (s.probability for s in prediction.top), reverse=True
        )


def test_images_are_decoded_by_the_runs_input_contract(predictor, tmp_path) -> None:
    """A colour photo of another size is made grey and padded to 28x28, as training would."""
    photo = f.write(tmp_path / "photo.jpg", f.jpeg(f.rgb_array(3, height=40, width=80)))
    assert predictor.preprocessing.describe_input() == {
        "channels": 1,
        "height": 28,
        "width": 28,
        "fit": "pad",
    }
    loaded = predictor.load(photo)
    assert loaded.shape == (1, 28, 28) and loaded.dtype == torch.uint8
    from cnnkit.data.images import load_image

    expected = load_image(photo, channels=1, size=(28, 28), fit="pad")
    assert torch.equal(loaded, torch.tensor(expected))
    assert loaded[:, :7].sum() == 0  # padded: black bands above and below the wide picture
    (prediction,) = predictor.predict([photo], top_k=3)
    assert len(prediction.top) == 3 and prediction.source == str(photo)
    raw = predictor.predict([photo.read_bytes()], top_k=3)[0]
    assert raw.top == prediction.top  # bytes or path: the same decoding


def test_the_resize_rule_is_read_from_the_card_not_from_the_source(trained, tmp_path) -> None:
    card = trained.read_json("run.json")
    assert card["format"] == 2 and card["preprocessing"]["fit"] == "pad"
    card["preprocessing"]["fit"] = "crop"  # recorded: wins over what the source's name says
    copy = Run(tmp_path)
    copy.write_json("run.json", card)
    assert copy.card.preprocessing.fit == "crop" and copy.card.data.source == "mnist"


def test_a_format_1_cards_resize_rule_comes_from_its_folder_source(trained, tmp_path) -> None:
    source = folder_source_name(*parse_folder_source("folder:/photos?fit=crop&size=28"))
    card = trained.read_json("run.json")
    del card["format"], card["preprocessing"]["fit"]  # as cnnkit wrote cards before formats
    card["data"] = {**card["data"], "source": source}
    copy = Run(tmp_path)
    copy.write_json("run.json", card)
    assert copy.card.preprocessing.fit == "crop"
    assert copy.read_json("run.json") == card  # read, migrated in memory, never rewritten


def test_top_k_is_capped_at_the_class_count_and_checked(predictor, test_pngs) -> None:
    files, _ = image_files([test_pngs / "0"])
    assert len(predictor.predict(files[:2], top_k=50)[0].top) == 10
    with pytest.raises(ConfigError, match="top-k must be at least 1"):
        predictor.predict(files[:1], top_k=0)


def test_unreadable_files_named_directly_are_errors(predictor, tmp_path) -> None:
    text = f.write(tmp_path / "notes.png", b"not an image at all")
    with pytest.raises(DataError, match=r"notes\.png: not a readable image"):
        predictor.predict_files([text], strict={text})
    result = predictor.predict_files([text])
    assert result.predictions == [] and "not a readable image" in result.skipped[0].reason
    with pytest.raises(DataError, match="no such file or folder"):
        image_files([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.png").write_bytes(f.png(np.zeros((28, 28), np.uint8)))
    with pytest.raises(DataError, match="holds no files"):
        image_files([tmp_path / "empty"])


def test_predictions_saved_as_csv_and_json(predictor, test_pngs, tmp_path) -> None:
    files, _ = image_files([test_pngs / "1"])
    predictions = predictor.predict(files[:3], top_k=3)
    save_predictions(tmp_path / "p.json", predictions)
    data = json.loads((tmp_path / "p.json").read_text())
    assert [d["predicted"] for d in data] == [p.best.name for p in predictions]
    assert len(data[0]["top"]) == 3
    save_predictions(tmp_path / "p.csv", predictions)
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "file,predicted,probability,class_2,probability_2,class_3,probability_3"
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        save_predictions(tmp_path / "p.txt", predictions)


def test_cli_prints_top_k_and_json(trained, test_pngs) -> None:
    seven = sorted((test_pngs / "7").iterdir())[0]
    result = cnnkit("predict", str(trained.path), str(seven), "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["file"] == str(seven) and len(row["top"]) == 2
    bad = cnnkit("predict", str(trained.path), str(seven), "--out", "x.txt")
    assert bad.returncode == 1 and "name a .csv or .json file" in bad.stderr


def test_not_a_run_directory(tmp_path) -> None:
    with pytest.raises(RunError, match="not a cnnkit run directory"):
        Predictor(tmp_path)
