"""``keras.utils.image_dataset_from_directory``: a folder of pictures as Keras's dataset.

The files are found as Keras finds them (one sub-folder per class in sorted order, or the
labels given; only ``.bmp .gif .jpeg .jpg .png`` files; the file list shuffled with
``np.random.RandomState(seed)`` before the training/validation cut, so one ``seed`` gives the
same two disjoint subsets as Keras) and decoded by cnnkit's own decoder
(:mod:`cnnkit.data.images`): the format is found by decoding, EXIF orientation is applied,
and an unreadable file is skipped with a warning naming it and the reason, where Keras stops
at it mid-epoch.

Differences from Keras, each on purpose:

- the pictures are decoded once, into memory (uint8), not per epoch; a folder that would need
  more than 4 GiB is refused, naming a smaller ``image_size`` or ``cnnkit train --data
  folder:PATH?cache=1``;
- resizing is Pillow's antialiased filter, rounded to whole values (Keras's ``tf.image.resize``
  gives fractional values); the images are float32 in 0..255 as in Keras;
- a shuffled dataset is reshuffled completely each time it is iterated (Keras shuffles within
  a buffer of ``8 * batch_size``);
- hidden files (``.*``, ``__MACOSX``, ``Thumbs.db``...) are left out, as everywhere in cnnkit;
- ``color_mode="rgba"`` is refused: cnnkit composites transparency on white (use ``"rgb"``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.folder import MAX_BYTES, is_hidden, map_threads
from cnnkit.data.images import decode_image
from cnnkit.errors import ConfigError, DataError, DataNotFoundError
from cnnkit.keras import backend
from cnnkit.keras.unsupported import unsupported

log = logging.getLogger(__name__)

FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # the files Keras lists
COLOR_MODES = {"grayscale": 1, "rgb": 3}
# Keras's interpolation names -> Pillow's filters (cnnkit.data.images.RESAMPLE)
INTERPOLATIONS = {
    "bilinear": "bilinear",
    "nearest": "nearest",
    "bicubic": "bicubic",
    "area": "box",
    "lanczos3": "lanczos",
}
LABEL_MODES = ("int", "categorical", "binary", None)
SUBSETS = ("training", "validation", "both")


class ImageDataset:
    """Batches of ``(images, labels)`` as Keras's dataset yields them, held in memory.

    Iterating gives torch tensors (``.numpy()``, indexing and ``plt.imshow`` work as on
    Keras's tensors): images float32 ``(B, H, W, C)`` in 0..255 (``(B, C, H, W)`` under
    ``channels_first``), labels int32 ``(B,)``, one-hot float32 ``(B, K)`` or float32
    ``(B, 1)`` by ``label_mode``; only the images when there are no labels. ``fit``,
    ``evaluate`` and ``predict`` take the dataset itself (also as ``validation_data``).

    Attributes:
        class_names: the class of each label number.
        file_paths: the file of each sample, in the dataset's (shuffled) order.
    """

    def __init__(
        self,
        pixels: torch.Tensor,
        labels: np.ndarray | None,
        class_names: list[str] | None,
        file_paths: list[str],
        *,
        batch_size: int | None,
        shuffle: bool,
        seed: int,
        data_format: str,
        batches: int | None = None,
    ) -> None:
        self._pixels = pixels  # uint8 (N, C, H, W)
        self._labels = labels
        self.class_names = class_names
        self.file_paths = file_paths
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._seed = seed
        self._data_format = data_format
        self._batches = batches
        self._passes = 0

    def _count(self) -> int:
        """How many samples the dataset yields (after ``take``)."""
        if self._batches is None:
            return len(self._pixels)
        return min(len(self._pixels), self._batches * (self.batch_size or 1))

    def __len__(self) -> int:
        """The number of batches (of samples, without a batch size), as ``len`` of Keras's."""
        return math.ceil(self._count() / (self.batch_size or 1))

    def __iter__(self) -> Iterator[Any]:
        count = self._count()
        if self.shuffle:
            generator = torch.Generator().manual_seed(self._seed * 1000 + self._passes)
            order = torch.randperm(len(self._pixels), generator=generator)[:count]
        else:
            order = torch.arange(count)
        self._passes += 1
        step = self.batch_size or 1
        for start in range(0, count, step):
            index = order[start : start + step]
            images = self._user(self._pixels[index]).float()
            labels = None if self._labels is None else torch.as_tensor(self._labels[index.numpy()])
            if self.batch_size is None:
                images, labels = images[0], None if labels is None else labels[0]
            yield images if labels is None else (images, labels)

    def _user(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.movedim(1, -1) if self._data_format == "channels_last" else pixels

    def as_numpy_iterator(self) -> Iterator[Any]:
        """The batches as NumPy arrays."""
        for item in self:
            yield tuple(t.numpy() for t in item) if isinstance(item, tuple) else item.numpy()

    def take(self, count: int) -> ImageDataset:
        """The first ``count`` batches (all of them for ``-1``), as Keras's ``take``."""
        if count < -1 or int(count) != count:
            raise ConfigError(f"take(count) needs a whole number >= -1, got {count!r}")
        batches = None if count == -1 else int(count)
        if batches is not None and self._batches is not None:
            batches = min(batches, self._batches)
        return ImageDataset(
            self._pixels,
            self._labels,
            self.class_names,
            self.file_paths,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            seed=self._seed,
            data_format=self._data_format,
            batches=batches,
        )

    def cache(self, filename: str = "") -> ImageDataset:
        """The dataset itself: its pictures are in memory already."""
        return self

    def prefetch(self, buffer_size: Any = None) -> ImageDataset:
        """The dataset itself: batches are cut from memory, there is nothing to prefetch."""
        return self

    def arrays(self) -> tuple[torch.Tensor, np.ndarray | None]:
        """The samples ``fit``/``evaluate``/``predict`` use: images as the user lays them out
        (uint8, a view), labels (None without labels). With ``take(n)``: the first ``n``
        batches of the file order."""
        count = self._count()
        labels = None if self._labels is None else self._labels[:count]
        return self._user(self._pixels[:count]), labels

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        nearest = {
            "map": "put the step into the model (e.g. keras.layers.Rescaling(1/255) first)",
            "unbatch": "pass batch_size=None to image_dataset_from_directory",
            "batch": "pass batch_size= to image_dataset_from_directory",
            "shuffle": "pass shuffle=True (and seed=) to image_dataset_from_directory",
        }.get(name, "iterate it, take(n), or give it to fit/evaluate/predict")
        raise unsupported(f"dataset.{name}", nearest)


def image_dataset_from_directory(
    directory: str | os.PathLike[str],
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: tuple[int, int] = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
    verbose: bool = True,
) -> ImageDataset | list[ImageDataset]:
    """A folder of pictures as batches of ``(images, labels)``, as Keras's function.

    Args:
        directory: one sub-folder per class (``labels="inferred"``), or any folder of images
            with ``labels`` given for its files in sorted path order, or ``labels=None``.
        label_mode: ``"int"``, ``"categorical"`` (one-hot), ``"binary"`` (two classes, float
            ``(N, 1)``) or None (images only).
        class_names: which class folders to read, in label order (default: all, sorted).
        color_mode: ``"grayscale"`` or ``"rgb"``.
        image_size: ``(height, width)`` every image is resized to.
        shuffle, seed: shuffle the files (and each pass over them) with this seed.
        validation_split, subset: keep the last ``validation_split`` of the shuffled files
            for ``"validation"``, the rest for ``"training"``; ``"both"`` returns the two.
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``,
            ``"lanczos3"``.
        crop_to_aspect_ratio / pad_to_aspect_ratio: keep the aspect ratio by cutting the
            centre / by padding with black (default: stretch, as Keras).

    Raises:
        ConfigError: an invalid argument (the message names it).
        DataNotFoundError: the folder does not exist.
        DataError: no images, labels that do not match the files, or a folder too large
            for memory.
    """
    channels = _check(locals())
    data_format = data_format or backend.image_data_format()
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(
            f"{root}: no such folder; image_dataset_from_directory needs a folder holding one "
            "sub-folder of images per class"
        )
    seed = int(np.random.randint(1_000_000)) if seed is None else int(seed)
    paths, targets, names = _index(root, labels, class_names, follow_links)
    if verbose:
        print(
            f"Found {len(paths)} files."
            if targets is None
            else f"Found {len(paths)} files belonging to {len(names or ())} classes."
        )
    if label_mode == "binary" and len(names or ()) != 2:
        raise ConfigError(
            f'label_mode="binary" needs exactly 2 classes, found {len(names or ())}: {names}; '
            'use label_mode="int" or "categorical"'
        )
    if shuffle:  # Keras's order: the same seed shuffles paths and labels alike
        np.random.RandomState(seed).shuffle(paths)
        if targets is not None:
            np.random.RandomState(seed).shuffle(targets)
    if targets is None or label_mode is None:
        targets, label_mode = None, None
    size = (int(image_size[0]), int(image_size[1]))
    fit = "crop" if crop_to_aspect_ratio else "pad" if pad_to_aspect_ratio else "stretch"
    needed = len(paths) * channels * size[0] * size[1]
    if needed > MAX_BYTES:
        raise DataError(
            f"{root}: {len(paths)} images of {size[0]}x{size[1]}x{channels} would take "
            f"{needed / 2**30:.1f} GiB of memory (the limit is {MAX_BYTES / 2**30:.0f} GiB); "
            "choose a smaller image_size, or train with `cnnkit train --data "
            f'"folder:{root}?cache=1"`'
        )

    def build(part: slice, name: str | None, shuffled: bool) -> ImageDataset:
        chosen = paths[part]
        if verbose and name:
            print(f"Using {len(chosen)} files for {name}.")
        if not chosen:
            raise DataError(
                f"{root}: the {name or 'dataset'} subset has no files "
                f"(validation_split={validation_split} of {len(paths)} files)"
            )
        pixels, kept = _decode(chosen, channels, size, fit, INTERPOLATIONS[interpolation])
        part_targets = None if targets is None else _encode(targets[part][kept], label_mode, names)
        return ImageDataset(
            torch.from_numpy(pixels),
            part_targets,
            names,
            [chosen[i] for i in np.flatnonzero(kept)],
            batch_size=batch_size,
            shuffle=shuffled,
            seed=seed,
            data_format=data_format,
        )

    if not validation_split:
        return build(slice(None), None, shuffle)
    cut = len(paths) - int(validation_split * len(paths))  # Keras: the last part validates
    training, validation = slice(None, cut), slice(cut, None)
    if subset == "both":
        return [build(training, "training", shuffle), build(validation, "validation", False)]
    if subset == "training":
        return build(training, "training", shuffle)
    return build(validation, "validation", shuffle)


def _check(arguments: dict[str, Any]) -> int:
    """Keras's argument checks, as ConfigErrors naming the argument; returns the channels."""
    labels, class_names = arguments["labels"], arguments["class_names"]
    if not (labels in ("inferred", None) or isinstance(labels, list | tuple | np.ndarray)):
        raise ConfigError(
            f'labels must be "inferred", None, or a list of integer labels (one per image '
            f"file, in sorted path order), got {labels!r}"
        )
    if class_names is not None and not (isinstance(labels, str) and labels == "inferred"):
        raise ConfigError('class_names can only be given with labels="inferred"')
    if arguments["label_mode"] not in LABEL_MODES:
        raise ConfigError(
            f'label_mode must be "int", "categorical", "binary" or None, got '
            f"{arguments['label_mode']!r}"
        )
    color_mode = arguments["color_mode"]
    if color_mode == "rgba":
        raise unsupported(
            'color_mode="rgba"',
            'use color_mode="rgb" (cnnkit composites transparent pixels on white)',
        )
    if color_mode not in COLOR_MODES:
        raise ConfigError(f'color_mode must be "grayscale" or "rgb", got {color_mode!r}')
    batch_size = arguments["batch_size"]
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive whole number or None, got {batch_size!r}")
    size = arguments["image_size"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(n, int) and n > 0 for n in size)
    ):
        raise ConfigError(f"image_size must be (height, width) of positive ints, got {size!r}")
    interpolation = arguments["interpolation"]
    if interpolation in ("lanczos5", "gaussian", "mitchellcubic"):
        raise unsupported(f"interpolation={interpolation!r}", 'use "bicubic" or "lanczos3"')
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(
            f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}"
        )
    if arguments["crop_to_aspect_ratio"] and arguments["pad_to_aspect_ratio"]:
        raise ConfigError("crop_to_aspect_ratio and pad_to_aspect_ratio cannot both be True")
    if arguments["data_format"] not in (None, "channels_last", "channels_first"):
        raise ConfigError(
            'data_format must be "channels_last" or "channels_first", got '
            f"{arguments['data_format']!r}"
        )
    split, subset = arguments["validation_split"], arguments["subset"]
    if split and not 0 < split < 1:
        raise ConfigError(f"validation_split must be between 0 and 1, got {split}")
    if bool(split) != bool(subset):
        raise ConfigError(
            "validation_split and subset go together: give both (e.g. validation_split=0.2, "
            'subset="training") or neither'
        )
    if subset not in (*SUBSETS, None):
        raise ConfigError(f'subset must be "training", "validation" or "both", got {subset!r}')
    if split and arguments["shuffle"] and arguments["seed"] is None:
        raise ConfigError(
            "validation_split with shuffle=True needs a seed (the same seed for the training "
            "and the validation subset, so that they do not overlap), e.g. seed=123"
        )
    return COLOR_MODES[color_mode]


