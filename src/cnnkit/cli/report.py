"""``cnnkit report``: one self-contained HTML report of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out


def report_command(
    run: Path = typer.Argument(..., help="A run directory written by `cnnkit train`."),
    split: str | None = typer.Option(
        None, "--split", help="test, val or train (default: test, or val without a test split)."
    ),
    data: str | None = typer.Option(
        None, "--data", "-d", help="Evaluate on this data source instead of the run's own."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Read the data source's files from this folder."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file to write (default: <run>/report.html)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Evaluate a run and write one self-contained HTML report.

    Run card, curves, metrics, confusion matrix, confused pairs, top losses, Grad-CAM, filters.
    Every picture is embedded: no network is needed to view it.
    The PNGs are kept in plots/, beside metrics.json and predictions.csv.
    """
    from cnnkit.evaluate.report import write_report

    path = write_report(
        run,
        split=split,
        data=data,
        data_dir=str(data_dir) if data_dir else None,
        device=device,
        out=out_file,
    )
    out.print(f"report written to [bold]{path}[/]", highlight=False)
