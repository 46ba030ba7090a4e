"""Preview grids: each original image at the start of a row, its augmentations after it.

:func:`plot_outputs` draws what ``cnnkit augment`` wrote (read back from its manifest and
files); :func:`plot_pipeline` draws fresh augmentations of a few images, to tune a spec
before writing anything or training with it. Both return a matplotlib Figure (see
:func:`cnnkit.data.pictures.save_figure`); each augmented picture is captioned with the steps
that acted on it and their main parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from cnnkit.augment.manifest import read_manifest, source_images
from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.source import AugmentSource
from cnnkit.data.dataset import Dataset
from cnnkit.data.images import load_image
from cnnkit.data.pictures import picture_grid
from cnnkit.errors import ConfigError

ROWS = 8  # originals shown
COLUMNS = 8  # augmentations shown per original
CAPTION_LINES = 3
NAME_CHARS = 22  # what fits over a picture


def plot_preview(
    originals: Sequence[torch.Tensor],
    augmented: Sequence[Sequence[torch.Tensor]],
    *,
    names: Sequence[str],
    captions: Sequence[Sequence[str]],
    title: str | None = None,
) -> Any:
    """One row per original ``(C, H, W)``: the original (framed), then its augmentations.

    Args:
        originals: the source images.
        augmented: per original, its augmented images (rows may differ in length).
        names: per original, its caption (class, file).
        captions: per augmented image, its caption.
        title: over the grid.
    """
    if not originals:
        raise ConfigError("nothing to preview: no images")
    columns = 1 + max((len(row) for row in augmented), default=0)
    pictures: list[torch.Tensor | None] = []
    cells: list[str | None] = []
    highlight: list[bool] = []
    for original, name, row, row_captions in zip(
        originals, names, augmented, captions, strict=True
    ):
        pictures += [original, *row] + [None] * (columns - 1 - len(row))
        cells += [name, *row_captions] + [None] * (columns - 1 - len(row))
        highlight += [True] + [False] * (columns - 1)
    return picture_grid(pictures, cells, columns=columns, title=title, highlight=highlight)


def _caption(pipeline: Pipeline, records: Sequence[dict[str, Any]]) -> str:
    words = pipeline.captions(records)
    if not words:
        return "unchanged"
    if len(words) > CAPTION_LINES:
        words = [*words[: CAPTION_LINES - 1], f"+{len(words) - CAPTION_LINES + 1} more"]
    return "\n".join(words)


def _name(class_name: str, key: str) -> str:
    """``original: 7`` over the file (or sample id), shortened from the left to fit."""
    where = key if len(key) <= NAME_CHARS else "…" + key[-(NAME_CHARS - 1) :]
    return f"original: {class_name}\n{where}"


def _spread(labels: Sequence[int], rows: int) -> list[int]:
    """Up to ``rows`` positions, taking the classes in turn (first come, first served)."""
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    chosen: list[int] = []
    while len(chosen) < rows and any(by_class.values()):
        for queue in by_class.values():
            if queue and len(chosen) < rows:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def plot_outputs(
    manifest_path: str | os.PathLike[str],
    source: AugmentSource | None = None,
    *,
    rows: int = ROWS,
    columns: int = COLUMNS,
) -> Any:
    """The outputs of a ``cnnkit augment`` run next to their originals.

    Args:
        manifest_path: the run's manifest (its images are read from beside it).
        source: the source as opened for the run (else it is read again).
        rows: originals shown, spread over the classes.
        columns: augmentations shown per original.
    """
    manifest = read_manifest(manifest_path)
    folder = manifest.path.parent
    channels = manifest.image_shape[0]
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest.outputs:
        if entry["round"] > 0:
            groups.setdefault(entry["source"], []).append(entry)
    if not groups:
        raise ConfigError(f"{manifest.path}: no augmented images to preview")
    keys = list(groups)
    keys = [keys[i] for i in _spread([groups[k][0]["label"] for k in keys], rows)]
    if source is not None:
        position = {key: i for i, key in enumerate(source.keys)}
        originals = [source.dataset.images[position[key]] for key in keys]
    else:
        found = source_images(manifest, keys)
        originals = [found[key] for key in keys]
    augmented, captions, names = [], [], []
    for key in keys:
        shown = groups[key][:columns]
        augmented.append(
            [
                torch.from_numpy(load_image(folder / e["file"], channels=channels).copy())
                for e in shown
            ]
        )
        captions.append([_caption(manifest.pipeline, e["ops"]) for e in shown])
        names.append(_name(shown[0]["class"], key))
    total = sum(len(group) for group in groups.values())
    title = f"{total} augmented from {len(groups)} images: " + "; ".join(
        step.split(",")[0] if step.startswith("flip") else step.replace(",fill=black", "")
        for step in manifest.data["pipeline"]
    )
    return plot_preview(originals, augmented, names=names, captions=captions, title=title)


def plot_pipeline(
    dataset: Dataset,
    pipeline: Pipeline,
    *,
    rows: int = ROWS,
    columns: int = COLUMNS,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> Any:
    """Fresh augmentations of a few images of ``dataset`` (nothing is written).

    Args:
        dataset: the images.
        pipeline: the per-image steps to preview (mixing is left out).
        rows: originals shown (spread over the classes) unless ``indices`` is given.
        columns: augmentations per original.
        seed: seeds the draws.
        indices: exactly which images.
    """
    if columns < 1 or rows < 1:
        raise ConfigError("a preview needs at least one row and one column")
    chosen = list(indices) if indices is not None else _spread(dataset.labels.tolist(), rows)
    generator = torch.Generator().manual_seed(seed)
    repeated = dataset.images[chosen].repeat_interleave(columns, dim=0)
    params = pipeline.sample(len(repeated), dataset.image_shape, generator)
    pixels = pipeline.apply(repeated, params)
    augmented, captions, names = [], [], []
    for row, i in enumerate(chosen):
        span = range(row * columns, (row + 1) * columns)
        augmented.append([pixels[k] for k in span])
        captions.append([_caption(pipeline, pipeline.records(params, k)) for k in span])
        label = int(dataset.labels[i])
        names.append(_name(dataset.classes[label], dataset.sample_ids()[i]))
    title = "preview: " + "; ".join(pipeline.describe())
    originals = [dataset.images[i] for i in chosen]
    return plot_preview(originals, augmented, names=names, captions=captions, title=title)
