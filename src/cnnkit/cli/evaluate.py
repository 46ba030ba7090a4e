"""``cnnkit evaluate``: measure a saved run again, from its directory alone."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out


def evaluate_command(
    run: Path = typer.Argument(..., help="A run directory written by `cnnkit train`."),
    split: str = typer.Option("test", "--split", help="test, val or train."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Read the run's data source from this folder."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Rebuild a run's model from its directory and recompute loss and accuracy."""
    from cnnkit.evaluate.evaluation import evaluate_run

    metrics = evaluate_run(
        run, split=split, data_dir=str(data_dir) if data_dir else None, device=device
    )
    out.print(
        f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
        f"loss {metrics['loss']:.4f}"
    )
