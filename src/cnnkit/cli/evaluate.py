"""``cnnkit evaluate``: measure a saved run again, from its directory alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import DataDir, Device, EvalData, EvalSplit, RunDir

MATRIX_PRINT_MAX = 20  # confusion matrices up to this many classes are printed in full


def evaluate_command(
    run: RunDir,
    split: EvalSplit = None,
    data: EvalData = None,
    data_dir: DataDir = None,
    top_k: int = typer.Option(5, "--top-k", min=1, help="The k of the top-k accuracy."),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Write metrics.json and predictions.csv here instead of the run directory.",
    ),
    device: Device = "auto",
) -> None:
    """Rebuild a run's model from its directory and print the textbook's metrics.

    Prints accuracy, loss, top-k, the classification report and the confusion matrix.
    Then balanced accuracy, the balanced error rate (BER) and the most-confused class pairs.
    Writes metrics.json and predictions.csv (id or file, true, predicted, probabilities).
    """
    from cnnkit.evaluate.evaluation import evaluate_split, save_evaluation

    evaluation = evaluate_split(
        run,
        split=split,
        data=data,
        data_dir=data_dir,
        device=device,
        top_k=top_k,
    )
    print_metrics(evaluation.metrics)
    for file in save_evaluation(evaluation, out_dir):
        out.print(f"wrote [bold]{file}[/]", highlight=False)


def print_metrics(metrics: Mapping[str, Any]) -> None:
    """The textbook's evaluation printout, from :func:`compute_metrics`'s dict."""
    from rich.table import Table

    split = metrics["split"]
    top = "  ".join(
        f"top-{k} {v * 100:.2f}%" for k, v in metrics["top_k_accuracy"].items() if k != "1"
    )
    out.print(
        f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
        f"loss {metrics['loss']:.4f}  {top}  ({metrics['samples']:,} samples)",
        highlight=False,
    )
    out.print(
        f"balanced accuracy {metrics['balanced_accuracy'] * 100:.2f}%  "
        f"[bold]BER {metrics['ber']:.4f}[/] (balanced error rate = 1 - balanced accuracy)",
        highlight=False,
    )

    report = metrics["report"]
    out.print()
    table = Table(title="classification report", title_justify="left", box=None)
    for column in ("class", "precision", "recall", "f1-score", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in report.items():
        if not isinstance(row, dict):
            continue
        if name.endswith(" avg"):
            table.add_section()
        table.add_row(
            name,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1-score']:.4f}",
            f"{int(row['support']):,}",
        )
    out.print(table)

    classes = metrics["classes"]
    matrix = metrics["confusion_matrix"]
    out.print()
    if len(classes) <= MATRIX_PRINT_MAX:
        grid = Table(
            title="confusion matrix (rows: true class, columns: predicted)",
            title_justify="left",
            box=None,
            padding=(0, 1),
        )
        grid.add_column("")
        for name in classes:
            grid.add_column(str(name), justify="right")
        for i, (name, row) in enumerate(zip(classes, matrix, strict=True)):
            cells = (
                f"[bold]{v}[/]" if i == j else (f"[red]{v}[/]" if v else "[dim]0[/]")
                for j, v in enumerate(row)
            )
            grid.add_row(str(name), *cells)
        out.print(grid)
    else:
        out.print(
            f"confusion matrix: {len(classes)}x{len(classes)}, in metrics.json "
            "(`cnnkit report` draws it)"
        )

    pairs = metrics["most_confused"]
    out.print()
    if pairs:
        confused = Table(title="most-confused pairs", title_justify="left", box=None)
        for column in ("true", "predicted as", "count", "share of true class"):
            confused.add_column(column, justify="right" if column in ("count",) else "left")
        for pair in pairs:
            confused.add_row(
                str(pair["true"]),
                str(pair["predicted"]),
                f"{pair['count']:,}",
                f"{pair['rate'] * 100:.1f}%",
            )
        out.print(confused)
    else:
        out.print("no sample was misclassified")
