"""The auto setup's choices (pure: data facts in, settings and reasons out), class weights,
and ``cnnkit train --data folder:PATH`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnkit.errors import ConfigError, DataError
from cnnkit.train.auto import (
    MAX_EPOCHS,
    MIN_EPOCHS,
    MIN_STEPS,
    MIN_VAL_TO_STOP,
    DataFacts,
    choose_finetune,
    choose_setup,
    read_facts,
    wants_auto,
)
from cnnkit.train.config import auto_config
from cnnkit.train.losses import class_weights, make_loss
from tests.cli.test_cli import cnnkit


def facts(
    per_class: tuple[int, ...] = (114, 113, 113),
    *,
    size: tuple[int, int] = (64, 64),
    channels: int = 3,
    resizable: bool = True,
    val_images: int = 40,
) -> DataFacts:
    classes = tuple(f"c{i}" for i in range(len(per_class)))
    return DataFacts(
        source="folder:/data/shapes",
        classes=classes,
        images_per_class=tuple(round(n / 0.7) for n in per_class),
        train_per_class=per_class,
        val_images=val_images,
        size=size,
        channels=channels,
        resizable=resizable,
    )


def reasons(setup) -> dict[str, str]:
    return dict(setup.reasons)


def test_small_colour_folder_gets_a_residual_net_enough_steps_and_flips() -> None:
    setup = choose_setup(facts())
    s = setup.settings
    assert s["model"] == "fastnet" and "data" not in s  # 64x64 is within the cap
    assert s["model_options"] == {"width": 48} and "width 48" in reasons(setup)["model"]
    steps = -(-340 // s["batch_size"])
    assert s["epochs"] == min(MAX_EPOCHS, -(-MIN_STEPS // steps))  # 340 images: 100 of 11
    assert s["augment"][0] == "flip" and s["augment"][1].startswith("translate")
    assert s["augment"][2] == "erase:p=0.5" and "erase a random box" in reasons(setup)["augment"]
    assert "class_weight" not in s
    said = reasons(setup)
    assert (
        "340 training images, 3 classes (113-114 each)" in said["data"]
        and "64x64 colour" in said["data"]
    )
    few = reasons(choose_setup(facts((40,) * 8)))  # few colour pictures per class
    assert "cnnkit finetune --data folder:/data/shapes" in few["try"]


def test_large_pictures_are_read_at_a_capped_size_keeping_their_shape() -> None:
    setup = choose_setup(facts(size=(480, 640)))
    assert setup.settings["data"] == "folder:/data/shapes?size=48x64"
    assert "48x64, not 480x640" in reasons(setup)["size"]
    # small pictures are read larger: at 12x12 fastnet's last stage is 1x1 (and BatchNorm fails
    # on a last batch of one image); at 28x28 its last pool drops a row and a column
    tiny = choose_setup(facts(size=(12, 24)))
    assert tiny.settings["data"] == "folder:/data/shapes?size=32x64"
    assert "last stage sees 1x3 at 12x24, 4x8 at 32x64" in reasons(tiny)["size"]
    fashion = choose_setup(facts(size=(28, 28), channels=1))
    assert fashion.settings["data"] == "folder:/data/shapes?size=32x32"
    assert "32x32, not 28x28" in reasons(fashion)["size"]
    assert "data" not in choose_setup(facts(size=(32, 48))).settings  # within both bounds
    # a size the user chose in the source is kept
    assert "data" not in choose_setup(facts(size=(480, 640), resizable=False)).settings


def test_grey_pictures_are_shifted_but_not_mirrored() -> None:
    setup = choose_setup(facts(size=(28, 28), channels=1))
    assert setup.settings["augment"][0] == "translate:2"
    assert "erase:p=0.5" in setup.settings["augment"]
    assert not any(step.startswith("flip") for step in setup.settings["augment"])
    assert "no flips" in reasons(setup)["augment"]
    assert "try" not in reasons(setup)  # fine-tuning is suggested for colour photos only


def test_imbalanced_classes_get_weighted_cross_entropy_and_are_named() -> None:
    setup = choose_setup(facts((300, 150, 20)))
    assert setup.settings["class_weight"] == "balanced"
    assert "'c0' 300 vs 'c2' 20 images (15.0x)" in reasons(setup)["balance"]
    assert "class_weight" not in choose_setup(facts((110, 100, 90))).settings  # within 1.5x


def test_epochs_follow_the_number_of_steps_within_bounds() -> None:
    tiny = choose_setup(facts((4, 4)))
    assert tiny.settings["epochs"] == MAX_EPOCHS  # 1 step per epoch: capped
    large = choose_setup(facts((20000,) * 10, size=(32, 32)))
    assert large.settings["batch_size"] == 64 and large.settings["epochs"] == MIN_EPOCHS
    middle = choose_setup(facts((100,) * 10))  # 1000 images, 32 steps per epoch
    assert middle.settings["epochs"] == -(-MIN_STEPS // 32)


def test_training_is_sgd_with_nesterov_momentum_and_weight_decay_said_in_the_printout() -> None:
    for setup in (choose_setup(facts()), choose_setup(facts(size=(28, 28), channels=1))):
        s = setup.settings
        assert (s["optimizer"], s["momentum"], s["nesterov"]) == ("sgd", 0.9, True)
        assert s["weight_decay"] > 0 and s["schedule"].startswith("onecycle")
        said = reasons(setup)["optimizer"]
        assert "Nesterov" in said and f"weight decay {s['weight_decay']:g}" in said
        assert f"peaking at lr {s['lr']:g}" in said


def test_early_stopping_only_on_a_validation_split_large_enough_to_tell_epochs_apart() -> None:
    large = choose_setup(facts((2000,) * 5, val_images=MIN_VAL_TO_STOP))
    stopping = large.settings["early_stopping"]
    assert stopping == {"monitor": "val_loss", "patience": 5, "restore_best_weights": True}
    assert "after 5 epochs without a better val_loss" in reasons(large)["stopping"]
    # 50 validation images: one image is 2 points, noise that would stop a one-cycle run
    # half-way at a high learning rate; the schedule runs to its end instead
    small = choose_setup(facts(val_images=50))
    assert "early_stopping" not in small.settings
    assert (
        "50 validation images are too few to stop on (one image is 2 points"
        in (reasons(small)["stopping"])
    )
    none = choose_setup(facts(val_images=0))
    assert "early_stopping" not in none.settings
    assert "no validation split" in reasons(none)["stopping"]


def test_classes_too_small_to_split_are_refused_by_name() -> None:
    small = DataFacts(
        source="folder:/d",
        classes=("cat", "dog", "emu"),
        images_per_class=(40, 1, 2),
        train_per_class=(28, 1, 1),
        val_images=3,
        size=(32, 32),
        channels=3,
    )
    with pytest.raises(DataError, match=r"'dog' \(1 image\), 'emu' \(2 images\) have fewer"):
        choose_setup(small)
    with pytest.raises(DataError, match="at least 2 class"):
        choose_setup(facts((50,)))


def test_finetune_defaults_follow_image_size_and_data_size() -> None:
    assert choose_finetune(facts(size=(28, 28), channels=1)).input_size == 96
    assert choose_finetune(facts(size=(100, 150))).input_size == 160
    assert choose_finetune(facts(size=(600, 800))).input_size == 224
    few, many = choose_finetune(facts((10, 10))), choose_finetune(facts((5000,) * 10))
    assert few.epochs == 30 and many.epochs == 5


def test_balanced_class_weights_and_the_weighted_loss() -> None:
    assert class_weights("balanced", [30, 10]) == pytest.approx([40 / 60, 40 / 20])
    assert class_weights("balanced", [5, 0])[1] == 0.0
    with pytest.raises(ConfigError, match="unknown class weight 'even'"):
        class_weights("even", [1, 2])
    logits, labels = torch.randn(6, 2), torch.tensor([0, 0, 0, 1, 1, 0])
    weights = class_weights("balanced", [4, 2])
    loss = make_loss("cross_entropy", class_weight=weights)(logits, labels)
    per = F.cross_entropy(logits, labels, reduction="none")
    w = torch.tensor(weights)[labels]
    assert float(loss) == pytest.approx(float((per * w).sum() / w.sum()))
    with pytest.raises(ConfigError, match="cross_entropy loss, not 'mse'"):
        make_loss("mse", class_weight=weights)


def test_auto_is_the_default_for_a_folder_without_a_model(tmp_path) -> None:
    assert wants_auto(None, {"data": "folder:x"})
    assert not wants_auto(None, {"data": "folder:x", "model": "lenet"})
    assert not wants_auto(None, {"data": "mnist"}) and not wants_auto(None, {})
    assert wants_auto(None, {"data": str(tmp_path)})  # a folder's plain path is a folder
    assert wants_auto("auto", {"data": "fashion-mnist", "model": "lenet"})
    assert not wants_auto("mnist-best", {"data": "folder:x"})


def write_folder(root: Path, counts: dict[str, int], *, side: int = 16) -> Path:
    """Class folders of small colour PNGs, each class its own colour plus noise."""
    rng = np.random.default_rng(0)
    for index, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
            pixels[..., index % 3] += 180
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_auto_config_reads_the_folder_and_lets_given_options_win(tmp_path) -> None:
    folder = write_folder(tmp_path / "pics", {"red": 30, "green": 10})
    found = read_facts(f"folder:{folder}")
    assert found.images_per_class == (10, 30)  # classes sorted: green, red
    assert sum(found.train_per_class) < 40 and found.val_images > 0 and found.channels == 3
    config, setup, overridden = auto_config({"data": f"folder:{folder}", "epochs": 3})
    assert config.epochs == 3 and overridden == ["epochs"]
    assert config.model == "fastnet" and config.recipe == "auto"
    assert config.class_weight == "balanced"  # 3x imbalance
    assert config.auto["chosen"]["epochs"] == setup.settings["epochs"] != 3
    from cnnkit.train.job import TrainConfig

    assert TrainConfig.from_recipe("auto", data=f"folder:{folder}", epochs=3) == config
    # the chosen width is fastnet's: another model gets only the options given for it;
    # options given for fastnet go on top of the chosen ones
    lenet, _, _ = auto_config({"data": f"folder:{folder}", "model": "lenet"})
    assert lenet.model == "lenet" and lenet.model_options == {}
    tta, _, _ = auto_config({"data": f"folder:{folder}", "model_options": {"tta_flip": True}})
    assert tta.model == "fastnet" and tta.model_options == {"width": 48, "tta_flip": True}
    assert (
        "--model-option as you gave"
        in choose_setup(read_facts(f"folder:{folder}")).lines(["model_options"])[-1]
    )


def test_finetune_on_a_folder_gets_input_size_and_epochs_unless_given(tmp_path) -> None:
    from cnnkit.train.auto import finetune_setup
    from cnnkit.transfer.finetune import FinetuneConfig

    folder = write_folder(tmp_path / "pics", {"red": 12, "green": 12})
    config, lines = finetune_setup(FinetuneConfig(data=f"folder:{folder}"), set())
    assert config.input_size == 96 and config.epochs == 30  # 16x16 pictures, one step an epoch
    assert any("96x96" in line for line in lines)
    mine, _ = finetune_setup(FinetuneConfig(data=f"folder:{folder}", epochs=2), {"epochs"})
    assert mine.epochs == 2 and mine.input_size == 96
    fashion = FinetuneConfig(data="fashion-mnist")
    assert finetune_setup(fashion, set()) == (fashion, [])


def test_cnnkit_train_on_a_folder_chooses_says_why_and_records_it(tmp_path) -> None:
    folder = write_folder(tmp_path / "pics", {"blue": 8, "green": 8, "red": 24})
    result = cnnkit(
        "train", "--data", f"folder:{folder}", "--epochs", "2", "--runs-dir",
        str(tmp_path / "runs"), "--name", "auto", "--no-report", "--device", "cpu",
    )  # fmt: skip
    text = result.stdout
    chosen = text.index("auto setup (--recipe auto)")
    assert chosen < text.index("training fastnet on")  # said before training
    for topic in ("data", "model", "epochs", "stopping", "augment", "balance", "yours"):
        assert f"\n  {topic}" in text[chosen:], topic
    assert "--epochs as you gave" in text and "test accuracy" in text
    card = json.loads((tmp_path / "runs" / "auto" / "run.json").read_text())
    assert card["config"]["recipe"] == "auto" and card["config"]["class_weight"] == "balanced"
    assert card["config"]["auto"]["chosen"]["model"] == "fastnet"
    assert card["class_weights"]["red"] < card["class_weights"]["blue"]


def test_cnnkit_train_refuses_a_one_image_class_before_making_a_run(tmp_path) -> None:
    folder = write_folder(tmp_path / "pics", {"cat": 10, "dog": 1})
    runs = tmp_path / "runs"
    result = cnnkit("train", "--data", f"folder:{folder}", "--runs-dir", str(runs), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'dog' (1 image) have fewer than 3 images" in result.stderr
    assert not runs.exists()


def test_class_weight_is_checked_before_a_run_folder_is_made(tmp_path) -> None:
    runs = tmp_path / "runs"
    result = cnnkit(
        "train", "--model", "lenet", "--class-weight", "even", "--runs-dir", str(runs),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "unknown class weight 'even'" in result.stderr
    assert "Traceback" not in result.stderr and not runs.exists()


def test_transfer_on_a_folder_gets_an_input_size_for_imagenet_backbones(tmp_path) -> None:
    from cnnkit.train.auto import transfer_input_size

    folder = write_folder(tmp_path / "pics", {"red": 12, "green": 12}, side=40)
    size, lines = transfer_input_size(str(folder), ["efficientnet_lite0"])  # a plain path too
    assert size == 96 and "input     96x96: the images are 40x40" in lines[1]
    assert transfer_input_size(f"folder:{folder}", ["efficientnet_lite0", "run:x"]) == (None, [])
    assert transfer_input_size("fashion-mnist", ["efficientnet_lite0"]) == (None, [])
