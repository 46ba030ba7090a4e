"""``cnnkit``: the application object, global options and error handling.

Each command lives in its own module; this file only wires them together.
"""

from __future__ import annotations

import logging
import sys

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
from cnnkit.errors import CnnkitError

app = typer.Typer(
    name="cnnkit",
    help="Convolutional neural networks for image classification: data in, trained, "
    "evaluated, explained and exported models out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


def main() -> None:
    """Entry point: run the app; cnnkit errors become one red message and exit code 1."""
    try:
        code = app(standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into exit code 130 and returns it here
            err.print("[yellow]interrupted[/]")
        if isinstance(code, int) and code:
            sys.exit(code)
    except CnnkitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
