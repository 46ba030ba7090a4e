"""The images to augment, read from a folder or a named data source, and how to find each
one again (what the manifest records as its ``source``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnnkit.data.dataset import Dataset
from cnnkit.data.folder import PREFIX as FOLDER_PREFIX
from cnnkit.data.folder import FolderOptions, parse_folder_source, read_folder
from cnnkit.data.png_folder import class_folder_names
from cnnkit.errors import ConfigError


@dataclass(frozen=True)
class AugmentSource:
    """Images to augment and how to find each one again.

    Attributes:
        dataset: the images (uint8 ``(N, C, H, W)``), labels and classes.
        folders: per image, the output sub-folder mirroring its place (``cat``,
            ``train/cat``).
        stems: per image, the base of its output file names.
        keys: per image, what the manifest records as its source: the file path relative to
            the folder, or the dataset sample id.
        record: how to read the source again (the manifest's ``source``).
        root: the source folder (None for a named data source).
    """

    dataset: Dataset
    folders: tuple[str, ...]
    stems: tuple[str, ...]
    keys: tuple[str, ...]
    record: dict[str, Any]
    root: Path | None = None


def open_source(
    src: str,
    *,
    split: str = "train",
    start: int = 0,
    count: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> AugmentSource:
    """Read the images to augment.

    Args:
        src: a folder (``photos`` or ``folder:photos?size=64x64``) with one sub-folder per
            class (or train/ test/ folders of them: all parts are read and mirrored), or a
            data source name (``mnist``, ``fashion-mnist``, ...).
        split: for a data source, which part (``train`` or ``test``); the whole part, no
            validation held out.
        start: the first image to use.
        count: how many images to use (default: all from ``start``).
        data_dir: for a data source, the folder its files are in.

    Raises:
        ConfigError: a bad range or split. DataError, DataNotFoundError: unreadable source.
    """
    if src.startswith(FOLDER_PREFIX) or Path(src).expanduser().is_dir():
        source = _open_folder(src)
    else:
        source = _open_dataset(src, split, data_dir)
    n = len(source.dataset)
    if not 0 <= start < n:
        raise ConfigError(f"--start {start} is outside the {n} images of {source.record['name']}")
    stop = n if count is None else min(n, start + count)
    if (start, stop) == (0, n):
        return source
    keep = range(start, stop)
    return replace(
        source,
        dataset=source.dataset.subset(list(keep)),
        folders=tuple(source.folders[i] for i in keep),
        stems=tuple(source.stems[i] for i in keep),
        keys=tuple(source.keys[i] for i in keep),
    )


def _open_folder(src: str) -> AugmentSource:
    if src.startswith(FOLDER_PREFIX):
        root, options = parse_folder_source(src)
    else:
        root, options = Path(src).expanduser(), FolderOptions()
    # a class with no image is no reason to refuse (it gets no outputs); report what is read
    options = replace(options, allow_empty=True)
    data = read_folder(root, options)
    root = data.report.root
    parts = [data.parts[name] for name in ("train", "val", "test") if name in data.parts]
    dataset = Dataset.concat(parts, source=f"{FOLDER_PREFIX}{root}") if len(parts) > 1 else parts[0]
    relative = [Path(path).relative_to(root) for path in dataset.sample_ids()]
    channels, (height, width) = data.report.channels, data.report.size
    return AugmentSource(
        dataset=dataset,
        folders=tuple(p.parent.as_posix() for p in relative),
        stems=tuple(p.stem for p in relative),
        keys=tuple(p.as_posix() for p in relative),
        record={
            "kind": "folder",
            "name": str(root),
            "root": str(root),
            "channels": channels,
            "size": [height, width],
            "fit": options.fit,
        },
        root=root,
    )


def _open_dataset(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> AugmentSource:
    from cnnkit.data.sources import read_source

    parts = read_source(name, None if data_dir is None else Path(data_dir)).parts
    if split not in parts:
        raise ConfigError(f"{name} has no {split!r} part; choose one of {', '.join(parts)}")
    dataset = parts[split]
    folders = class_folder_names(dataset.classes)
    width = len(str(max(len(dataset) - 1, 0)))
    return AugmentSource(
        dataset=dataset,
        folders=tuple(folders[label] for label in dataset.labels.tolist()),
        stems=tuple(f"{i:0{width}d}" for i in range(len(dataset))),
        keys=dataset.sample_ids(),
        record={
            "kind": "dataset",
            "name": name,
            "split": split,
            "data_dir": None if data_dir is None else str(Path(data_dir).absolute()),
        },
    )
