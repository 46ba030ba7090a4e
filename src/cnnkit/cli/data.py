"""``cnnkit datasets`` and ``cnnkit data ...``: find, download and inspect data sources."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out

app = typer.Typer(help="Inspect and fetch datasets.", no_args_is_help=True)


def datasets_command() -> None:
    """List the data sources, where each was found, or how to get it."""
    from rich.table import Table

    from cnnkit.data.sources import SOURCES

    table = Table("name", "description", "found at / how to get it")
    for source in SOURCES.values():
        found = source.locate(None)
        table.add_row(
            source.name, source.description, str(found) if found else f"[red]{source.how_to_get}[/]"
        )
    out.print(table)


@app.command("download")
def download_command(
    name: str = typer.Argument("mnist", help="Data source name."),
    dest: Path | None = typer.Option(
        None, "--dest", help="Folder to download into (default: the user cache)."
    ),
) -> None:
    """Download a data source from its mirrors (HTTPS, checksummed) into the cache."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from cnnkit.data.mnist import download_idx_source
    from cnnkit.data.sources import IDX_SOURCES, get_source
    from cnnkit.errors import ConfigError

    get_source(name)
    if name not in IDX_SOURCES:
        raise ConfigError(f"{name} cannot be downloaded by cnnkit")
    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=out
    ) as progress:
        task = progress.add_task(f"downloading {name}", total=None)
        folder = download_idx_source(
            IDX_SOURCES[name],
            dest,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    out.print(f"{name} is in [bold]{folder}[/]")


@app.command("info")
def info_command(
    name: str = typer.Argument("mnist", help="Data source name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Read from this folder only."),
    val_size: float | None = typer.Option(None, "--val-size", help="Validation count or fraction."),
    seed: int = typer.Option(0, "--seed", help="Seeds the validation split."),
) -> None:
    """Print the inventory: counts per split and class, image shape, dtype, pixel range."""
    from rich.table import Table

    from cnnkit.data.sources import load_dataset

    size = None if val_size is None else (int(val_size) if val_size >= 1 else val_size)
    splits = load_dataset(name, data_dir=data_dir, val_size=size, seed=seed)
    parts = splits.items()
    first = parts[0][1]
    out.print(
        f"[bold]{name}[/]  {len(first.classes)} classes, images {first.image_shape} (C, H, W)"
    )
    summary = Table("split", "samples", "dtype", "pixel min", "pixel max", "pixel mean")
    for split, ds in parts:
        summary.add_row(
            split,
            f"{len(ds):,}",
            str(ds.images.dtype).replace("torch.", ""),
            str(int(ds.images.min())),
            str(int(ds.images.max())),
            f"{float(ds.images.float().mean()):.1f}",
        )
    out.print(summary)
    per_class = Table("class", *(split for split, _ in parts))
    counts = [ds.class_counts() for _, ds in parts]
    for label, cls in enumerate(first.classes):
        per_class.add_row(
            f"{label} {cls}" if cls != str(label) else cls, *(f"{c[label]:,}" for c in counts)
        )
    out.print(per_class)
    for split, ds in parts:
        out.print(f"{split}: {ds.source}", soft_wrap=True)
