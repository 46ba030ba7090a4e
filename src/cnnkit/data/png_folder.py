"""Datasets to PNG files and back, losslessly.

:func:`export_pngs` writes each image of a dataset (or a slice of it) as a PNG file into
one sub-folder per class — grey (one channel) as 8-bit grey PNGs, which every viewer
shows with a grey colour map, RGB as 8-bit RGB — and a manifest,
``cnnkit-export.json``, recording the class names and order, each file's label and the
original sample ids. :func:`import_pngs` reads such a folder back into a Dataset with the
same pixels, labels, class order and sample order: arrays -> PNG -> arrays is exact.

File names: ``index`` (default) gives the sample's index, zero-padded (``00042.png``);
``image_no`` gives the textbook's ``image_no_43.png`` (numbered from 1).

The export is written into a temporary folder beside the destination and renamed into
place at the end, so the destination is either complete or absent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.atomic import atomic_folder
from cnnkit.data.dataset import Dataset
from cnnkit.data.images import load_image
from cnnkit.errors import ConfigError, DataError
from cnnkit.fields import read_json

MANIFEST = "cnnkit-export.json"
EXPORT_FORMAT = "cnnkit-export/1"
NAMINGS = ("index", "image_no")


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and how many files it wrote."""

    folder: Path
    files: int
    class_folders: tuple[str, ...]


def class_folder_names(classes: Sequence[str]) -> tuple[str, ...]:
    """A safe, unique folder name per class (``T-shirt/top`` -> ``T-shirt_top``)."""
    names: list[str] = []
    for label, name in enumerate(classes):
        safe = re.sub(r'[\x00-\x1f/\\:*?"<>|]', "_", name).strip().strip(".")
        safe = safe or f"class_{label}"
        if safe.lower() in (n.lower() for n in names):
            safe = f"{safe}_{label}"
        names.append(safe)
    return tuple(names)


def export_pngs(
    dataset: Dataset,
    dest: str | os.PathLike[str],
    *,
    naming: str = "index",
    indices: Sequence[int] | None = None,
) -> ExportResult:
    """Write ``dataset`` (or the samples at ``indices``) as PNGs in class sub-folders.

    Args:
        dataset: uint8 images ``(N, C, H, W)`` with 1 or 3 channels.
        dest: a folder that does not exist yet (or is empty).
        naming: ``index`` (``00042.png``) or ``image_no`` (``image_no_43.png``).
        indices: the samples to write, in this order (default: all).

    Raises:
        ConfigError: bad naming, channels, or a destination that is not empty.
    """
    from PIL import Image

    if naming not in NAMINGS:
        raise ConfigError(f"unknown naming {naming!r}; choose {' or '.join(NAMINGS)}")
    channels = dataset.image_shape[0]
    if channels not in (1, 3):
        raise ConfigError(f"PNG export needs 1 or 3 channels, the dataset has {channels}")
    target = Path(dest)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; choose a new folder")
    chosen = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if any(not 0 <= i < len(dataset) for i in chosen):
        raise ConfigError(f"indices must be within 0..{len(dataset) - 1}")
    folders = class_folder_names(dataset.classes)
    width = len(str(max(len(dataset) - 1, 0)))
    ids = dataset.sample_ids()
    with atomic_folder(target) as staging:
        for folder in folders:
            (staging / folder).mkdir()
        files, labels = [], []
        mode = "L" if channels == 1 else "RGB"
        for i in chosen:
            label = int(dataset.labels[i])
            name = f"{i:0{width}d}.png" if naming == "index" else f"image_no_{i + 1}.png"
            relative = f"{folders[label]}/{name}"
            pixels = dataset.images[i].numpy()
            array = pixels[0] if channels == 1 else np.ascontiguousarray(pixels.transpose(1, 2, 0))
            Image.fromarray(array, mode).save(staging / relative, format="PNG")
            files.append(relative)
            labels.append(label)
        manifest = json.dumps(
            {
                "format": EXPORT_FORMAT,
                "source": dataset.source,
                "classes": list(dataset.classes),
                "folders": list(folders),
                "image_shape": list(dataset.image_shape),
                "files": files,
                "labels": labels,
                "ids": [ids[i] for i in chosen],
            },
            indent=1,
        )
        (staging / MANIFEST).write_text(manifest + "\n", encoding="utf-8")  # staged: atomic
    return ExportResult(folder=target, files=len(files), class_folders=folders)


def import_pngs(folder: str | os.PathLike[str]) -> Dataset:
    """Read a folder written by :func:`export_pngs` back into the same Dataset.

    The manifest gives the class names and order, the files in sample order, and so each
    file's class (the folder it is listed in). Every image must still have the exported
    shape: nothing is resized. Sample ids are the files' paths (the manifest keeps the
    original ids).

    Raises:
        DataError: no manifest, a listed file is missing or unreadable, or has another
            shape than the export.
    """
    root = Path(folder)
    manifest_path = root / MANIFEST
    missing = DataError(
        f"{root}: no {MANIFEST}; this is not a `cnnkit data export` folder (read a plain "
        "folder of images with the source folder:PATH instead)"
    )
    manifest = read_json(manifest_path, missing, DataError)
    try:
        if manifest["format"] != EXPORT_FORMAT:
            raise KeyError("format")
        classes = [str(c) for c in manifest["classes"]]
        folders = [str(f) for f in manifest["folders"]]
        channels, height, width = (int(v) for v in manifest["image_shape"])
        files = [str(f) for f in manifest["files"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{manifest_path}: not a {EXPORT_FORMAT} manifest ({exc})") from exc
    if len(folders) != len(classes):
        raise DataError(f"{manifest_path}: {len(classes)} classes but {len(folders)} folders")
    label_of = {name: label for label, name in enumerate(folders)}
    images = np.empty((len(files), channels, height, width), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    for k, relative in enumerate(files):
        path = root / relative
        parent = Path(relative).parent.as_posix()
        if parent not in label_of:
            raise DataError(f"{path}: folder {parent!r} is not one of the exported classes")
        pixels = load_image(path, channels=channels)
        if pixels.shape != images.shape[1:]:
            raise DataError(
                f"{path}: image of shape {pixels.shape} (C, H, W), the export has "
                f"{images.shape[1:]}; it was changed since the export"
            )
        images[k] = pixels
        labels[k] = label_of[parent]
    return Dataset.from_numpy(
        images,
        labels,
        classes,
        source=f"import:{root} (exported from {manifest.get('source') or 'a dataset'})",
        ids=[str((root / f).absolute()) for f in files],
    )
