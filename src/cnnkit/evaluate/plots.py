"""The pictures of a run, as matplotlib figures saved to PNG.

matplotlib is imported inside the functions (``import cnnkit`` stays cheap) and figures are
drawn with ``matplotlib.figure.Figure`` on the Agg canvas, never through ``pyplot``: no global
backend switch, no window, safe in threads and on servers without a display.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnkit.atomic import write_path_atomically
from cnnkit.evaluate.metrics import normalize_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110  # pixels per inch of saved PNGs
ANNOTATE_MAX = 20  # confusion matrices up to this many classes get numbers in the cells
CLUSTER_MIN = 21  # from this many classes the matrix is ordered by confusion clusters

BEST = "#2ca02c"
STOP = "#d62728"
LR_DROP = "#ff7f0e"
TRAIN = "#1f77b4"
VAL = "#d62728"


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches on the Agg canvas (shown inline in
    Jupyter, see :mod:`cnnkit.figure`)."""
    from cnnkit.figure import InlineFigure

    return InlineFigure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: int = DPI) -> Path:
    """Write ``figure`` as a PNG, atomically; returns the path."""
    target = Path(path)
    write_path_atomically(
        target, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, facecolor="white")
    )
    return target


# -- training curves -----------------------------------------------------------------------


@dataclass
class CurveMarks:
    """What the training curves mark, in epochs counted from 1.

    Attributes:
        best_epoch: the epoch whose weights were kept / that scored best.
        best_reason: how ``best_epoch`` was chosen, for the legend.
        stopped_epoch: the epoch after which early stopping ended training.
        lr_drops: ``(x, new_lr)`` for each learning-rate reduction; ``x`` lies between the
            last epoch at the old rate and the first at the new one.
        interrupted: training was interrupted by the user.
    """

    best_epoch: int | None = None
    best_reason: str = ""
    stopped_epoch: int | None = None
    lr_drops: list[tuple[float, float]] = field(default_factory=list)
    interrupted: bool = False


