"""Pictures of a dataset: a grid of samples with their labels, and one example per class.

The figures are plain matplotlib :class:`~matplotlib.figure.Figure` objects made without
pyplot, so nothing here needs a display or changes matplotlib's global backend; save them
with :func:`save_figure` (PNG, written atomically) and, where there is a display, show
them with :func:`show_figure`. Grey images are drawn with a grey colour map on the fixed
0..255 range (never in false colour, never contrast-stretched); RGB images as they are.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.atomic import write_path_atomically
from cnnkit.data.dataset import Dataset
from cnnkit.errors import ConfigError

CELL_INCHES = 1.5  # width of one picture in the grid
TITLE_CHARS = 18  # class names are wrapped at this width
ONE_HOT_INLINE = 10  # one-hot vectors of up to this many classes are written out in full
DPI = 120
HIGHLIGHT = "#1f6fb4"  # frame of highlighted pictures


def sample_indices(
    dataset: Dataset, count: int, *, random: bool = False, seed: int = 0, start: int = 0
) -> list[int]:
    """The first ``count`` indices from ``start``, or ``count`` random ones (seeded)."""
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    n = len(dataset)
    if random:
        generator = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(n, generator=generator)[: min(count, n)].tolist())
    if not 0 <= start < n:
        raise ConfigError(f"start {start} is outside the dataset (0..{n - 1})")
    return list(range(start, min(start + count, n)))


def one_hot_text(label: int, num_classes: int) -> str:
    """``[0 0 1 0 ...]`` for up to :data:`ONE_HOT_INLINE` classes, else a short form."""
    if num_classes <= ONE_HOT_INLINE:
        return "[" + " ".join("1" if i == label else "0" for i in range(num_classes)) + "]"
    return f"one-hot: 1 at {label} of {num_classes}"


def plot_samples(
    dataset: Dataset,
    indices: Sequence[int],
    *,
    one_hot: bool = False,
    columns: int | None = None,
    title: str | None = None,
) -> Any:
    """A grid of the samples at ``indices``, each titled ``label: class name``.

    Args:
        dataset: uint8 images ``(N, C, H, W)`` with 1 or 3 channels.
        indices: which samples, in grid order (row by row).
        one_hot: add the label's one-hot vector under each title.
        columns: pictures per row (default: a divisor of the count near its square root).
        title: a title over the grid.

    Returns:
        A matplotlib Figure.
    """
    if not indices:
        raise ConfigError("nothing to show: no samples selected")
    captions = []
    for i in indices:
        label = int(dataset.labels[i])
        caption = _caption(label, dataset.classes[label])
        if one_hot:
            caption += "\n" + one_hot_text(label, dataset.num_classes)
        captions.append(caption)
    return picture_grid(
        [dataset.images[i] for i in indices],
        captions,
        columns=columns,
        title=title,
        monospace=one_hot,
    )


def plot_class_examples(
    dataset: Dataset, *, columns: int | None = None, title: str | None = None
) -> Any:
    """One sample of each class (the first of it), titled with the class; absent ones blank."""
    pictures: list[torch.Tensor | None] = []
    captions = []
    labels = dataset.labels
    for label, name in enumerate(dataset.classes):
        where = torch.nonzero(labels == label)
        pictures.append(dataset.images[int(where[0])] if len(where) else None)
        captions.append(_caption(label, name) + ("" if len(where) else "\n(no sample)"))
    return picture_grid(pictures, captions, columns=columns, title=title)


def _caption(label: int, name: str) -> str:
    """``3: cat``; just ``3`` when the class name is the label (MNIST); long names wrapped."""
    text = str(label) if name == str(label) else f"{label}: {name}"
    return "\n".join(textwrap.wrap(text, TITLE_CHARS, break_on_hyphens=False)[:3]) or text


def picture_grid(
    pictures: Sequence[torch.Tensor | None],
    captions: Sequence[str | None],
    *,
    columns: int | None = None,
    title: str | None = None,
    monospace: bool = False,
    highlight: Sequence[bool] | None = None,
) -> Any:
    """Pictures ``(C, H, W)`` uint8 in a grid, row by row, each under its caption.

    Args:
        pictures: the pictures; None draws a dashed empty frame (a missing sample).
        captions: one per picture; a None caption leaves the cell blank altogether.
        columns: pictures per row (default: a divisor of the count near its square root).
        title: a title over the grid.
        monospace: captions in a monospace font, in wider cells (one-hot vectors).
        highlight: cells to frame in a strong colour (e.g. the originals of a preview).

    Returns:
        A matplotlib Figure.
    """
    from cnnkit.figure import InlineFigure

    n = len(pictures)
    columns = max(1, min(columns or _columns(n), n))
    rows = math.ceil(n / columns)
    lines = max((caption or "").count("\n") + 1 for caption in captions)
    cell_w = CELL_INCHES * (1.3 if monospace else 1.0)  # room for a monospace one-hot vector
    caption_h = 0.16 * lines + 0.12  # inches above each picture for its caption
    top = caption_h + (0.3 if title else 0.05)  # the first row's captions, and the title
    height = rows * CELL_INCHES + (rows - 1) * caption_h + top + 0.1
    figure = InlineFigure(figsize=(columns * cell_w, height), dpi=DPI)
    figure.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.1 / height,
        top=1 - top / height,
        wspace=0.1,
        hspace=caption_h / CELL_INCHES,
    )
    if title:
        figure.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    for k in range(rows * columns):
        axes = figure.add_subplot(rows, columns, k + 1)
        if k >= n or captions[k] is None:
            axes.set_axis_off()
            continue
        picture = pictures[k]
        if picture is not None:
            _draw(axes, picture)
        else:  # an empty frame the size of the pictures
            height, width = next((p.shape[1:] for p in pictures if p is not None), (1, 1))
            axes.set_xlim(-0.5, width - 0.5)
            axes.set_ylim(height - 0.5, -0.5)
            axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])
        strong = bool(highlight and highlight[k])
        for spine in axes.spines.values():  # a thin frame: white pictures stay visible
            spine.set_edgecolor(HIGHLIGHT if strong else "#999999")
            spine.set_linewidth(2.0 if strong else 0.6)
            spine.set_linestyle("-" if picture is not None else "--")  # dashed: no sample
        axes.set_title(
            captions[k] or "",
            fontsize=8,
            linespacing=1.1,
            pad=3,
            family="monospace" if monospace else None,
            fontweight="bold" if strong else None,
        )
    return figure


def _columns(n: int) -> int:
    """Pictures per row: a divisor of ``n`` from about sqrt(n) to 10 (no ragged last row)."""
    for columns in range(max(1, math.ceil(math.sqrt(n))), 11):
        if n % columns == 0:
            return columns
    return min(n, 8)


def _draw(axes: Any, image: torch.Tensor) -> None:
    array = image.numpy()
    if array.shape[0] == 1:
        axes.imshow(array[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    elif array.shape[0] == 3:
        axes.imshow(np.transpose(array, (1, 2, 0)), interpolation="nearest")
    else:
        raise ConfigError(f"can draw 1- or 3-channel images, not {array.shape[0]} channels")


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` as a PNG file, atomically; returns the path."""
    target = Path(path)
    write_path_atomically(target, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
    return target


def has_display() -> bool:
    """Whether a window can be opened (a desktop session, or macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def show_figure(figure: Any) -> bool:
    """Show ``figure`` in a window when there is a display; returns whether it was shown."""
    if not has_display():
        return False
    import matplotlib.pyplot as plt

    holder = plt.figure()  # a window from pyplot's interactive backend, then our figure in it
    manager = holder.canvas.manager
    if manager is None:
        return False
    manager.canvas.figure = figure
    figure.set_canvas(manager.canvas)
    plt.show()
    return True
