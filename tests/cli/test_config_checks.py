"""A training start is checked whole before data is loaded or a run folder made; a folder
path is a data source; ``data check`` exits 1 on errors; option values read numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import ConfigError
from cnnkit.options import parse_settings, parse_value
from tests.cli.test_usage import in_process


def noise_folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    """Class folders of distinct random grey PNGs (no two alike)."""
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(image).save(root / name / f"{i:02d}.png")
    return root


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e-4", 1e-4),
        ("1E+3", 1000.0),
        (".5", 0.5),
        ("-3", -3),
        ("10", 10),
        ("true", True),
        ("val_loss", "val_loss"),
        ("[32, 64]", [32, 64]),
        ("[", "["),  # not YAML: the text itself
    ],
)
def test_option_values_read_numbers_as_numbers(value, expected) -> None:
    parsed = parse_value(value)
    assert parsed == expected and type(parsed) is type(expected)


def test_option_settings_need_key_value() -> None:
    assert parse_settings("factor=0.5,patience=10,min_delta=1e-4") == {
        "factor": 0.5,
        "patience": 10,
        "min_delta": 1e-4,
    }
    with pytest.raises(ConfigError, match="'patience' must look like key=value"):
        parse_settings("patience")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "adamax"], "unknown optimizer 'adamax'. Did you mean 'adam'?"),
        (["--precision", "fp8"], "unknown precision 'fp8'"),
        (["--schedule", "cosin"], "unknown schedule 'cosin'. Did you mean 'cosine'?"),
        (["--schedule", "step:every=x"], "schedule option 'every=x' needs a number"),
        (["--loss", "mae"], "unknown loss 'mae'. Did you mean 'mse'?"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--model", "lenett"], "unknown model 'lenett'. Did you mean 'lenet'"),
        (["--data", "mnits"], "unknown data source 'mnits'. Did you mean 'mnist'?"),
        (["--data", "no/such/folder"], "unknown data source 'no/such/folder'"),
        (["--augment", "rotat:p=0.5"], "unknown augmentation 'rotat'"),
        (["--reduce-lr", "factor=2"], "factor must be between 0 and 1"),
        (["--reduce-lr", "patience=ten"], "option patience='ten': needs a whole number"),
        (["--early-stopping", "patiense=3"], "no option 'patiense'. Did you mean 'patience'?"),
        (["--early-stopping", "monitor=val_acc"], "Did you mean 'val_accuracy'?"),
        (["--early-stopping", "monitor=val_loss", "--val-size", "0"], "needs validation data"),
        (["--momentum", "0.9"], "adam has no momentum setting"),
        (["--group-by", "a("], "not a valid regular expression"),
        (["--name", "a/b"], "run name 'a/b' may hold only"),
    ],
)
def test_a_bad_setting_fails_at_once_and_leaves_nothing(args, message, tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    code, out, err = in_process(["train", *args, "--runs-dir", str(runs)], capsys)
    assert code == 1
    assert out == ""  # not even "training lenet on mnist..."
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message in err, err
    assert not runs.exists()


def test_a_taken_run_name_is_refused_before_the_data_is_read(tmp_path, capsys) -> None:
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    code, out, err = in_process(
        ["train", "--runs-dir", str(tmp_path / "runs"), "--name", "mine"], capsys
    )
    assert code == 1 and out == "" and "already exists; choose another --name" in err


def test_finetune_checks_its_settings_before_anything(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    for args, message in (
        (["--optimizer", "adamx"], "Did you mean 'adam'?"),
        (["--data", "fashion-mnst"], "Did you mean 'fashion-mnist'?"),
        (["--freeze", "some"], "--freeze 'some' is not understood"),
    ):
        code, out, err = in_process(["finetune", *args, "--runs-dir", str(runs)], capsys)
        assert code == 1 and out == "" and message in err, err
    assert not runs.exists()


def test_the_readmes_reduce_lr_and_a_folder_path_train(tmp_path, capsys) -> None:
    """The README's ``--reduce-lr factor=0.5,patience=10,min_delta=1e-4`` (a number with an
    exponent) trains, on a folder given as a plain path."""
    photos = noise_folder(tmp_path / "photos", {"a": 15, "b": 15})
    runs = tmp_path / "runs"
    code, _, err = in_process(
        ["train", "--data", str(photos), "--epochs", "1", "--batch-size", "8", "--device", "cpu",
         "--reduce-lr", "factor=0.5,patience=10,min_delta=1e-4", "--early-stopping",
         "patience=3,restore_best_weights=true", "--runs-dir", str(runs), "--name", "r",
         "--no-report"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    card = json.loads((runs / "r" / "run.json").read_text())
    assert card["config"]["reduce_lr"] == {"factor": 0.5, "patience": 10, "min_delta": 1e-4}
    assert card["config"]["early_stopping"] == {"patience": 3, "restore_best_weights": True}
    # recorded as folder:PATH (a plain folder gets the auto setup: it records the size it chose)
    assert card["data"]["source"].startswith(f"folder:{photos}")
    assert card["config"]["recipe"] == "auto"
    assert card["data"]["sizes"]["test"] == 6


def test_a_refused_start_inside_fit_removes_its_run_folder(tiny_mnist_dir, tmp_path) -> None:
    """What only ``fit`` can see (here a callback of the caller's monitoring a value the logs
    lack) still leaves no run folder behind."""
    from cnnkit.train.callbacks import EarlyStopping
    from cnnkit.train.job import TrainConfig, run_training

    config = TrainConfig(
        data_dir=str(tiny_mnist_dir),
        val_size=0,
        epochs=1,
        runs_dir=str(tmp_path / "runs"),
        name="gone",
        device="cpu",
    )
    with pytest.raises(ConfigError, match="monitors 'val_loss'"):
        run_training(config, callbacks=[EarlyStopping(monitor="val_loss")])
    assert not (tmp_path / "runs" / "gone").exists()


def test_data_check_exit_codes(tmp_path, capsys) -> None:
    clean = noise_folder(tmp_path / "clean", {"a": 10, "b": 10})
    code, out, _ = in_process(["data", "check", str(clean)], capsys)  # a plain path
    assert code == 0 and "0 error(s), 0 warning(s)" in out
    lopsided = noise_folder(tmp_path / "lopsided", {"a": 30, "b": 6})
    code, out, _ = in_process(["data", "check", str(lopsided)], capsys)
    assert code == 0 and "0 error(s), 3 warning(s)" in out and "[balance]" in out
    code, _, _ = in_process(["data", "check", str(lopsided), "--strict"], capsys)
    assert code == 1
