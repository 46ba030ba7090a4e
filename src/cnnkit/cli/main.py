"""``cnnkit``: the application object, global options and error handling.

Each command lives in its own module; this file only wires them together.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from cnnkit import __version__
from cnnkit.cli import (
    augment,
    compare,
    conv,
    data,
    evaluate,
    export,
    featuremaps,
    features,
    filters,
    gradcam,
    models,
    predict,
    recipes,
    report,
    serve,
    summary,
    train,
    transfer,
)
from cnnkit.cli.console import err
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.openmp import flush_denormals

app = typer.Typer(
    name="cnnkit",
    help="Convolutional neural networks for image classification: data in, trained, "
    "evaluated, explained and exported models out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help, wrapped (never cut) at the terminal's width
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"cnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what cnnkit is doing."),
) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


app.command("train")(train.train_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("report")(report.report_command)
app.command("compare")(compare.compare_command)
app.command("filters")(filters.filters_command)
app.command("featuremaps")(featuremaps.featuremaps_command)
app.command("gradcam")(gradcam.gradcam_command)
app.command("predict")(predict.predict_command)
app.command("export")(export.export_command)
app.command("serve")(serve.serve_command)
app.command("models")(models.models_command)
app.command("recipes")(recipes.recipes_command)
app.command("summary")(summary.summary_command)
app.command("conv")(conv.conv_command)
app.command("datasets")(data.datasets_command)
app.command("augment")(augment.augment_command)
app.add_typer(data.app, name="data")
app.command("features")(features.features_command)
app.command("transfer")(transfer.transfer_command)
app.command("finetune")(transfer.finetune_command)


def _metavar(annotation: Any, name: str, argument: bool) -> str | None:
    """The conventional metavar for a parameter: its name for an argument (``RUN``), else
    what its type takes (``N``, ``FLOAT``, ``TEXT``, ``PATH``); None for flags."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = kinds[0]
    if typing.get_origin(kind) is list:
        kind = typing.get_args(kind)[0]
    if kind is bool:
        return None
    if argument:
        return name.upper()
    return {int: "N", float: "FLOAT", Path: "PATH"}.get(kind, "TEXT")


def _usage(param: Any, ctx: Any) -> list[str]:
    piece = param.metavar if param.required else f"[{param.metavar}]"
    return [piece + ("..." if param.nargs != 1 else "")]


def _argument_help(param: Any, record: Any, ctx: Any) -> tuple[str, str] | None:
    found = record(ctx)
    name = param.metavar + ("..." if param.nargs != 1 else "")
    return None if found is None else (name, found[1])


def _set_metavars(command: Any, typer_app: typer.Typer) -> None:
    """Give every parameter without an explicit metavar a conventional one (``RUN``, ``N``,
    ``FLOAT``, ``TEXT``, ``PATH``), whatever typer's version would print (``{run}``,
    ``<int range>``, ``INTEGER``): read from the command functions' own annotations."""
    for info in typer_app.registered_commands:
        try:
            hints = typing.get_type_hints(info.callback)
        except NameError:  # an annotation imported only for type checkers: typer's metavars
            hints = {}
        for param in command.commands[info.name].params:
            argument = not param.opts[0].startswith("-")
            if param.metavar is None and param.name in hints:
                param.metavar = _metavar(hints[param.name], param.name, argument)
            if argument and param.metavar:  # typer 0.2x shows {run} and "RUN <path>"
                param.get_usage_pieces = functools.partial(_usage, param)
                param.get_help_record = functools.partial(
                    _argument_help, param, param.get_help_record
                )
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _set_metavars(command.commands[group.name], group.typer_instance)


def usage_error(exc: BaseException) -> str | None:
    """The one-line message for a command-line usage error (unknown command or option,
    missing argument, a value of the wrong type), or None when ``exc`` is not one.

    Recognised by what click-style usage errors carry (``exit_code`` 2 and
    ``format_message()``), not by class: typer 0.26 and later carry their own copy of
    click (``typer._click``), whose errors ``click.UsageError`` does not catch.
    """
    format_message = getattr(exc, "format_message", None)
    if getattr(exc, "exit_code", None) != 2 or not callable(format_message):
        return None
    message = " ".join(str(format_message()).split())
    ctx = getattr(exc, "ctx", None)
    unknown = re.match(r"No such command '(.+)'\.$", message)
    if unknown and ctx is not None:  # older typers give no suggestion
        message += did_you_mean(unknown.group(1), ctx.command.list_commands(ctx), n=2)
    where = getattr(ctx, "command_path", "") or "cnnkit"
    return f"{message} (see '{where} --help')"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app.

    Usage errors become one line and exit code 2; cnnkit's own errors (a bad value, a
    missing file) one red line and exit code 1. A bare ``cnnkit`` (or ``cnnkit data``)
    prints its help and exits 0, as ``git`` prints its help when given nothing.

    Run as the command (``argv`` None: the arguments come from ``sys.argv``), it first has
    torch's CPU threads flush denormal floats to zero (:mod:`cnnkit.openmp`); called from
    Python with a list, it leaves the process's floating-point settings alone.
    """
    if argv is None:
        flush_denormals()  # before torch starts its threads, which inherit the setting
    command = typer.main.get_command(app)
    _set_metavars(command, app)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = command.main(args=args, prog_name="cnnkit", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into exit code 130 and returns it here
            err.print("[yellow]interrupted[/]")
        if isinstance(code, int) and code:
            sys.exit(code)
    except CnnkitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group given nothing: its help
            print(exc.ctx.get_help())  # type: ignore[attr-defined]
            sys.exit(0)
        message = usage_error(exc)
        if message is None:
            raise
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
