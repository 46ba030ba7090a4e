"""``cnnkit train``: train a model and write a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cnnkit.cli.console import out


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["init=normal", "rate=0.2"]`` -> ``{"init": "normal", "rate": 0.2}`` (YAML scalars)."""
    import yaml

    from cnnkit.errors import ConfigError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"model option {pair!r} must look like key=value")
        options[key.strip()] = yaml.safe_load(value)
    return options


def count_or_fraction(value: float | None) -> int | float | None:
    """A split size from the command line: ``5000`` -> 5000 (a count), ``0.1`` -> 0.1."""
    return None if value is None else (int(value) if value >= 1 else value)


def train_command(
    data: str = typer.Option("mnist", "--data", "-d", help="Data source (see `cnnkit datasets`)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Read the data source's files from this folder only."
    ),
    model: str = typer.Option(
        "lenet",
        "--model",
        "-m",
        help="Model name (see `cnnkit models`) or a model spec file (.yaml/.yml/.json).",
    ),
    model_option: list[str] = typer.Option(
        [], "--model-option", "-o", help="Model option key=value, e.g. init=normal (repeatable)."
    ),
    epochs: int = typer.Option(10, "--epochs", "-e", min=1, help="Passes over the training set."),
    batch_size: int = typer.Option(100, "--batch-size", "-b", min=1, help="Samples per step."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam or sgd."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate."),
    val_size: float | None = typer.Option(
        None,
        "--val-size",
        help="Validation samples held out of train: a count (5000) or fraction (0.1); "
        "default: the source's (MNIST 5000); 0 for none.",
    ),
    test_size: float | None = typer.Option(
        None,
        "--test-size",
        help="Test samples held out for sources without a test part (a folder without "
        "test/): a count or fraction; default 0.2.",
    ),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Regular expression whose first (...) group names each sample's group in its "
        "file path; a group never spans train/val/test.",
    ),
    split_file: Path | None = typer.Option(
        None,
        "--split-file",
        help="Reuse the split of a split.json or of a run directory (e.g. runs/NAME).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the split, initial weights and shuffling."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: generated)."),
    record_filters: str | None = typer.Option(
        None,
        "--record-filters",
        help="Save the first layer's filters after these epochs, e.g. 0,1,2,5 (0 = before "
        "training) or 'all'; the report shows them forming.",
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Evaluate and write report.html at the end."
    ),
) -> None:
    """Train a model (default: the textbook LeNet on MNIST) and save the run."""
    from cnnkit.evaluate.filters import parse_epochs
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.train.job import TrainConfig, run_training

    config = TrainConfig(
        data=data,
        data_dir=str(data_dir) if data_dir is not None else None,
        val_size=count_or_fraction(val_size),
        test_size=count_or_fraction(test_size),
        group_by=group_by,
        split_file=str(split_file) if split_file is not None else None,
        model=model,
        model_options=parse_options(model_option),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        device=device,
        runs_dir=str(runs_dir),
        name=name,
        record_filters=parse_epochs(record_filters, epochs) if record_filters else [],
    )
    out.print(
        f"training [bold]{config.model}[/] on [bold]{config.data}[/]: {config.epochs} epochs, "
        f"batch {config.batch_size}, {config.optimizer} lr {config.lr:g}, seed {config.seed}"
    )
    result = run_training(config, callbacks=[ProgressBar(out)])
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
            f"loss {metrics['loss']:.4f}"
        )
    card = result.run.card
    out.print(
        f"training time {card['train_seconds']:.1f}s; run saved to [bold]{result.run.path}[/]"
    )
    if report:
        from cnnkit.evaluate.report import write_report

        path = write_report(result.run, device=device)
        out.print(f"report written to [bold]{path}[/]", highlight=False)
