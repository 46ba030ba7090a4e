"""``cnnkit train`` options of the training engine, and ``cnnkit recipes``."""

from __future__ import annotations

import json
import re

from tests.cli.test_cli import cnnkit


def test_recipes_lists_speed_and_textbook_recipes() -> None:
    text = cnnkit("recipes").stdout
    for name in ("mnist-fast", "mnist-best", "fashion-best", "cifar10-fast", "textbook-lenet"):
        assert name in text


def test_resume_takes_only_epochs_and_device(tmp_path) -> None:
    result = cnnkit("train", "--resume", str(tmp_path), "--lr", "0.1", check=False)
    assert result.returncode == 1 and "only --epochs and --device" in result.stderr


def test_unknown_recipe_fails_with_a_suggestion() -> None:
    result = cnnkit("train", "--recipe", "mnist-bset", check=False)
    assert result.returncode == 1 and "Did you mean 'mnist-best'" in result.stderr


def test_train_options_reach_the_run_card(tiny_mnist_dir, tmp_path) -> None:
    out = cnnkit(
        "train",
        "--data-dir",
        str(tiny_mnist_dir),
        "--val-size",
        "200",
        "--model",
        "fastnet_tiny",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--nesterov",
        "--schedule",
        "cosine:warmup=1",
        "--label-smoothing",
        "0.1",
        "--augment",
        "translate:1",
        "--early-stopping",
        "patience=3,monitor=val_accuracy",
        "--reduce-lr",
        "factor=0.5,patience=1",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "opts",
        "--no-report",
    ).stdout
    # the set-up comes before training: device, precision, data sizes, parameters
    setup = re.search(r"device cpu \(\d+ threads?\) · precision fp32 · data 1,000 train", out)
    assert setup and setup.start() < out.index("Epoch 1/1  loss"), out
    assert "200 val, 300 test" in out and "parameters" in out
    card = json.loads((tmp_path / "opts" / "run.json").read_text())
    config = card["config"]
    assert config["nesterov"] is True and config["schedule"] == "cosine:warmup=1"
    assert config["augment"] == ["translate:p=1,pixels=1,fill=black"]  # resolved
    assert config["early_stopping"] == {"patience": 3, "monitor": "val_accuracy"}
    assert card["training"]["monitor"] == "val_accuracy" and card["training"]["precision"] == "fp32"
    assert (tmp_path / "opts" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "opts" / "checkpoints" / "best.pt").is_file()


def test_augment_none_turns_off_a_recipes_augmentation(tiny_mnist_dir, tmp_path) -> None:
    common = ["--data-dir", str(tiny_mnist_dir), "--epochs", "1", "--runs-dir", str(tmp_path)]
    common += ["--recipe", "mnist-best", "--no-report"]
    cnnkit("train", *common, "--name", "kept")
    cnnkit("train", *common, "--name", "off", "--augment", "none")
    kept, off = (json.loads((tmp_path / n / "run.json").read_text()) for n in ("kept", "off"))
    assert kept["config"]["augment"] and kept["config"]["augment"][0].startswith("translate")
    assert off["config"]["augment"] == []
