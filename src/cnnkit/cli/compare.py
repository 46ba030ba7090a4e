"""``cnnkit compare``: several runs side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out


def compare_command(
    runs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write an HTML page with the table and overlaid curves."
    ),
) -> None:
    """Put runs side by side: model, recipe, training time and their measured metrics.

    Metrics come from each run's metrics.json; cnnkit evaluate RUN adds BER where missing.
    """
    from rich.table import Table

    from cnnkit.errors import RunError
    from cnnkit.evaluate.report import comparison_rows, summarize_run, write_comparison
    from cnnkit.run import Run

    if len(runs) < 2:
        raise RunError("compare needs at least two run directories")
    opened = [Run.open(path) for path in runs]
    summaries = [summarize_run(run) for run in opened]
    table = Table(box=None, title="runs compared", title_justify="left")
    table.add_column("", overflow="fold")
    for summary in summaries:  # run names fold rather than lose their distinguishing end
        table.add_column(str(summary["name"]), justify="right", overflow="fold")
    for row in comparison_rows(summaries):
        table.add_row(*row)
    out.print(table)
    if html is not None:
        path = write_comparison(opened, html)
        out.print(f"wrote [bold]{path}[/]", highlight=False)
