"""``cnnkit gradcam``: where in an image the model found evidence for a class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import Device, RunDir


def class_index(value: str, classes: Sequence[str]) -> int:
    """A class given by name (exact) or by index."""
    from cnnkit.errors import ConfigError

    if value in classes:
        return list(classes).index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
    raise ConfigError(f"--class {value!r} is neither a class name nor an index; classes: {shown}")


def gradcam_command(
    run: RunDir,
    images: list[Path] = typer.Argument(..., help="One or more image files (PNG, JPEG, ...)."),
    layer: str | None = typer.Option(
        None, "--layer", help="Layer name, e.g. features.5 (default: the last convolution)."
    ),
    target: str | None = typer.Option(
        None, "--class", help="Class to explain, by name or index (default: the prediction)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="PNG to write (default: <run>/plots/gradcam-<first image>.png)."
    ),
    device: Device = "auto",
) -> None:
    """Draw Grad-CAM heat-maps: where the chosen layer saw evidence for the class."""
    import torch

    from cnnkit.devices import resolve_device
    from cnnkit.evaluate import plots
    from cnnkit.evaluate.gradcam import grad_cam
    from cnnkit.run import Run

    opened = Run.open(run)
    classes = opened.classes
    torch_device = resolve_device(device)
    model = opened.load_model(torch_device)
    pre = opened.preprocessing
    # decoded by the run's input contract, as its training images were
    pixels = torch.stack([torch.tensor(pre.load(p)) for p in images])
    chosen = None if target is None else class_index(target, classes)
    cam = grad_cam(
        model, pixels, preprocessing=pre, layer=layer, targets=chosen, device=torch_device
    )
    captions = []
    for path, probs, explained, heat in zip(
        images, cam.probabilities, cam.targets, cam.heatmaps, strict=True
    ):
        best = int(probs.argmax())
        line = (
            f"{path.name}: predicted {classes[best]} ({float(probs[best]):.3f}), "
            f"explains {classes[int(explained)]} ({float(probs[explained]):.3f})"
        )
        if float(heat.max()) == 0.0:
            line += " — no positive evidence at this layer (blank map); try another --layer"
        out.print(line, highlight=False)
        captions.append(
            f"{plots.shorten_id(path.name, 22)}\npred {classes[best]} ({float(probs[best]):.2f})"
            + ("" if int(explained) == best else f", shows {classes[int(explained)]}")
        )
    figure = plots.plot_gradcam(pixels.numpy(), cam.heatmaps.numpy(), captions, layer=cam.layer)
    file = out_file or opened.files.plots / f"gradcam-{images[0].stem}.png"
    plots.save_figure(figure, file)
    out.print(f"layer {cam.layer}; wrote [bold]{file}[/]", highlight=False)
