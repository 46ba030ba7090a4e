"""``cnnkit export``: ONNX and torch.export files of a run, checked against the model."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import DataDir, RunDir


def export_command(
    run: RunDir,
    formats: list[str] = typer.Option(
        ["onnx", "pt2"],
        "--format",
        "-f",
        help="onnx and/or pt2 (torch.export); repeat for both (default: both).",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder to write (default: <run>/export; replaced whole)."
    ),
    opset: int = typer.Option(18, "--opset", min=7, help="ONNX opset to target."),
    split: str | None = typer.Option(
        None, "--split", help="Split the exports are checked on (default: test, else val)."
    ),
    samples: int = typer.Option(
        1000, "--samples", min=0, help="Images checked on; 0 = the whole split."
    ),
    tolerance: float = typer.Option(
        1e-3, "--tolerance", help="Largest absolute logit difference accepted."
    ),
    data_dir: DataDir = None,
    int8: bool = typer.Option(
        False, "--int8", help="Also write model.int8.onnx, quantised and accuracy-checked."
    ),
    calibration: int = typer.Option(
        512, "--calibration", min=1, help="Training images that calibrate --int8."
    ),
) -> None:
    """Export a run's model to ONNX (dynamic batch) and torch.export, and check each file.

    Each file is loaded back (ONNX in onnxruntime) and run on real images of the run's data,
    preprocessed as in training: the largest logit difference and the top-1 agreement with
    the PyTorch model are printed. Class names, input spec and normalisation travel with the
    files (inside them and in export.json). With --int8, an int8 ONNX file calibrated on
    the run's training images is kept only if its top-1 accuracy on the whole check split is
    within 0.5 points of the float32 file's.
    """
    from rich.markup import escape

    from cnnkit.export import export_run

    result = export_run(
        run,
        out=out_dir,
        formats=formats,
        opset=opset,
        split=split,
        samples=samples,
        data_dir=data_dir,
        tolerance=tolerance,
        int8=int8,
        calibration=calibration,
    )
    for name, parity in result.parity.items():
        file = result.files[name]
        detail = (
            f"opset {result.metadata['onnx']['opset']}, " if name == "onnx" else "torch.export, "
        )
        out.print(
            f"[bold]{escape(file.name)}[/] ({detail}{file.stat().st_size / 1e6:.1f} MB): "
            f"max |logit diff| {parity.max_abs_diff:.2e} (tolerance {parity.tolerance:g}), "
            f"top-1 agreement {parity.top1_agree:,}/{parity.samples:,} "
            f"({parity.agreement * 100:.2f}%) on {parity.split} images",
            highlight=False,
        )
    if result.int8 is not None:
        check = result.int8
        size = result.files["int8"].stat().st_size / 1e6
        out.print(
            f"[bold]{escape(check.file)}[/] (int8, {size:.1f} MB): top-1 "
            f"{check.int8_accuracy * 100:.2f}% against float32's {check.fp32_accuracy * 100:.2f}%"
            f" ({-check.drop:+.2f} points) on {check.samples:,} {check.split} images; "
            f"calibrated on {check.calibration_images:,} training images",
            highlight=False,
        )
    out.print(f"wrote [bold]{escape(str(result.folder))}[/]", highlight=False)
