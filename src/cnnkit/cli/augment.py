"""``cnnkit augment``: augmented PNG copies of a folder or dataset, with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cnnkit.cli.console import err, out
from cnnkit.cli.params import DataDir

AUGMENT_HELP = (
    "A transform, e.g. 'rotate:p=0.9,max=25', 'flip', 'distort:grid=4,magnitude=3' "
    "(repeatable; several in one with ';'), or a YAML/JSON spec file. --list shows them all."
)


def augment_command(
    source: str | None = typer.Argument(
        None,
        help="A folder with one sub-folder per class (or folder:PATH?size=...), or a data "
        "source name (mnist, fashion-mnist, ...).",
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="New folder to write into (default: <source>-augmented beside a folder). "
        "With --preview-only: the PNG file; with --regenerate: where to rebuild the files.",
    ),
    augment: list[str] = typer.Option([], "--augment", "-a", help=AUGMENT_HELP),
    sample: int | None = typer.Option(
        None, "--sample", "-n", min=1, help="N images in total, from random sources (per round)."
    ),
    per_class: int | None = typer.Option(
        None,
        "--per-class",
        min=1,
        help="Fill every class to N images (the originals count with --copy-originals).",
    ),
    per_image: int | None = typer.Option(
        None, "--per-image", min=1, help="K augmentations of every image (per round)."
    ),
    rounds: int = typer.Option(1, "--rounds", min=1, help="Repeat --sample/--per-image."),
    copy_originals: bool = typer.Option(
        False, "--copy-originals", help="Also write every source image into the output."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the choice of images and every draw."),
    split: str = typer.Option("train", "--split", help="For a data source: train or test."),
    start: int = typer.Option(0, "--start", min=0, help="First source image to use."),
    count: int | None = typer.Option(
        None, "--count", min=1, help="How many source images to use (default: all)."
    ),
    data_dir: DataDir = None,
    inside_source: bool = typer.Option(
        False, "--inside-source", help="Allow --out inside the source folder."
    ),
    no_preview: bool = typer.Option(False, "--no-preview", help="Do not draw preview.png."),
    preview_only: bool = typer.Option(
        False,
        "--preview-only",
        help="Only draw originals next to fresh augmentations (to tune the spec).",
    ),
    rows: int = typer.Option(8, "--rows", min=1, help="Originals in a preview."),
    columns: int = typer.Option(8, "--columns", min=1, help="Augmentations per original."),
    regenerate: Path | None = typer.Option(
        None,
        "--regenerate",
        help="Rebuild the outputs of this manifest exactly (checks them; writes them to --out).",
    ),
    files: list[str] = typer.Option(
        [], "--file", help="With --regenerate: only this output (repeatable)."
    ),
    source_dir: Path | None = typer.Option(
        None, "--source-dir", help="With --regenerate: the source's folder, if it moved."
    ),
    list_transforms: bool = typer.Option(False, "--list", help="List the transforms and exit."),
) -> None:
    """Write augmented copies of images (Augmentor-style), with a manifest to regenerate them.

    The textbook's example — nine MNIST digits, rotated with probability 0.9 by up to 25
    degrees, two rounds of ten samples:

        cnnkit augment mnist --split test --count 9 -a rotate:p=0.9,max=25 --sample 10 --rounds 2
    """
    from cnnkit.errors import ConfigError

    if list_transforms:
        _list()
        return
    if regenerate is not None:
        _regenerate(regenerate, out_dir, files, source_dir)
        return
    if source is None:
        raise ConfigError(
            "name the images to augment: a folder of class folders or a data source, e.g. "
            "cnnkit augment photos -a rotate:max=25 --per-image 3"
        )
    from cnnkit.augment.offline import augment_to_folder, open_source
    from cnnkit.augment.spec import parse_augment

    pipeline = parse_augment(augment)
    images = open_source(source, split=split, start=start, count=count, data_dir=data_dir)
    if preview_only:
        _preview(images, pipeline, out_dir, rows, columns, seed)
        return
    target = out_dir or _default_out(source, images.root, split)
    with _progress("augmenting") as update:
        result = augment_to_folder(
            images,
            pipeline,
            target,
            sample=sample,
            per_class=per_class,
            per_image=per_image,
            rounds=rounds,
            copy_originals=copy_originals,
            seed=seed,
            inside_source=inside_source,
            preview=not no_preview,
            preview_rows=rows,
            preview_columns=columns,
            progress=update,
        )
    classes = ", ".join(f"{name}: {n}" for name, n in result.per_class.items())
    copied = f" and {result.originals:,} originals" if result.originals else ""
    out.print(
        f"{result.augmented:,} augmented images{copied} written to [bold]{result.folder}[/]",
        highlight=False,
    )
    out.print(f"per class: {classes}", highlight=False, soft_wrap=True)
    out.print(f"manifest [bold]{result.manifest}[/] (seed {seed})", highlight=False)
    if result.preview is not None:
        out.print(f"preview [bold]{result.preview}[/]", highlight=False)


def _default_out(source: str, root: Path | None, split: str) -> Path:
    if root is not None:
        return root.parent / f"{root.name}-augmented"
    return Path(f"{source.replace(':', '-').replace('/', '-')}-{split}-augmented")


class _progress:
    """A rich progress bar on stderr, fed ``(done, total)``."""

    def __init__(self, what: str) -> None:
        from rich.progress import Progress

        self.bar = Progress(*Progress.get_default_columns(), console=err, transient=True)
        self.task = self.bar.add_task(what, total=None)

    def __enter__(self) -> Any:
        self.bar.start()

        def update(done: int, total: int) -> None:
            self.bar.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _preview(
    images: Any, pipeline: Any, target: Path | None, rows: int, columns: int, seed: int
) -> None:
    from cnnkit.augment.preview import plot_pipeline
    from cnnkit.data.pictures import save_figure

    figure = plot_pipeline(images.dataset, pipeline, rows=rows, columns=columns, seed=seed)
    path = save_figure(figure, target or Path("augment-preview.png"))
    out.print(f"preview saved to [bold]{path}[/]", highlight=False)


def _regenerate(
    manifest: Path, target: Path | None, files: list[str], source_dir: Path | None
) -> None:
    from cnnkit.augment.offline import read_manifest, regenerate
    from cnnkit.errors import DataError

    checked = read_manifest(manifest)  # a damaged manifest is refused before the bar shows
    with _progress("regenerating") as update:
        result = regenerate(
            checked, out=target, files=files or None, source_dir=source_dir, progress=update
        )
    where = f", written to [bold]{result.written}[/]" if result.written else ""
    out.print(
        f"{result.regenerated:,} outputs regenerated{where}: {result.identical:,} identical to "
        "the recorded pixels",
        highlight=False,
    )
    if result.different:
        shown = ", ".join(result.different[:5]) + (" ..." if len(result.different) > 5 else "")
        raise DataError(
            f"{len(result.different)} output(s) differ from the record: {shown} (another "
            "torch/kornia version or device can round differently)"
        )


def _list() -> None:
    from rich.table import Table

    from cnnkit.augment.spec import ALIASES, vocabulary

    table = Table("transform", "settings (defaults)", "what it does", show_lines=True)
    for name, description, settings in vocabulary():
        values = ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)
        table.add_row(name, values, description.replace("``", ""))
    out.print(table)
    aliases = ", ".join(f"{alias} = {real}" for alias, (real, _) in ALIASES.items())
    out.print(f"also known as: {aliases}", highlight=False, soft_wrap=True)