def _index(
    root: Path,
    labels: str | Sequence[int] | None,
    class_names: Sequence[str] | None,
    follow_links: bool,
) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """Keras's file list: ``(paths, labels, class names)``."""
    if isinstance(labels, str):  # "inferred": one sub-folder per class
        folders = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if class_names is not None:
            unknown = sorted(set(class_names) - set(folders))
            if unknown:
                raise ConfigError(
                    f"class_names {unknown} are not sub-folders of {root}; "
                    f"its sub-folders are: {', '.join(folders) or 'none'}"
                )
            folders = list(class_names)
        paths: list[str] = []
        found: list[int] = []
        for label, folder in enumerate(folders):
            files = _files(root / folder, follow_links)
            paths.extend(files)
            found.extend([label] * len(files))
        if not paths:
            raise DataError(
                f"{root}: no images found in its class sub-folders (Keras lists "
                f"{' '.join(FORMATS)} files; put each class's images in a sub-folder named "
                "after the class)"
            )
        return paths, np.asarray(found, dtype=np.int32), folders
    paths = _files(root, follow_links)
    if not paths:
        raise DataError(f"{root}: no images found (Keras lists {' '.join(FORMATS)} files)")
    if labels is None:
        return paths, None, None
    given = np.asarray(labels)
    if given.ndim != 1 or len(given) != len(paths):
        raise DataError(
            f"labels holds {given.size} values but {root} has {len(paths)} image files; give "
            "one label per file, in sorted path order"
        )
    if given.dtype.kind not in "iu" and not (
        given.dtype.kind == "f" and np.all(np.mod(given, 1) == 0)
    ):
        raise DataError(f"labels must be whole numbers, got dtype {given.dtype}")
    values = sorted({int(v) for v in given})
    if values[0] < 0 or values[-1] >= len(values):
        raise DataError(
            f"labels must number the classes 0..K-1 with each used; got the values {values}"
        )
    return paths, given.astype(np.int32), [str(v) for v in values]


