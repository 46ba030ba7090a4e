"""``cnnkit datasets`` and ``cnnkit data ...``: find, fetch, inspect, picture, export data."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import Given, config_options
from cnnkit.train.config import TrainConfig

if TYPE_CHECKING:
    from cnnkit.data.dataset import Dataset, Splits
    from cnnkit.data.sources import SourceData

app = typer.Typer(
    help="Inspect, check, picture, export and fetch datasets. SOURCE is a name from "
    "`cnnkit datasets` or folder:PATH.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

# Every command that loads a source splits it as `cnnkit train` does, with train's options.
SOURCE = typer.Argument(
    "mnist",
    metavar="SOURCE",
    help="Data source: a name (`cnnkit datasets`), folder:PATH or a folder.",
)
SPLIT_SETTINGS = ("data_dir", "val_size", "test_size", "group_by", "split_file")
SEED = typer.Option(0, "--seed", help="Seeds the splits.")


def source_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """A ``cnnkit data`` command taking SOURCE, then `cnnkit train`'s options that say where
    the source is read from and how it is split."""
    return config_options(TrainConfig, after="name", only=SPLIT_SETTINGS)(function)


def _load(
    name: str, given: Given, seed: int, *, lenient: bool = False
) -> tuple[Splits, SourceData]:
    from cnnkit.data.sources import inspection_source, make_splits, read_source

    config = TrainConfig(data=name, seed=seed, **given.values)
    source = inspection_source(name) if lenient else name
    data = read_source(source, config.data_dir)
    splits = make_splits(
        source,
        data,
        val_size=config.val_size,
        test_size=config.test_size,
        seed=config.seed,
        group_by=config.group_by,
        split_file=config.split_file,
    )
    return splits, data


def _part(splits: Splits, split: str) -> Dataset:
    from cnnkit.errors import ConfigError

    parts = dict(splits.items())
    if split not in parts:
        raise ConfigError(f"split {split!r} is not available; choose one of {', '.join(parts)}")
    return parts[split]


def _stem(name: str) -> str:
    """A file-name-friendly form of a source name: ``folder:/a/photos?x=1`` -> ``photos``."""
    base = name.split("?", 1)[0].removeprefix("folder:").rstrip("/")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(base).name or "data")


def datasets_command() -> None:
    """List the data sources, where each was found, or how to get it."""
    from rich.table import Table

    from cnnkit.data.sources import FOLDER_DESCRIPTION, SOURCES

    table = Table("name", "description", "found at / how to get it")
    for source in SOURCES.values():
        found = source.locate(None)
        table.add_row(
            source.name, source.description, str(found) if found else f"[red]{source.how_to_get}[/]"
        )
    table.add_row("folder:PATH", FOLDER_DESCRIPTION, "any folder of images")
    out.print(table)


@app.command("download")
def download_command(
    name: str = typer.Argument("mnist", help="Data source name."),
    dest: Path | None = typer.Option(
        None, "--dest", help="Folder to download into (default: the user cache)."
    ),
    layout: str = typer.Option(
        "python", "--format", help="CIFAR only: python (pickled batches) or binary batches."
    ),
) -> None:
    """Download a data source (HTTPS; SHA-256/MD5 checked; resumes) into the cache."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from cnnkit.data.cifar import CIFAR_SOURCES, download_cifar
    from cnnkit.data.mnist import download_idx_source
    from cnnkit.data.sources import IDX_SOURCES, get_source
    from cnnkit.errors import ConfigError

    get_source(name)
    if name not in IDX_SOURCES and name not in CIFAR_SOURCES:
        raise ConfigError(f"{name} cannot be downloaded by cnnkit")
    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=out
    ) as progress:
        task = progress.add_task(f"downloading {name}", total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        if name in IDX_SOURCES:
            folder = download_idx_source(IDX_SOURCES[name], dest, progress=report)
        else:
            folder = download_cifar(CIFAR_SOURCES[name], dest, kind=layout, progress=report)
    out.print(f"{name} is in [bold]{folder}[/]")


@app.command("info")
@source_options
def info_command(
    name: str = SOURCE,
    seed: int = SEED,
    *,
    given: Given,
) -> None:
    """Inventory: counts per split and class, shape, channels, pixel statistics."""
    from rich.table import Table

    from cnnkit.data.preprocess import Preprocessing

    splits, data = _load(name, given, seed)
    parts = splits.items()
    first = parts[0][1]
    c, h, w = first.image_shape
    out.print(
        f"[bold]{name}[/]  {first.num_classes} classes, images {first.image_shape} (C, H, W) "
        f"{str(first.images.dtype).replace('torch.', '')}: {h}x{w} "
        f"{'grey' if c == 1 else 'RGB' if c == 3 else f'{c}-channel'}",
        soft_wrap=True,
    )
    summary = Table("split", "samples", "min", "max", "mean", "channel mean", "channel std")
    fingerprints = []
    for split, ds in parts:
        stats = Preprocessing.from_dataset(ds)
        summary.add_row(
            split,
            f"{len(ds):,}",
            str(int(ds.images.min())),
            str(int(ds.images.max())),
            f"{float(ds.images.float().mean()):.1f}",
            ",".join(f"{m:.3f}" for m in stats.mean),
            ",".join(f"{s:.3f}" for s in stats.std),
        )
        fingerprints.append(f"{split} {ds.fingerprint()[:12]}")
    out.print(summary)
    out.print(
        "pixel min/max/mean on 0..255; channel mean/std on 0..1 (pixel / 255); "
        f"fingerprints: {', '.join(fingerprints)}",
        soft_wrap=True,
    )
    per_class = Table("class", *(split for split, _ in parts))
    counts = [ds.class_counts() for _, ds in parts]
    for label, cls in enumerate(first.classes):
        per_class.add_row(
            f"{label} {cls}" if cls != str(label) else cls, *(f"{c[label]:,}" for c in counts)
        )
    out.print(per_class)
    for split, ds in parts:
        out.print(f"{split}: {ds.source}", soft_wrap=True)
    if data.report is not None and data.report.unreadable:
        out.print(
            f"[yellow]{len(data.report.unreadable)} unreadable file(s) skipped; "
            f"`cnnkit data check '{name}'` lists them[/]"
        )


@app.command("check")
@source_options
def check_command(
    name: str = SOURCE,
    seed: int = SEED,
    near_rms: float = typer.Option(
        4.0,
        "--near-rms",
        help="Near-duplicate threshold: RMS difference of 16x16 grey thumbnails, in grey "
        "levels (0 = exact duplicates only).",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit with code 1 on warnings too (errors always do)."
    ),
    *,
    given: Given,
) -> None:
    """Health report: balance, unreadable/hidden/mismatched files, sizes, duplicates, leaks.

    Exits with code 1 when the report has errors (with --strict: or warnings), so a script
    or CI job can stop on them; 0 otherwise.
    """
    import logging

    from cnnkit.atomic import write_json
    from cnnkit.data.health import check_health

    # the report lists skipped files itself: no need for the loader's warning too
    logging.getLogger("cnnkit.data.folder").setLevel(logging.ERROR)
    splits, data = _load(name, given, seed, lenient=True)
    report = check_health(splits, source=name, folder=data.report, near_rms=near_rms)
    _print_health(report)
    if json_path is not None:
        write_json(json_path, report.to_dict())
        out.print(f"report written to [bold]{json_path}[/]")
    if report.count("error") or (strict and report.count("warning")):
        raise typer.Exit(1)


def _print_health(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    c, h, w = report.image_shape
    out.print(
        f"[bold]health report: {escape(report.source)}[/]\n{len(report.classes)} classes, "
        f"images {h}x{w} (height x width), {c} channel(s)",
        soft_wrap=True,
    )
    table = Table("split", "samples", "smallest class", "largest class", "imbalance")
    for s in report.splits:
        counts = s.class_counts
        table.add_row(
            s.name,
            f"{s.samples:,}",
            f"{report.classes[counts.index(min(counts))]} {min(counts):,}",
            f"{report.classes[counts.index(max(counts))]} {max(counts):,}",
            "inf" if s.imbalance == float("inf") else f"{s.imbalance:.2f}",
        )
    out.print(table)
    folder = report.folder
    if folder is not None:
        sizes = ", ".join(f"{sh}x{sw}: {n}" for (sh, sw), n in folder.sizes.most_common(6))
        modes = ", ".join(f"{m}: {n}" for m, n in folder.modes.most_common())
        formats = ", ".join(f"{f}: {n}" for f, n in folder.formats.most_common())
        out.print(
            f"folder {escape(str(folder.root))} ({folder.layout} layout): "
            f"{sum(folder.images.values())} images read, {len(folder.unreadable)} unreadable, "
            f"{len(folder.hidden)} hidden entries ignored\n"
            f"  sizes (HxW, by header): {sizes}\n  modes: {modes}\n  formats: {formats}\n"
            f"  every image made {folder.size[0]}x{folder.size[1]}, "
            f"{'grey' if folder.channels == 1 else 'RGB'}, fit={folder.fit}",
            soft_wrap=True,
            highlight=False,
        )
    colours = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for finding in report.findings:
        out.print(
            f"[{colours[finding.level]}]{finding.level:7}[/] {escape(f'[{finding.topic}]')} "
            f"{escape(finding.message)}",
            soft_wrap=True,
            highlight=False,
        )
        for example in finding.examples:
            out.print(f"          - {escape(example)}", soft_wrap=True, highlight=False)
    errors, warnings = report.count("error"), report.count("warning")
    colour = "red" if errors else "yellow" if warnings else "green"
    out.print(f"[bold {colour}]{errors} error(s), {warnings} warning(s)[/]")


@app.command("show")
@source_options
def show_command(
    name: str = SOURCE,
    seed: int = SEED,
    split: str = typer.Option("train", "--split", help="train, val or test."),
    count: int = typer.Option(16, "--count", "-n", min=1, help="How many images."),
    start: int = typer.Option(0, "--start", min=0, help="First image (without --random)."),
    random: bool = typer.Option(False, "--random", help="Random images (seeded by --seed)."),
    one_hot: bool = typer.Option(False, "--one-hot", help="Write each label's one-hot vector."),
    per_class: bool = typer.Option(False, "--per-class", help="One image of each class instead."),
    columns: int | None = typer.Option(None, "--columns", min=1, help="Images per row."),
    output: Path | None = typer.Option(
        None, "--out", "-o", help="PNG file to write (default: <source>-<split>-....png)."
    ),
    show: bool = typer.Option(False, "--show", help="Also open a window when there is a display."),
    *,
    given: Given,
) -> None:
    """Draw a grid of images with label index, class name (and one-hot vector) as a PNG."""
    from cnnkit.data.pictures import (
        plot_class_examples,
        plot_samples,
        sample_indices,
        save_figure,
        show_figure,
    )

    splits, _ = _load(name, given, seed)
    dataset = _part(splits, split)
    if per_class:
        figure = plot_class_examples(
            dataset, columns=columns, title=f"{_stem(name)} {split}: one per class"
        )
        default = f"{_stem(name)}-{split}-classes.png"
    else:
        indices = sample_indices(dataset, count, random=random, seed=seed, start=start)
        what = f"{len(indices)} random" if random else f"{indices[0]}..{indices[-1]}"
        figure = plot_samples(
            dataset,
            indices,
            one_hot=one_hot,
            columns=columns,
            title=f"{_stem(name)} {split}: {what}",
        )
        default = f"{_stem(name)}-{split}-{'random' if random else 'first'}.png"
    path = save_figure(figure, output or Path(default))
    out.print(f"picture saved to [bold]{path}[/]")
    if show and not show_figure(figure):
        out.print("[yellow]no display here; open the PNG file instead[/]")


@app.command("export")
@source_options
def export_command(
    name: str = SOURCE,
    seed: int = SEED,
    split: str = typer.Option("test", "--split", help="train, val or test."),
    start: int = typer.Option(0, "--start", min=0, help="First sample to export."),
    count: int | None = typer.Option(None, "--count", "-n", min=1, help="How many (default all)."),
    naming: str = typer.Option(
        "index", "--naming", help="index (00042.png) or image_no (image_no_43.png, textbook)."
    ),
    output: Path | None = typer.Option(
        None, "--out", "-o", help="New folder to write into (default: <source>-<split>-png)."
    ),
    *,
    given: Given,
) -> None:
    """Write images as PNG files into one sub-folder per class (grey stays grey)."""
    from cnnkit.data.png_folder import export_pngs
    from cnnkit.errors import ConfigError

    splits, _ = _load(name, given, seed)
    dataset = _part(splits, split)
    if start >= len(dataset):
        raise ConfigError(f"--start {start} is beyond the {len(dataset)} samples of {split}")
    stop = len(dataset) if count is None else min(len(dataset), start + count)
    folder = output or Path(f"{_stem(name)}-{split}-png")
    result = export_pngs(dataset, folder, naming=naming, indices=range(start, stop))
    out.print(
        f"{result.files:,} PNG files in {len(result.class_folders)} class folders written to "
        f"[bold]{result.folder}[/] (read back with `cnnkit data import {result.folder}`)"
    )


@app.command("import")
def import_command(
    folder: Path = typer.Argument(..., help="A folder written by `cnnkit data export`."),
    output: Path | None = typer.Option(
        None, "--out", "-o", help="Write the arrays to this .npz (images, labels, classes, ids)."
    ),
) -> None:
    """Read an exported PNG folder back into arrays, exactly as exported."""
    import numpy as np

    from cnnkit.atomic import atomic_open
    from cnnkit.data.png_folder import import_pngs

    dataset = import_pngs(folder)
    out.print(
        f"{len(dataset):,} images {dataset.image_shape} (C, H, W), {dataset.num_classes} classes, "
        f"fingerprint {dataset.fingerprint()[:12]} (compare with `cnnkit data info`)"
    )
    if output is not None:
        with atomic_open(output, "wb") as handle:
            np.savez(
                handle,
                images=dataset.images.numpy(),
                labels=dataset.labels.numpy(),
                classes=np.array(dataset.classes),
                ids=np.array(dataset.sample_ids()),
            )
        out.print(f"arrays written to [bold]{output}[/]")