def curve_marks(
    history: Sequence[Mapping[str, float]], training: Mapping[str, Any] | None = None
) -> CurveMarks:
    """Read best epoch, early stop and LR reductions from the run card and the history.

    The run card's ``training`` section wins where it says something (``best_epoch``,
    ``stopped_epoch``, ``lr_reductions`` = epochs at whose end the rate was cut,
    ``interrupted``); otherwise the best epoch is the lowest ``val_loss`` (or ``loss``) and
    LR reductions are read from drops in the ``lr`` column. A schedule that changes the rate
    at most epochs (cosine, one-cycle) is drawn on its own panel instead of as marks.
    """
    training = training or {}
    epochs = [int(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    marks = CurveMarks(interrupted=bool(training.get("interrupted", False)))
    if training.get("best_epoch") is not None:
        marks.best_epoch = int(training["best_epoch"])
        monitor = training.get("monitor")
        marks.best_reason = f"best {monitor}" if monitor else "best epoch"
    else:
        key = "val_loss" if any("val_loss" in row for row in history) else "loss"
        scored = [(row[key], e) for row, e in zip(history, epochs, strict=True) if key in row]
        if scored:
            marks.best_epoch = min(scored)[1]
            marks.best_reason = f"lowest {key.replace('_', ' ')}"
    if training.get("stopped_epoch") is not None:
        marks.stopped_epoch = int(training["stopped_epoch"])
    rates = {e: row["lr"] for row, e in zip(history, epochs, strict=True) if "lr" in row}
    if training.get("lr_reductions"):
        for epoch in training["lr_reductions"]:
            new = rates.get(int(epoch) + 1)
            marks.lr_drops.append((int(epoch) + 0.5, new if new is not None else math.nan))
    else:
        ordered = sorted(rates.items())
        drops = [
            (e - 0.5, lr)
            for (_, before), (e, lr) in itertools.pairwise(ordered)
            if lr < before * (1 - 1e-9)
        ]
        if len(drops) <= max(3, len(ordered) // 3):
            marks.lr_drops = drops
    return marks


def plot_history(
    history: Sequence[Mapping[str, float]],
    training: Mapping[str, Any] | None = None,
    *,
    title: str = "",
) -> Figure:
    """Loss and accuracy per epoch, train vs validation, with the training events marked.

    Marks: best epoch (green), early stopping (red), learning-rate reductions (orange, with
    the new rate). A learning rate that changes at most epochs gets a third panel.

    Args:
        history: the run's ``history.json`` rows (``epoch``, ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy``, ``lr``, ...).
        training: the run card's ``training`` section, if any.
        title: figure title.
    """
    marks = curve_marks(history, training)
    epochs = [int(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    rates = [row.get("lr", math.nan) for row in history]
    changing = len({r for r in rates if not math.isnan(r)}) > 1
    show_lr_panel = changing and not marks.lr_drops
    panels = [("loss", "loss"), ("accuracy", "accuracy (%)")]
    panels = [p for p in panels if any(p[0] in row for row in history)]
    columns = len(panels) + int(show_lr_panel)
    figure = new_figure(5.2 * max(columns, 1), 3.8)
    axes = figure.subplots(1, max(columns, 1), squeeze=False)[0]
    style = {"marker": "o", "markersize": 3.5, "linewidth": 1.6}
    for ax, (key, label) in zip(axes, panels, strict=False):
        scale = 100.0 if key == "accuracy" else 1.0
        for prefix, colour, name, dash in (("", TRAIN, "train", "-"), ("val_", VAL, "val", "--")):
            points = [
                (e, row[prefix + key] * scale)
                for e, row in zip(epochs, history, strict=True)
                if prefix + key in row
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, dash, color=colour, label=name, **style)
        _mark_events(ax, marks, epochs, history, key, scale)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        _integer_epochs(ax, epochs)
    if show_lr_panel:
        ax = axes[-1]
        ax.plot(epochs, rates, "-", color=LR_DROP, **style)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3, which="both")
        _integer_epochs(ax, epochs)
    if panels:
        axes[0].legend(loc="best", fontsize=8, framealpha=0.85)
    if not history:
        axes[0].text(0.5, 0.5, "no epochs recorded", ha="center", va="center")
    suffix = " (interrupted)" if marks.interrupted else ""
    figure.suptitle(f"training curves{' — ' + title if title else ''}{suffix}", fontsize=11)
    return figure


def _mark_events(
    ax: Axes,
    marks: CurveMarks,
    epochs: Sequence[int],
    history: Sequence[Mapping[str, float]],
    key: str,
    scale: float,
) -> None:
    if marks.best_epoch is not None:
        ax.axvline(marks.best_epoch, color=BEST, linestyle=":", linewidth=1.4)
        row = dict(zip(epochs, history, strict=True)).get(marks.best_epoch, {})
        value = row.get("val_" + key, row.get(key))
        label = f"{marks.best_reason} (epoch {marks.best_epoch})"
        if value is not None:
            ax.plot(
                [marks.best_epoch], [value * scale], "*", color=BEST, markersize=13, label=label
            )
        else:
            ax.plot([], [], ":", color=BEST, label=label)
    if marks.stopped_epoch is not None:
        ax.axvline(marks.stopped_epoch, color=STOP, linestyle="-.", linewidth=1.4)
        ax.plot([], [], "-.", color=STOP, label=f"early stop (epoch {marks.stopped_epoch})")
    for i, (x, new_lr) in enumerate(marks.lr_drops):
        ax.axvline(x, color=LR_DROP, linestyle="--", linewidth=1.1, alpha=0.9)
        if key == "loss" and not math.isnan(new_lr):
            ax.annotate(
                f"lr {new_lr:.2g}",
                xy=(x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=7,
                color=LR_DROP,
                rotation=90,
                va="top",
            )
        if i == 0:
            ax.plot([], [], "--", color=LR_DROP, label="learning rate reduced")


def _integer_epochs(ax: Axes, epochs: Sequence[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs:
        margin = max(0.3, 0.03 * (max(epochs) - min(epochs)))
        ax.set_xlim(min(epochs) - margin, max(epochs) + margin)


# -- confusion matrix ----------------------------------------------------------------------


def confusion_order(matrix: np.ndarray, mode: str = "auto") -> np.ndarray:
    """An order of the classes for drawing a confusion matrix.

    Args:
        matrix: counts ``(K, K)``, rows = true class.
        mode: ``none`` (class order), ``recall`` (worst-recognised class first),
            ``cluster`` (classes confused with each other placed side by side: hierarchical
            clustering of the symmetrised row-normalised confusions) or ``auto`` (``none``
            up to 20 classes, ``cluster`` above).
    """
    size = matrix.shape[0]
    if mode == "auto":
        mode = "cluster" if size >= CLUSTER_MIN else "none"
    if mode == "none" or size < 3:
        return np.arange(size)
    rates = normalize_rows(matrix)
    if mode == "recall":
        return np.argsort(np.diag(rates), kind="stable")
    if mode != "cluster":
        from cnnkit.errors import ConfigError

        raise ConfigError(f"unknown confusion-matrix order {mode!r}; use none, recall or cluster")
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    similarity = rates + rates.T
    np.fill_diagonal(similarity, 0.0)
    distance = 1.0 / (1.0 + 50.0 * similarity)  # confused pairs close, the rest far
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(distance, checks=False)
    tree = linkage(condensed, method="average")
    return np.asarray(leaves_list(optimal_leaf_ordering(tree, condensed)))


def plot_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    *,
    order: str = "auto",
    title: str = "",
) -> Figure:
    """A heat-map of the row-normalised confusion matrix, readable from 2 to 100+ classes.

    Each row is divided by its true-class total, so rare and common classes read alike.
    The diagonal (recall) is drawn in blue; the errors in red on their own square-root
    scale, up to the largest confusion, so that a 0.5% confusion is still visible next to a
    99% diagonal. Up to 20 classes each cell also shows its count and share; above, classes
    confused with each other are placed side by side (``order``) and tick labels are
    thinned to what fits.

    Args:
        matrix: counts ``(K, K)``, rows = true class, columns = predicted class.
        classes: the K class names.
        order: see :func:`confusion_order`.
        title: figure title.
    """
    from matplotlib.colors import Normalize, PowerNorm

    counts = np.asarray(matrix, dtype=np.int64)
    size = counts.shape[0]
    index = confusion_order(counts, order)
    counts = counts[np.ix_(index, index)]
    names = [str(classes[i]) for i in index]
    rates = normalize_rows(counts)
    diagonal = np.eye(size, dtype=bool)
    errors = np.ma.masked_where(diagonal | (counts == 0), rates)
    # errors are coloured up to the largest one, but at least 5%: tiny confusions of a
    # very good model stay pale instead of looking alarming
    worst = max(float(errors.max()) if errors.count() else 0.0, 0.05)
    side = float(np.clip(2.8 + 0.42 * size, 5.0, 15.0))
    figure = new_figure(side + 2.4, side)
    ax = figure.subplots()
    ax.set_facecolor("white")
    recall = ax.imshow(np.ma.masked_where(~diagonal, rates), cmap="Blues", norm=Normalize(0, 1))
    confusion = ax.imshow(errors, cmap="Reds", norm=PowerNorm(0.5, vmin=0, vmax=worst))
    for image, label in (
        (recall, "recall (diagonal)"),
        (confusion, "share of the true class predicted as the column (square-root scale)"),
    ):
        bar = figure.colorbar(image, ax=ax, shrink=0.8, pad=0.015, fraction=0.04)
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
        bar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{v * 100:.3g}%")
    # about 72 points per inch; the axes get roughly side - 2 inches for size rows
    cell_pt = (side - 2.0) * 72.0 / size
    fontsize = float(np.clip(cell_pt * 0.75, 5.0, 10.0))
    step = max(1, math.ceil(fontsize * 1.15 / cell_pt))
    ticks = np.arange(0, size, step)
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(np.arange(size + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(size + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#e6e6e6", linewidth=0.6 if size <= ANNOTATE_MAX else 0.2)
    ax.tick_params(which="minor", length=0)
    if size <= ANNOTATE_MAX:
        cell_font = float(np.clip(cell_pt * 0.22, 5.0, 9.0))
        for i in range(size):
            for j in range(size):
                if counts[i, j] == 0:
                    continue
                share = rates[i, j] * 100
                if i == j:
                    text, dark = f"{counts[i, j]}\n{share:.1f}%", rates[i, j] > 0.5
                else:
                    text = (
                        f"{counts[i, j]}\n{share:.2f}%"
                        if share < 1
                        else f"{counts[i, j]}\n{share:.1f}%"
                    )
                    dark = rates[i, j] > 0.55 * worst
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    fontweight="bold" if i == j else "normal",
                    color="white" if dark else "#222222",
                )
    how = {"none": "", "recall": ", worst recall first", "cluster": ", confused classes together"}
    mode = order if order != "auto" else ("cluster" if size >= CLUSTER_MIN else "none")
    shown = "" if step == 1 else f"; every {step}th label shown"
    accuracy = np.trace(counts) / max(int(counts.sum()), 1)
    ax.set_title(
        f"{title or 'confusion matrix'} — {size} classes, accuracy {accuracy * 100:.2f}%"
        f"{how.get(mode, '')}{shown}",
        fontsize=10,
    )
    return figure


# -- image grids ---------------------------------------------------------------------------


def _show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw a uint8 ``(C, H, W)`` image (grey or RGB) without axes."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image[:3].transpose(1, 2, 0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_shape(count: int, max_columns: int) -> tuple[int, int]:
    columns = max(1, min(count, max_columns))
    return max(1, math.ceil(count / columns)), columns


def shorten_id(text: str, width: int = 24) -> str:
    """The end of a long id or path, cut at a ``/`` where it can be: ``…/cat/0042.png``.

    The file name (and its class folder) is what tells samples apart.
    """
    if len(text) <= width:
        return text
    parts = text.split("/")
    tail = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + len(tail) + 3 > width:
            break
        tail = f"{part}/{tail}"
    if len(tail) + 2 <= width and len(parts) > 1:
        return "…/" + tail
    return "…" + text[-(width - 1) :]


def plot_top_losses(
    images: np.ndarray,
    true: Sequence[str],
    predicted: Sequence[str],
    probabilities: Sequence[float],
    losses: Sequence[float],
    ids: Sequence[str],
    *,
    columns: int = 6,
    title: str = "",
) -> Figure:
    """A gallery of the samples the model got most wrong.

    Args:
        images: uint8 ``(N, C, H, W)``, worst first.
        true: true class name of each image.
        predicted: predicted class name of each image.
        probabilities: the probability the model gave its prediction.
        losses: each sample's cross-entropy, -log p(true class).
        ids: each sample's id or file path (its end is printed under the image).
        columns: images per row.
        title: figure title.
    """
    count = len(images)
    rows, cols = _grid_shape(count, columns)
    figure = new_figure(2.05 * cols, 2.45 * rows + 0.4)
    axes = figure.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= count:
            ax.axis("off")
            continue
        _show_image(ax, images[k])
        wrong = true[k] != predicted[k]
        ax.set_title(
            f"true {true[k]} → pred {predicted[k]}\n"
            f"p {probabilities[k]:.2f} · p(true) {math.exp(-losses[k]):.2g}",
            fontsize=8,
            color=STOP if wrong else "#222222",
        )
        ax.set_xlabel(shorten_id(ids[k]), fontsize=6.5)
    figure.suptitle(title or f"top {count} losses", fontsize=11)
    if not count:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center", va="center")
    return figure


def filter_mosaic(weights: np.ndarray, *, columns: int | None = None) -> np.ndarray:
    """Convolution filters tiled into one image, each min-max scaled to [0, 1] on its own.

    Args:
        weights: ``(O, I, kh, kw)`` (2-D conv), ``(O, I, k)`` (1-D: drawn as rows) or
            ``(O, I, kd, kh, kw)`` (3-D: the middle depth slice).
        columns: filters per row; default about the square root of O.

    Returns:
        float ``(rows*(kh+1)+1, columns*(kw+1)+1, 3)`` RGB: filters with 3 input channels are
        drawn in colour; others as the mean over input channels, in grey. Separators are
        white.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 3:
        w = w[:, :, None, :]
    elif w.ndim == 5:
        w = w[:, :, w.shape[2] // 2]
    count, channels, kh, kw = w.shape
    if channels != 3:
        w = w.mean(axis=1, keepdims=True)
    low = w.reshape(count, -1).min(axis=1).reshape(-1, 1, 1, 1)
    high = w.reshape(count, -1).max(axis=1).reshape(-1, 1, 1, 1)
    scaled = (w - low) / np.where(high > low, high - low, 1.0)
    tiles = np.repeat(scaled, 3, axis=1) if scaled.shape[1] == 1 else scaled
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    mosaic = np.ones((rows * (kh + 1) + 1, columns * (kw + 1) + 1, 3))
    for k in range(count):
        r, c = divmod(k, columns)
        top, left = 1 + r * (kh + 1), 1 + c * (kw + 1)
        mosaic[top : top + kh, left : left + kw] = tiles[k].transpose(1, 2, 0)
    return mosaic


def plot_filters(weights: np.ndarray, *, layer: str = "", title: str = "") -> Figure:
    """A grid of a convolution's filters, each min-max scaled (RGB for colour input)."""
    count, channels = weights.shape[:2]
    columns = max(1, math.ceil(math.sqrt(count * 1.5)))
    mosaic = filter_mosaic(weights, columns=columns)
    aspect = mosaic.shape[0] / mosaic.shape[1]
    width = float(np.clip(0.55 * columns, 4.0, 11.0))
    figure = new_figure(width, width * aspect + 0.6)
    ax = figure.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    kernel = "x".join(str(s) for s in weights.shape[2:])
    colour = "RGB" if channels == 3 else ("grey" if channels == 1 else f"mean of {channels} inputs")
    figure.suptitle(
        (title or f"filters of {layer or 'the first convolution'}")
        + f"\n{count} filters {kernel}, {colour}, each min-max scaled",
        fontsize=9,
    )
    return figure


def plot_filter_epochs(
    records: Sequence[tuple[int, np.ndarray]], *, max_filters: int = 32, title: str = ""
) -> Figure:
    """The first convolution's filters at several epochs: one row per epoch, to watch them form.

    When the initial weights (epoch 0) and a later epoch are recorded, a last row shows the
    change between them (last minus initial, min-max scaled): early filters often move
    little in absolute terms, and this row shows what training added.

    Args:
        records: ``(epoch, weights (O, I, ...))`` pairs; epoch 0 = initial weights.
        max_filters: at most this many filters (the first ones) per row.
        title: figure title.
    """
    shown = min(max_filters, records[0][1].shape[0]) if records else 0
    panels = [("initial" if e == 0 else f"epoch {e}", w[:shown]) for e, w in records]
    if len(records) > 1 and records[0][0] == 0:
        change = records[-1][1][:shown] - records[0][1][:shown]
        panels.append((f"change 0→{records[-1][0]}", change))
    rows = len(panels)
    cell = float(np.clip(11.0 / max(shown, 1), 0.2, 0.6))  # inches per filter
    figure = new_figure(cell * shown + 1.5, (cell + 0.12) * rows + 0.6)
    axes = figure.subplots(max(rows, 1), 1, squeeze=False)[:, 0]
    for ax, (label, weights) in zip(axes, panels, strict=False):
        ax.imshow(filter_mosaic(weights, columns=shown), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        for side in ax.spines.values():
            side.set_visible(False)
    figure.suptitle(title or "first-layer filters as training went on", fontsize=10)
    return figure


def map_mosaic(maps: np.ndarray, *, columns: int) -> np.ndarray:
    """Feature maps ``(C, h, w)`` tiled into one array, each min-max scaled; NaN separators."""
    count, height, width = maps.shape
    rows = math.ceil(count / columns)
    mosaic = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for k in range(count):
        m = maps[k].astype(np.float64)
        span = m.max() - m.min()
        r, c = divmod(k, columns)
        top, left = r * (height + 1), c * (width + 1)
        mosaic[top : top + height, left : left + width] = (m - m.min()) / span if span else 0.0
    return mosaic


def plot_feature_maps(
    image: np.ndarray, maps: np.ndarray, *, layer: str, max_maps: int = 64, title: str = ""
) -> Figure:
    """The input image next to a layer's feature maps (each min-max scaled, viridis).

    Args:
        image: uint8 ``(C, H, W)``.
        maps: float ``(C', h, w)``.
        layer: the layer's name, for the title.
        max_maps: at most this many maps (the first ones).
        title: figure title.
    """
    from matplotlib import colormaps

    shown = maps[:max_maps]
    count = shown.shape[0]
    columns = max(1, math.ceil(math.sqrt(count * 1.6)))
    mosaic = map_mosaic(shown, columns=columns)
    aspect = mosaic.shape[0] / mosaic.shape[1]
    width = 10.0
    figure = new_figure(width, max(2.6, (width - 2.6) * aspect + 0.8))
    grid = figure.add_gridspec(1, 2, width_ratios=[1, 3.2])
    left = figure.add_subplot(grid[0, 0])
    _show_image(left, image)
    left.set_title("input", fontsize=9)
    right = figure.add_subplot(grid[0, 1])
    cmap = colormaps["viridis"].with_extremes(bad="white")
    right.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    right.axis("off")
    more = f" (first {count} of {maps.shape[0]})" if maps.shape[0] > count else ""
    figure.suptitle(
        title
        or f"feature maps of {layer}: {maps.shape[0]} maps {maps.shape[1]}x{maps.shape[2]}{more}",
        fontsize=10,
    )
    return figure


def plot_gradcam(
    images: np.ndarray,
    heatmaps: np.ndarray,
    captions: Sequence[str],
    *,
    layer: str,
    columns: int = 4,
    title: str = "",
) -> Figure:
    """Each image beside its Grad-CAM heat-map laid over it.

    Args:
        images: uint8 ``(N, C, H, W)``.
        heatmaps: float ``(N, H, W)`` in [0, 1].
        captions: one line per image (file name, class explained, probability).
        layer: the layer explained, for the title.
        columns: image pairs per row.
        title: figure title.
    """
    count = len(images)
    rows, cols = _grid_shape(count, columns)
    figure = new_figure(3.3 * cols, 1.95 * rows + 0.5)
    axes = figure.subplots(rows, 2 * cols, squeeze=False)
    for k in range(rows * cols):
        plain, overlay = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        if k >= count:
            plain.axis("off")
            overlay.axis("off")
            continue
        _show_image(plain, images[k])
        _show_image(overlay, images[k])
        overlay.imshow(heatmaps[k], cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
        plain.set_title(captions[k], fontsize=7.5, loc="left")
    figure.suptitle(title or f"Grad-CAM at {layer} (red: evidence for the class)", fontsize=10)
    return figure


def plot_comparison(histories: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """Validation loss and accuracy per epoch of several runs (training curves when a run
    has no validation), one colour per run."""
    from matplotlib import colormaps

    figure = new_figure(11.0, 4.0)
    axes = figure.subplots(1, 2)
    colours = colormaps["tab10"]
    all_epochs = sorted(
        {int(r.get("epoch", i + 1)) for h in histories.values() for i, r in enumerate(h)}
    )
    for k, (name, history) in enumerate(histories.items()):
        for ax, key, scale in ((axes[0], "loss", 1.0), (axes[1], "accuracy", 100.0)):
            column = f"val_{key}" if any(f"val_{key}" in r for r in history) else key
            points = [
                (int(r.get("epoch", i + 1)), r[column] * scale)
                for i, r in enumerate(history)
                if column in r
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                label = name if column.startswith("val_") else f"{name} (train)"
                ax.plot(xs, ys, "o-", color=colours(k % 10), markersize=3, label=label)
    for ax, label in ((axes[0], "validation loss"), (axes[1], "validation accuracy (%)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        _integer_epochs(ax, all_epochs)
    axes[1].legend(fontsize=8, loc="best")
    figure.suptitle("runs compared", fontsize=11)
    return figure
