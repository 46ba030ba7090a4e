"""``cnnkit filters``: draw a run's learned convolution filters."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import RunDir


def filters_command(
    run: RunDir,
    layer: str | None = typer.Option(
        None, "--layer", help="Convolution layer name (default: the first one)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="PNG to write (default: <run>/plots/filters.png)."
    ),
) -> None:
    """Draw the filters of the first (or a chosen) convolution, each min-max scaled, in a grid.

    Filters recorded during training (cnnkit train --record-filters) are drawn epoch by epoch.
    """
    from cnnkit.evaluate import plots
    from cnnkit.run import Run
    from cnnkit.train.filters import filter_weights, recorded_filters

    opened = Run.open(run)
    name, weights = filter_weights(opened.load_model("cpu"), layer)
    default = "filters.png" if layer is None else f"filters-{name}.png"
    target = out_file or opened.files.plots / default
    plots.save_figure(plots.plot_filters(weights, layer=name), target)
    out.print(f"{name}: {weights.shape[0]} filters of shape {tuple(weights.shape[1:])}")
    out.print(f"wrote [bold]{target}[/]", highlight=False)
    records = recorded_filters(opened.path)
    if records and layer is None:
        epochs_file = target.with_name("filter_epochs.png")
        plots.save_figure(plots.plot_filter_epochs(records), epochs_file)
        out.print(
            f"wrote [bold]{epochs_file}[/] (epochs {', '.join(str(e) for e, _ in records)})",
            highlight=False,
        )
