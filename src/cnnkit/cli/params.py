"""Command-line parameters defined once.

- The options of a config's fields (:func:`config_options`): ``cnnkit train`` takes one option
  per :class:`~cnnkit.train.config.TrainConfig` field that declares one, with the field's
  help, default, type, metavar and lowest value; the command receives what was given as
  :class:`Given` (field values, converted by the field's own ``parse``).
- The options many commands share (``RunDir``, ``DataDir``, ``Device``, ...), as ``Annotated``
  types: ``device: Device = "auto"``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.train.config import Option, TrainConfig, option_of, shown_default
from cnnkit.transfer.finetune import FinetuneConfig

_PLAIN_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _declared(name: str, config: type[Any] = TrainConfig) -> Option:
    """The option the ``config`` field ``name`` declares."""
    option = option_of({item.name: item for item in dataclasses.fields(config)}[name])
    if option is None:
        raise TypeError(f"{config.__name__}.{name} declares no command-line option")
    return option


def _sample_option(name: str) -> Any:
    """A :class:`FinetuneConfig` field's option, for the commands that draw the same sample."""
    option = _declared(name, FinetuneConfig)
    return typer.Option(*option.flags, min=option.min, help=option.help)


def option_help(item: dataclasses.Field[Any]) -> str:
    """A field's help text with ``[default: ...]`` before its final full stop, if shown."""
    option = option_of(item)
    text = option.help if option is not None else ""
    default = shown_default(item)
    if default is None:
        return text
    body, stop = (text[:-1], ".") if text.endswith(".") else (text, "")
    return f"{body} [default: {default}]{stop}"


def _cli_type(item: dataclasses.Field[Any]) -> Any:
    """The type typer parses for a field's option: the option's ``type``, else the field's
    own when it is a plain ``int``, ``float``, ``str`` or ``bool`` (or that or None)."""
    option = option_of(item)
    if option is not None and option.type is not None:
        return option.type
    written = re.sub(r"\s*\|\s*None$", "", str(item.type))
    if written not in _PLAIN_TYPES:
        raise TypeError(f"{item.name}: give its option a type= (the field is {item.type})")
    return _PLAIN_TYPES[written]


def config_parameters(
    config: type[Any], only: Collection[str] | None = None
) -> list[inspect.Parameter]:
    """One keyword parameter per field of ``config`` that declares an option (of the fields
    named in ``only``, if given), in field order. Each defaults to None (not given): a recipe
    or the auto setup may choose the value, so the field's default is shown in the help text
    instead."""
    parameters = []
    for item in dataclasses.fields(config):
        option = option_of(item)
        if option is None or (only is not None and item.name not in only):
            continue
        info = typer.Option(
            None,
            *option.flags,
            help=option_help(item),
            metavar=option.metavar,
            min=option.min,
            show_default=False,
        )
        parameters.append(
            inspect.Parameter(
                item.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=info,
                annotation=_cli_type(item) | None,
            )
        )
    return parameters


@dataclass
class Given:
    """The config options given on the command line.

    Attributes:
        values: field name -> value, converted by the field's ``parse``.
        after: options whose value needs the finished config (``--record-filters all``):
            field name -> (the text given, its conversion); :meth:`complete` applies them.
    """

    values: dict[str, Any] = field(default_factory=dict)
    after: dict[str, tuple[Any, Callable[[Any, Any], Any]]] = field(default_factory=dict)

    @classmethod
    def collect(cls, config: type[Any], raw: dict[str, Any]) -> Given:
        given = cls()
        for item in dataclasses.fields(config):
            option = option_of(item)
            value = raw.get(item.name)
            if option is None or value is None or value == []:
                continue
            if option.after is not None:
                given.after[item.name] = (value, option.after)
                continue
            value = option.parse(value) if option.parse is not None else value
            if value is not None:
                given.values[item.name] = value
        return given

    def complete(self, config: Any) -> Any:
        """``config`` with the options that needed it set (in place, and returned)."""
        for name, (text, convert) in self.after.items():
            setattr(config, name, convert(text, config))
        return config


def config_options(
    config: type[Any], *, after: str, only: Collection[str] | None = None
) -> Callable[[Callable[..., Any]], Any]:
    """Give a command the options of ``config``'s fields (those named in ``only``, if
    given), placed after its parameter ``after``; the command function takes them as one
    keyword argument ``given`` (:class:`Given`)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(function, eval_str=True).parameters.values()
            if p.name != "given"
        ]
        settings = config_parameters(config, only)
        names = {p.name for p in settings}
        at = [p.name for p in own].index(after) + 1
        parameters = [
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]),
            *settings,
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at:]),
        ]

        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            raw = {name: kwargs.pop(name) for name in names}
            return function(**kwargs, given=Given.collect(config, raw))

        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # typer reads the signature above, not the function's
        return command

    return decorate


# -- options many commands share ---------------------------------------------------------------

_data_dir = _declared("data_dir")
_device = _declared("device")

RunDir = Annotated[Path, typer.Argument(help="A run directory written by `cnnkit train`.")]
# a str, not a Path: the library takes folders as text (PATH in the help all the same)
DataDir = Annotated[str | None, typer.Option(*_data_dir.flags, metavar="PATH", help=_data_dir.help)]
Device = Annotated[str, typer.Option(*_device.flags, metavar=_device.metavar, help=_device.help)]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="NAME",
        help="auto, torch, onnx or onnx-int8 (the files `cnnkit export` wrote); auto takes "
        "onnx on a CPU when the run has a current export.",
    ),
]
ResumeRun = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue the run in this folder from its last checkpoint (--epochs and "
        "--device may change; everything else is the run's).",
    ),
]
WriteReport = Annotated[
    bool, typer.Option("--report/--no-report", help="Evaluate and write report.html at the end.")
]
EvalSplit = Annotated[
    str | None,
    typer.Option(
        "--split", help="test, val or train (default: test, or val without a test split)."
    ),
]
EvalData = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        help="Evaluate on this data source instead of the run's own (same classes and "
        "image shape).",
    ),
]

# `features` and `transfer`: a sample of a data source fed to a backbone, drawn as
# `finetune` draws it (FinetuneConfig's options)
SampleData = Annotated[
    str, typer.Option("--data", "-d", help="Data source (see `cnnkit datasets`).")
]
TrainPerClass = Annotated[int | None, _sample_option("train_per_class")]
SampleTestSize = Annotated[int | None, _sample_option("test_size")]
InputSize = Annotated[int | None, _sample_option("input_size")]
SampleSeed = Annotated[int, _sample_option("seed")]
FeatureCache = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Feature cache folder (default: ~/.cache/cnnkit/features)."),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Compute features on Ray over a folder's files: local (start Ray here), auto or "
        "ray://HOST:PORT. Needs cnnkit[ray].",
    ),
]
