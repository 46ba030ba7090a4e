"""``cnnkit predict``: the top-k classes of image files, decoded as the run's training data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from cnnkit.cli.console import err, out
from cnnkit.cli.params import Device, Engine, RunDir

SKIPPED_SHOWN = 5  # skipped files named in the warning line
TABLE_MAX = 50  # without --out, more predictions than this print as a summary


def predict_command(
    run: RunDir,
    images: list[Path] = typer.Argument(
        ..., help="Image files (PNG, JPEG, ...) and/or folders of them (read recursively)."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Classes listed per image."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the predictions as JSON on stdout (nothing else)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="Also write the predictions to this .csv or .json file."
    ),
    device: Device = "auto",
    engine: Engine = "auto",
) -> None:
    """Predict the classes of images with a trained run.

    Each image is decoded exactly as the run's training images were (channels, size, fit
    rule) and normalised by the run's statistics. Files in folders that are not images are
    skipped and listed; a file named directly must be an image.
    """
    from rich.markup import escape
    from rich.table import Table

    from cnnkit.errors import ConfigError
    from cnnkit.predict import OUTPUT_FORMATS, Predictor, image_files, save_predictions

    if out_file is not None and out_file.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"--out {out_file}: name a .csv or .json file")
    files, named = image_files(images)
    predictor = Predictor(run, device=device, engine=engine)
    result = predictor.predict_files(files, top_k=top_k, strict=named)
    predictions = result.predictions
    if result.skipped:
        shown = ", ".join(escape(s.path) for s in result.skipped[:SKIPPED_SHOWN])
        more = len(result.skipped) - SKIPPED_SHOWN
        err.print(
            f"[yellow]skipped {len(result.skipped)} file(s) that are not readable images:[/] "
            f"{shown}{f' and {more} more' if more > 0 else ''} (cnnkit -v predict ... says why)",
            highlight=False,
        )
    if out_file is not None:
        save_predictions(out_file, predictions)
    if as_json:
        print(json.dumps([p.to_dict() for p in predictions], indent=1))
        return
    if out_file is None and len(predictions) <= TABLE_MAX:
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("file", overflow="fold")
        table.add_column("predicted")
        table.add_column("probability", justify="right")
        if top_k > 1:
            table.add_column(f"next {min(top_k, len(predictor.classes)) - 1}")
        for prediction in predictions:
            best = prediction.best
            row = [escape(prediction.source), f"[bold]{escape(best.name)}[/]"]
            row.append(f"{best.probability * 100:.1f}%")
            if top_k > 1:
                row.append(
                    "  ".join(
                        f"{escape(s.name)} {s.probability * 100:.1f}%" for s in prediction.top[1:]
                    )
                )
            table.add_row(*row)
        out.print(table)
    else:
        counts = Counter(p.best.name for p in predictions)
        out.print(
            f"predicted {len(predictions):,} images: "
            + ", ".join(f"{escape(name)} {count:,}" for name, count in counts.most_common()),
            highlight=False,
        )
        if out_file is None:
            out.print("pass --out FILE.csv (or .json) to keep every prediction", highlight=False)
    if out_file is not None:
        out.print(f"wrote [bold]{escape(str(out_file))}[/]", highlight=False)
