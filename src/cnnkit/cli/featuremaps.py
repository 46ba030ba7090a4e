"""``cnnkit featuremaps``: what a convolution layer outputs for an image."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import Device, RunDir


def featuremaps_command(
    run: RunDir,
    image: Path = typer.Argument(..., help="An image file (PNG, JPEG, ...)."),
    layer: str | None = typer.Option(
        None, "--layer", help="Layer name, e.g. features.1 (default: the last convolution)."
    ),
    max_maps: int = typer.Option(64, "--max-maps", min=1, help="Draw at most this many maps."),
    out_file: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="PNG to write (default: <run>/plots/featuremaps-<image>-<layer>.png).",
    ),
    device: Device = "auto",
) -> None:
    """Draw the feature maps of one convolution layer for one image.

    The image is decoded as the run's training data were: grey or RGB, its size and fit rule.
    """
    import torch

    from cnnkit.devices import resolve_device
    from cnnkit.evaluate import plots
    from cnnkit.evaluate.featuremaps import feature_maps
    from cnnkit.run import Run

    opened = Run.open(run)
    torch_device = resolve_device(device)
    model = opened.load_model(torch_device)
    pre = opened.preprocessing
    pixels = torch.tensor(pre.load(image))  # decoded by the run's input contract
    name, maps = feature_maps(model, pixels, preprocessing=pre, layer=layer, device=torch_device)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
    target = out_file or opened.files.plots / f"featuremaps-{image.stem}-{slug}.png"
    figure = plots.plot_feature_maps(pixels.numpy(), maps.numpy(), layer=name, max_maps=max_maps)
    plots.save_figure(figure, target)
    out.print(f"{name}: {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}")
    out.print(f"wrote [bold]{target}[/]", highlight=False)
