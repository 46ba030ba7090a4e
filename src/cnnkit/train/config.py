"""The settings of a training job, each declared once.

A :class:`TrainConfig` field is the one place a setting is written: its type, its default,
and (in the field's :class:`Option`) how the command line spells it, its help text, metavar
and lowest value, how the text typed becomes the value, and whether it reaches
:func:`~cnnkit.train.loop.fit` under its own name. ``cnnkit train``'s options are built from
these fields (:mod:`cnnkit.cli.params`), the run card records :func:`dataclasses.asdict` of
the config, and :meth:`TrainConfig.fit_options` is what the job passes to ``fit``. Adding a
training option is one field here plus its use.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cnnkit.errors import ConfigError, did_you_mean
from cnnkit.train.auto import AUTO, AutoSetup, choose_setup, read_facts

if TYPE_CHECKING:
    from torch import nn

    from cnnkit.train.callbacks import Callback


C = TypeVar("C")


@dataclass(frozen=True)
class Option:
    """How a setting is spelt on the command line.

    Attributes:
        flags: the option's names (``"--epochs", "-e"``); ``"--x/--no-x"`` for a switch.
        help: the help text; a shown default is put before its final full stop.
        metavar: what the value looks like in the help (None: from its type).
        min: the lowest value typer accepts (shown as ``[x>=N]``).
        type: the type typer parses, when it differs from the field's (e.g. ``float`` for a
            count-or-fraction, ``str`` for options written ``key=value,...``).
        parse: turns the parsed value into the field's value (e.g. ``"0.1"`` -> 0.1).
        default_text: what ``[default: ...]`` says; None: the field's default, when it is
            not None, False or empty; ``""``: nothing.
        after: turns the parsed value into the field's value once the rest of the config is
            known (``--record-filters all`` needs the epochs a recipe chose).
    """

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    min: int | None = None
    type: Any = None
    parse: Callable[[Any], Any] | None = None
    default_text: str | None = None
    after: Callable[[Any, Any], Any] | None = None


def setting(
    default: Any,
    *flags: str,
    help: str = "",
    fit: bool = False,
    metavar: str | None = None,
    min: int | None = None,
    type: Any = None,
    parse: Callable[[Any], Any] | None = None,
    default_text: str | None = None,
    after: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """A config field declared once: its default (a list or dict is copied for each
    config), its command-line option (none without ``flags``: recorded only) and whether
    :func:`~cnnkit.train.loop.fit` takes it under its own name (``fit``)."""
    option = (
        Option(tuple(flags), help, metavar, min, type, parse, default_text, after)
        if flags
        else None
    )
    return _field(default, {"option": option, "fit": fit})


def same_as(config: type[Any], name: str) -> Any:
    """A field declared as ``config``'s field ``name`` is (default, option and all): a
    setting two jobs share, e.g. ``device: str = same_as(TrainConfig, "device")``."""
    item = {f.name: f for f in dataclasses.fields(config)}[name]
    return _field(default_of(item), item.metadata)


def _field(default: Any, metadata: Mapping[str, Any]) -> Any:
    """A dataclass field with ``default`` (a list or dict copied for each config)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def option_of(item: dataclasses.Field[Any]) -> Option | None:
    """The command-line option a config field declares, or None (recorded only)."""
    return item.metadata.get("option")


def default_of(item: dataclasses.Field[Any]) -> Any:
    """A field's default value (a fresh one for a list or dict)."""
    factory = item.default_factory
    return factory() if callable(factory) else item.default


def shown_default(item: dataclasses.Field[Any]) -> str | None:
    """What a field's option shows as ``[default: ...]``, or None when nothing is shown:
    the option's ``default_text``, else the default unless it is None, False or empty."""
    option = option_of(item)
    if option is not None and option.default_text is not None:
        return option.default_text or None
    value = default_of(item)
    if value is None or value is False or value == [] or value == {}:
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- the command line's text -> setting values ---------------------------------------------


def count_or_fraction(value: float | None) -> int | float | None:
    """A split size from the command line: ``5000`` -> 5000 (a count), ``0.1`` -> 0.1."""
    return None if value is None else (int(value) if value >= 1 else value)


