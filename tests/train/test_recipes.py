"""Recipes: every one is well formed, builds when its data and model exist, fails clearly
when they do not, and the quickest trains end to end."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cnnkit.augment import parse_augment
from cnnkit.data.sources import SOURCES
from cnnkit.errors import ConfigError, ModelError
from cnnkit.models.registry import build_model, list_models
from cnnkit.train.job import TrainConfig, run_training
from cnnkit.train.losses import make_loss
from cnnkit.train.optim import make_optimizer
from cnnkit.train.recipes import RECIPES, get_recipe, recipe_settings
from cnnkit.train.schedules import Schedule

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}  # others: 32x32 colour


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_or_says_what_is_missing(name: str) -> None:
    recipe = get_recipe(name)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(recipe.settings) <= fields, set(recipe.settings) - fields
    models = {entry.name for entry in list_models()}
    data, model = recipe.settings["data"], recipe.settings["model"]
    if data not in SOURCES or model not in models:
        with pytest.raises((ConfigError, ModelError), match=f"recipe '{name}' cannot run here"):
            TrainConfig.from_recipe(name)
        pytest.skip(f"{name}: data source {data!r} or model {model!r} has not landed yet")
    config = TrainConfig.from_recipe(name)
    net = build_model(
        config.model, input_shape=SHAPES.get(data, (3, 32, 32)), **config.model_options
    )
    make_optimizer(
        config.optimizer,
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    Schedule.parse(config.schedule)
    make_loss(config.loss, label_smoothing=config.label_smoothing)
    parse_augment(config.augment)
    assert config.recipe == name and config.epochs >= 1


def test_recipe_settings_are_overridable() -> None:
    config = TrainConfig.from_recipe("mnist-best", epochs=1, seed=3)
    assert config.epochs == 1 and config.seed == 3 and config.model == "fastnet"
    assert recipe_settings("mnist-best")["epochs"] != 1  # the recipe itself is untouched


def test_unknown_recipes_and_settings() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown recipe 'mnist-fats'\. Did you mean 'mnist-fast'"
    ):
        get_recipe("mnist-fats")
    with pytest.raises(ConfigError, match="unknown training setting"):
        TrainConfig.from_recipe("mnist-fast", learning_rate=0.1)


def test_the_fast_recipe_trains_end_to_end(tiny_mnist_dir, tmp_path) -> None:
    result = run_training(
        TrainConfig.from_recipe(
            "mnist-best",
            data_dir=str(tiny_mnist_dir),
            epochs=1,
            batch_size=32,  # 38 steps: enough for the one-cycle schedule to get somewhere
            device="cpu",
            runs_dir=str(tmp_path),
        )
    )
    card = result.run.card
    assert card.config["recipe"] == "mnist-best" and card.status == "finished"
    assert card.data.sizes == {"train": 1200, "test": 300}  # val_size 0: all of train
    training = card.training
    assert training["precision"] in ("fp32", "bf16") and training["interrupted"] is False
    assert training["epochs_run"] == 1 and training["monitor"] == "loss"
    assert result.metrics["test"]["accuracy"] > 0.6
    assert torch.isfinite(torch.tensor(result.history[0]["loss"]))
