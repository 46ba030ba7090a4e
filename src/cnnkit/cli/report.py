"""``cnnkit report``: one self-contained HTML report of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import DataDir, Device, EvalData, EvalSplit, RunDir


def report_command(
    run: RunDir,
    split: EvalSplit = None,
    data: EvalData = None,
    data_dir: DataDir = None,
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file to write (default: <run>/report.html)."
    ),
    device: Device = "auto",
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
        data_dir=data_dir,
        device=device,
        out=out_file,
    )
    out.print(f"report written to [bold]{path}[/]", highlight=False)