def _model_options(values: list[str]) -> dict[str, Any]:
    from cnnkit.options import parse_pairs

    return parse_pairs(values, what="--model-option")


def _augment(values: list[str]) -> list[str]:
    """``--augment`` steps; ``none`` alone turns off a recipe's augmentation."""
    return [] if values == ["none"] else values


def callback_options(text: str) -> dict[str, Any]:
    """``"patience=5,monitor=val_accuracy"`` -> options dict; ``"default"`` -> ``{}``."""
    from cnnkit.options import parse_settings

    if text.strip() in ("", "default", "on"):
        return {}
    return parse_settings(text)


def _filter_epochs(text: str, config: TrainConfig) -> list[int]:
    from cnnkit.train.filters import parse_epochs

    return parse_epochs(text, config.epochs)


# -- the config --------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything a training job needs; defaults reproduce the textbook LeNet on MNIST.

    Each field is declared once, with its command-line option (:func:`setting`); the fields
    stand in the order ``cnnkit train --help`` lists them.

    Attributes:
        recipe: the recipe these settings started from, if any (recorded only; the command's
            ``--recipe`` chooses it).
        data: data source name (``cnnkit datasets``).
        data_dir: read the source's files from this folder only.
        model: registry name (``cnnkit models``), a model spec file (``.yaml``/``.json``), a
            spec mapping, or a ``cnnkit.layers.Model`` built in Python (trained in place).
        model_options: extra options for the model builder (e.g. ``{"init": "normal"}``).
        epochs: passes over the training split.
        batch_size: samples per optimizer step.
        optimizer: ``sgd``, ``adam``, ``adamw``, ``rmsprop`` or ``adagrad``.
        lr: (base) learning rate.
        momentum: SGD/RMSprop momentum.
        nesterov: Nesterov momentum (SGD).
        weight_decay: L2 penalty (decoupled for ``adamw``).
        schedule: learning-rate schedule, e.g. ``constant``, ``cosine:warmup=1``.
        loss: ``cross_entropy``, ``binary_cross_entropy`` or ``mse``.
        label_smoothing: probability mass spread over all classes.
        augment: training-time augmentation: spec strings (``["rotate:p=0.5,max=15",
            "translate:2"]``) or a YAML/JSON spec file (see :mod:`cnnkit.augment.spec`); the
            run card records the resolved steps.
        early_stopping: EarlyStopping options (``{"patience": 5}``) or None for none.
        reduce_lr: ReduceLROnPlateau options or None for none.
        class_weight: ``balanced`` weighs each class's cross-entropy by the inverse of its
            share of the training split (the run card records the weights); None = equal.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the training forward pass.
        channels_last: NHWC layout; None = automatic (not a command-line option).
        val_size: validation samples held out of train (count or fraction; None = source
            default, 0 = none).
        test_size: test samples held out of train for sources without a test part (a
            folder without test/): count or fraction; None = source default (0.2).
        group_by: regular expression naming each sample's group in its id (file path);
            a group is never divided between train, validation and test.
        split_file: reuse the split of this split file or run directory (its
            ``split.json``) instead of making one.
        seed: seeds the split, the initial weights and the shuffling.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        runs_dir: parent folder of run directories.
        name: run directory name (default ``<model>-<data>-<time>``).
        record_filters: epochs after which to save the first convolution's filters into
            ``<run>/filters/`` (0 = before training; see ``cnnkit.train.filters``).
        auto: what the auto setup chose and why (:mod:`cnnkit.train.auto`; recorded only).
    """

    recipe: str | None = setting(None)
    data: str = setting(
        "mnist",
        "--data",
        "-d",
        metavar="SOURCE",
        help="Data source: a name (see `cnnkit datasets`), folder:PATH or a folder.",
    )
    data_dir: str | None = setting(
        None,
        "--data-dir",
        type=Path,
        parse=str,
        help="Read the data source's files from this folder only.",
    )
    model: str | Mapping[str, Any] | nn.Module = setting(
        "lenet",
        "--model",
        "-m",
        metavar="NAME|FILE",
        type=str,
        help="Model name (see `cnnkit models`) or a model spec file (.yaml/.yml/.json).",
    )
    model_options: dict[str, Any] = setting(
        {},
        "--model-option",
        "-o",
        metavar="KEY=VALUE",
        type=list[str],
        parse=_model_options,
        help="Model option, e.g. init=normal (repeatable).",
    )
    epochs: int = setting(
        10, "--epochs", "-e", min=1, fit=True, help="Passes over the training set."
    )
    batch_size: int = setting(100, "--batch-size", "-b", min=1, fit=True, help="Samples per step.")
    optimizer: str = setting(
        "adam",
        "--optimizer",
        metavar="NAME",
        fit=True,
        help="sgd, adam, adamw, rmsprop or adagrad.",
    )
    lr: float = setting(1e-3, "--lr", fit=True, help="Learning rate.")
    momentum: float = setting(0.0, "--momentum", fit=True, help="SGD/RMSprop momentum.")
    nesterov: bool = setting(
        False, "--nesterov/--no-nesterov", fit=True, help="Nesterov momentum (sgd)."
    )
    weight_decay: float = setting(0.0, "--weight-decay", fit=True, help="L2 penalty.")
    schedule: str = setting(
        "constant",
        "--schedule",
        metavar="NAME[:OPTIONS]",
        fit=True,
        help="LR schedule: constant, step, cosine or onecycle; options after ':' joined by "
        "',', from warmup (epochs), every, gamma, final, peak; e.g. cosine:warmup=1.",
    )
    # not `fit=True`: the job passes the loss it built (class weights) itself
    loss: str = setting(
        "cross_entropy",
        "--loss",
        metavar="NAME",
        help="cross_entropy, binary_cross_entropy or mse.",
    )
    label_smoothing: float = setting(
        0.0, "--label-smoothing", fit=True, help="Label smoothing, e.g. 0.1."
    )
    augment: list[str] = setting(
        [],
        "--augment",
        metavar="STEP|FILE",
        type=list[str],
        parse=_augment,
        help="Training-time augmentation, batched on the device: transforms like "
        "rotate:p=0.5,max=15 or translate:2 or flip or mixup:0.2 (repeatable; several in "
        "one with ';'), or a YAML/JSON spec file. `cnnkit augment "
        "--list` shows them all; `cnnkit augment SRC -a ... --preview-only` shows them. "
        "'none' turns off a recipe's augmentation.",
    )
    early_stopping: dict[str, Any] | None = setting(
        None,
        "--early-stopping",
        metavar="OPTIONS",
        type=str,
        parse=callback_options,
        help="Stop when the monitored value stalls. OPTIONS joined by ',': patience "
        "(epochs, default 0), monitor (val_loss), mode (auto), min_delta (0), "
        "restore_best_weights (false); e.g. patience=5,monitor=val_accuracy.",
    )
    reduce_lr: dict[str, Any] | None = setting(
        None,
        "--reduce-lr",
        metavar="OPTIONS",
        type=str,
        parse=callback_options,
        help="Lower the LR on a plateau. OPTIONS joined by ',': factor (default 0.1), "
        "patience (10 epochs), monitor (val_loss), mode (auto), min_delta (1e-4), "
        "cooldown (0), min_lr (0); e.g. factor=0.5,patience=10.",
    )
    class_weight: str | None = setting(
        None,
        "--class-weight",
        help="'balanced': weigh each class's loss by its inverse frequency (for imbalanced "
        "classes; the auto setup turns it on when classes are imbalanced).",
    )
    precision: str = setting(
        "auto",
        "--precision",
        metavar="NAME",
        fit=True,
        default_text="auto = bf16 where the CPU/GPU computes it natively",
        help="fp32, bf16 or fp16.",
    )
    compile: bool = setting(
        False,
        "--compile/--no-compile",
        fit=True,
        help="torch.compile the model (often slower on CPU).",
    )
    channels_last: bool | None = setting(None, fit=True)
    val_size: int | float | None = setting(
        None,
        "--val-size",
        metavar="N|FRACTION",
        type=float,
        parse=count_or_fraction,
        help="Validation samples held out of train: a count (5000) or fraction (0.1); "
        "default: the source's (MNIST 5000); 0 for none.",
    )
    test_size: int | float | None = setting(
        None,
        "--test-size",
        metavar="N|FRACTION",
        type=float,
        parse=count_or_fraction,
        help="Test samples held out for sources without a test part (a folder without "
        "test/): a count or fraction; default 0.2.",
    )
    group_by: str | None = setting(
        None,
        "--group-by",
        metavar="REGEX",
        help="Regular expression whose first (...) group names each sample's group in its "
        "file path; a group never spans train/val/test.",
    )
    split_file: str | None = setting(
        None,
        "--split-file",
        type=Path,
        parse=str,
        help="Reuse the split of a split.json or of a run directory (e.g. runs/NAME).",
    )
    seed: int = setting(
        0, "--seed", fit=True, help="Seeds the split, initial weights and shuffling."
    )
    device: str = setting("auto", "--device", metavar="DEVICE", help="auto, cpu or cuda[:N].")
    runs_dir: str = setting(
        "runs", "--runs-dir", type=Path, parse=str, help="Where run folders go."
    )
    name: str | None = setting(None, "--name", help="Run folder name (default: generated).")
    record_filters: list[int] = setting(
        [],
        "--record-filters",
        metavar="EPOCHS",
        type=str,
        after=_filter_epochs,
        help="Save the first layer's filters after these epochs, e.g. 0,1,2,5 (0 = before "
        "training) or 'all'; the report shows them forming.",
    )
    auto: dict[str, Any] | None = setting(None)

    def fit_options(self) -> dict[str, Any]:
        """The settings :func:`~cnnkit.train.loop.fit` takes under their own names."""
        return {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.metadata.get("fit")
        }

    @classmethod
    def from_recipe(cls, recipe: str, /, **overrides: Any) -> TrainConfig:
        """The recipe's settings, then ``overrides`` on top (see :mod:`cnnkit.train.recipes`);
        ``overrides`` may hold any field, ``name`` (the run's name) included. ``auto`` chooses
        the settings from the data (:mod:`cnnkit.train.auto`)."""
        from cnnkit.train.recipes import recipe_settings

        if recipe == AUTO:
            return auto_config(overrides)[0]

        return cls.from_dict({**recipe_settings(recipe), "recipe": recipe, **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a dict (a run card's ``config``); unknown keys are an error."""
        return config_from_dict(cls, values, what="training")

    def validate(self) -> None:
        """Check every setting that can be checked without the data, so that a mistake
        fails in a moment, before data is loaded or a run directory is made: device,
        precision, optimizer and its hyper-parameters, schedule, loss, augmentation,
        callback options, model name, data source and run name.

        Raises:
            ConfigError, ModelError, RunError: the first setting found wrong.
        """
        import torch
        from torch import nn

        from cnnkit.augment.spec import parse_augment
        from cnnkit.data.sources import data_root, get_source
        from cnnkit.data.split import group_ids
        from cnnkit.devices import resolve_device
        from cnnkit.layers.spec import is_spec_path
        from cnnkit.models.registry import get_model_entry
        from cnnkit.run import Run
        from cnnkit.train.callbacks import EarlyStopping, ReduceLROnPlateau
        from cnnkit.train.losses import make_loss
        from cnnkit.train.optim import make_optimizer
        from cnnkit.train.precision import resolve_precision
        from cnnkit.train.schedules import Schedule

        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs and batch size must be positive, got {self.epochs} and {self.batch_size}"
            )
        device = resolve_device(self.device)
        resolve_precision(self.precision, device)
        make_optimizer(
            self.optimizer,
            [nn.Parameter(torch.zeros(1))],
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )
        if isinstance(self.schedule, str):
            Schedule.parse(self.schedule)
        if isinstance(self.loss, str):
            make_loss(self.loss, label_smoothing=self.label_smoothing)
        if self.augment:
            parse_augment(self.augment)
        for kind, options in (
            (EarlyStopping, self.early_stopping),
            (ReduceLROnPlateau, self.reduce_lr),
        ):
            if options is not None:
                monitor = make_callback(kind, options).monitor.name
                # --val-size 0 leaves no validation data, unless a folder has its own val/
                may_have_val = self.val_size != 0 or data_root(self.data) is not None
                _check_monitor(kind.__name__, monitor, may_have_val=may_have_val)
        if isinstance(self.model, str) and not is_spec_path(self.model):
            get_model_entry(self.model)
        get_source(self.data)
        if self.group_by is not None:
            group_ids([], self.group_by)  # a valid regular expression
        if self.name is not None:
            Run.check_new(self.runs_dir, self.name)