def _files(folder: Path, follow_links: bool) -> list[str]:
    """Image files under ``folder`` in Keras's order (by folder path, then file name)."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=follow_links):
        real = os.path.realpath(current)
        if real in seen:  # a link back up: walked already
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not is_hidden(d)]
        found.extend(
            (current, name)
            for name in files
            if not is_hidden(name) and name.lower().endswith(FORMATS)
        )
    found.sort()
    return [os.path.join(folder, name) for folder, name in found]


def _decode(
    paths: list[str], channels: int, size: tuple[int, int], fit: str, resample: str
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(N, C, H, W)`` of the readable files and which files those are."""
    results = map_threads(
        lambda path: (
            decode_image(path, channels=channels, size=size, fit=fit, resample=resample).pixels
        ),
        paths,
    )
    kept = np.array([not isinstance(r, DataError) for r in results], dtype=bool)
    skipped = [str(r) for r in results if isinstance(r, DataError)]
    if skipped:
        log.warning(
            "skipped %d unreadable file(s) of %d: %s%s",
            len(skipped),
            len(paths),
            "; ".join(skipped[:3]),
            f" and {len(skipped) - 3} more" if len(skipped) > 3 else "",
        )
    if not kept.any():
        raise DataError(f"none of the {len(paths)} image files could be read: {skipped[0]}")
    pixels = np.stack([r for r in results if not isinstance(r, DataError)])
    return pixels, kept


def _encode(labels: np.ndarray, label_mode: str | None, names: list[str] | None) -> np.ndarray:
    """Labels as Keras gives them for ``label_mode``."""
    if label_mode == "categorical":
        return np.eye(len(names or ()), dtype=np.float32)[labels]
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    return labels.astype(np.int32)
