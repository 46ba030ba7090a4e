"""Each training setting is declared once, on its TrainConfig field: the command line's option,
its help and default, the run card's config and what reaches ``fit`` all come from there."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import typer
from typer.testing import CliRunner

from cnnkit.cli.main import app, main
from cnnkit.cli.params import Given, config_options, option_help
from cnnkit.train.config import TrainConfig, option_of, setting, shown_default
from cnnkit.train.loop import fit

# fields that are no option of `cnnkit train`, on purpose
RECORDED_ONLY = {
    "recipe": "the command's own --recipe chooses it",
    "channels_last": "automatic; set from Python only",
    "auto": "what the auto setup chose, recorded",
}


def _train_command():
    return typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]


def test_every_field_is_a_train_option_with_its_help_and_default() -> None:
    params = {p.name: p for p in _train_command().params}
    own = {"recipe", "resume", "report"}  # the command's own options
    for item in dataclasses.fields(TrainConfig):
        option = option_of(item)
        if option is None:
            assert item.name in RECORDED_ONLY, f"{item.name} declares no option"
            assert item.name not in params or item.name in own
            continue
        param = params[item.name]
        flags = [flag for text in option.flags for flag in text.split("/")]
        assert sorted(param.opts + param.secondary_opts) == sorted(flags)
        assert param.help == option_help(item)
        assert param.default is None  # not given: the recipe's, the auto setup's or the field's
        default = shown_default(item)
        if default is not None:
            assert f"[default: {default}]" in param.help
    fields = {item.name for item in dataclasses.fields(TrainConfig)}
    assert set(params) - fields == own - fields


def test_help_shows_each_default_from_the_field(capsys) -> None:
    try:
        main(["train", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Passes over the training set [default: 10]." in text
    assert "Learning rate [default: 0.001]." in text
    assert "--momentum FLOAT SGD/RMSprop momentum [default: 0]." in text
    assert "auto, cpu or cuda[:N] [default: auto]." in text


def test_fit_options_are_fit_keywords_with_the_config_values() -> None:
    keywords = inspect.signature(fit).parameters
    config = TrainConfig(epochs=3, lr=0.5, momentum=0.9, seed=7, precision="fp32")
    options = config.fit_options()
    for name, value in options.items():
        assert keywords[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert value == getattr(config, name)
    assert {"epochs", "batch_size", "optimizer", "lr", "seed", "precision"} <= set(options)
    # the job passes these itself: resolved from the data or the config
    assert not {"loss", "augment", "device", "data"} & set(options)


def test_every_field_reaches_the_run_card(trained) -> None:
    card = trained.card.config
    assert set(card) == {item.name for item in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_dict(card).record_filters == [0, 1]


def test_the_command_line_values_are_converted_by_the_field() -> None:
    raw = {name: None for name in (f.name for f in dataclasses.fields(TrainConfig))}
    raw.update(
        val_size=5000.0,
        test_size=0.1,
        model_options=["init=normal", "width=8"],
        augment=["none"],
        early_stopping="patience=3",
        reduce_lr="default",
        record_filters="all",
        epochs=2,
    )
    given = Given.collect(TrainConfig, raw)
    assert given.values == {
        "val_size": 5000,
        "test_size": 0.1,
        "model_options": {"init": "normal", "width": 8},
        "augment": [],
        "early_stopping": {"patience": 3},
        "reduce_lr": {},
        "epochs": 2,
    }
    config = given.complete(TrainConfig(**given.values))
    assert config.record_filters == [0, 1, 2]


def test_a_new_setting_is_one_declaration() -> None:
    """What adding an option takes: a field with its option; the command, its help, the
    parsing and the value given follow from it."""

    @dataclass
    class Config:
        epochs: int = setting(10, "--epochs", min=1, help="Passes.")
        clip: float = setting(
            0.0, "--grad-clip", metavar="NORM", help="Clip the gradient norm to NORM (0: off)."
        )

    seen: list[Config] = []

    @config_options(Config, after="verbose")
    def command(verbose: bool = typer.Option(False, "--verbose"), *, given: Given) -> None:
        seen.append(Config(**given.values))

    tiny = typer.Typer(rich_markup_mode=None)
    tiny.command()(command)
    runner = CliRunner()
    result = runner.invoke(tiny, ["--grad-clip", "2.5"])
    assert result.exit_code == 0, result.output
    assert seen == [Config(epochs=10, clip=2.5)]
    help_text = " ".join(runner.invoke(tiny, ["--help"]).output.split())
    assert "--grad-clip NORM Clip the gradient norm to NORM (0: off) [default: 0]." in help_text
    assert "Passes [default: 10]. [x>=1]" in help_text
    bad = runner.invoke(tiny, ["--epochs", "0"])
    assert bad.exit_code == 2