def config_from_dict(config: type[C], values: dict[str, Any], *, what: str) -> C:
    """``config(**values)`` (a run card's ``config``), each value checked against the JSON
    type of its field's default; an unknown key is an error naming the known ones."""
    known = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    defaults = config()
    for name, value in values.items():
        default = getattr(defaults, name)
        if value is None or default is None:
            continue  # optional settings; their users check them
        if not _same_kind(default, value):
            raise ConfigError(f"{what} setting {name} must be {_kind(default)}, not {value!r:.40}")
    return config(**values)


def _same_kind(default: Any, value: Any) -> bool:
    """Whether ``value`` has the JSON type of a setting whose default is ``default``."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and math.isfinite(value)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, str):
        return isinstance(value, str | dict)  # dict: a model spec
    if isinstance(default, list):
        return isinstance(value, list | str)  # str: an augment spec file
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _kind(default: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        type(default), f"a {type(default).__name__}"
    )


def _check_monitor(owner: str, name: str, *, may_have_val: bool) -> None:
    """A value ``owner`` monitors must be one the training logs will hold."""
    from cnnkit.train.loop import log_keys

    known = [key for key in log_keys(has_val=True) if key not in ("epoch", "time")]
    if name not in known:
        raise ConfigError(
            f"{owner} cannot monitor {name!r}.{did_you_mean(name, known)} "
            f"The training logs hold {', '.join(known)}"
        )
    if not may_have_val and name not in log_keys(has_val=False):
        raise ConfigError(
            f"{owner} monitors {name!r}, which needs validation data; --val-size 0 keeps "
            "none (monitor loss or accuracy instead)"
        )


def make_callback(kind: type[Callback], options: dict[str, Any]) -> Any:
    """``kind(**options)``, each option checked against the signature first: an unknown
    name gets a suggestion, a value of the wrong kind says which kind it needs."""
    params = {
        name: param.default
        for name, param in inspect.signature(kind).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    for key, value in options.items():
        if key not in params:
            raise ConfigError(
                f"{kind.__name__} has no option {key!r}.{did_you_mean(key, params)} "
                f"Its options: {', '.join(params)}"
            )
        default = params[key]
        if isinstance(default, bool):
            wrong, need = not isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            wrong, need = isinstance(value, bool) or not isinstance(value, int), "a whole number"
        elif isinstance(default, float):
            wrong, need = isinstance(value, bool) or not isinstance(value, int | float), "a number"
        else:
            wrong, need = not isinstance(value, str), "a name"
        if wrong:
            raise ConfigError(f"{kind.__name__} option {key}={value!r}: needs {need}")
    return kind(**options)


def auto_config(given: dict[str, Any]) -> tuple[TrainConfig, AutoSetup, list[str]]:
    """The auto setup for the data ``given`` names, with ``given``'s values on top.

    Returns:
        The config to train with (recipe ``auto``, the setup recorded in ``auto``), the
        setup, and the options of ``given`` that overrode a choice.
    """
    source = given.get("data", "mnist")
    facts = read_facts(
        source,
        data_dir=given.get("data_dir"),
        val_size=given.get("val_size"),
        test_size=given.get("test_size"),
        seed=given.get("seed", 0),
        group_by=given.get("group_by"),
        split_file=given.get("split_file"),
    )
    setup = choose_setup(facts)
    overridden = sorted(k for k in given if k in setup.settings and k != "data")
    values = {**setup.settings, **{k: v for k, v in given.items() if k != "data"}}
    values["data"] = setup.settings.get("data", source)
    if "model" in given:  # the chosen model options are fastnet's: another model gets yours
        values["model_options"] = given.get("model_options", {})
    elif "model_options" in given:  # yours on top of the chosen ones (--model-option init=...)
        values["model_options"] = {**setup.settings["model_options"], **given["model_options"]}
    config = TrainConfig.from_dict({**values, "recipe": AUTO, "auto": setup.to_dict()})
    return config, setup, overridden
