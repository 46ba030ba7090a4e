"""Your own pictures: a folder with one sub-folder per class, or train/ (val/) test/ layouts.

The data source ``folder:PATH`` reads::

    PATH/cat/001.jpg              one sub-folder per class (the split into train,
    PATH/dog/xyz.png              validation and test is made by cnnkit, stratified)

    PATH/train/cat/001.jpg        or train/ and test/ (and optionally val/, valid/ or
    PATH/test/cat/017.jpg         validation/), each with the same class sub-folders

The rules, each chosen so a training run cannot silently learn from the wrong files:

- **Hidden entries are ignored** (names starting with ``.``, ``__MACOSX``, ``Thumbs.db``,
  ``desktop.ini``, ``@eaDir``) and listed in the report; so are files lying outside the
  class folders. Images in sub-folders of a class folder belong to that class.
- **Classes** are the class folder names in sorted (code point) order, so label numbers
  are stable. A val/test class folder without a train folder of the same name is an
  error. A class with no readable image is an error unless ``allow_empty=1``.
- **Unreadable files** (corrupt, truncated, not an image, too large) are skipped and
  listed in the report, or stop the load with ``corrupt=fail``. The format is found by
  decoding (:mod:`cnnkit.data.images`), whatever the file is called.
- **One size**: ``size=HxW`` (height x width) or ``size=N``; by default the most common
  size among the images (ties: the larger). Other images are brought to it by the ``fit``
  rule of :mod:`cnnkit.data.images` (``pad`` by default, ``crop``, ``stretch``) — the rule
  every image cnnkit decodes goes through, for prediction too. The images are held in
  memory: a folder that would need more than 4 GiB is refused, suggesting a smaller size.
- **Grey or RGB**: ``channels=1`` or ``channels=3``; by default grey when most images are
  grey (ties: RGB).
- **Traceable**: every sample's id (``Dataset.ids``) is the absolute path of its file.

Options follow the path after ``?``, joined with ``&`` (quote the whole argument in a
shell): ``"folder:photos?size=64x64&channels=3&fit=crop&corrupt=fail&allow_empty=1"``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl

import numpy as np

from cnnkit.data import cache
from cnnkit.data.dataset import Dataset
from cnnkit.data.images import (
    DEFAULT_FIT,
    FIT_MODES,
    DecodedImage,
    ImageInfo,
    decode_image,
    probe_image,
)
from cnnkit.data.mapped import take_rows
from cnnkit.errors import ConfigError, DataError, DataNotFoundError

log = logging.getLogger(__name__)

PREFIX = "folder:"
SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
HIDDEN_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "@eaDir"})
EXTENSION_FORMATS = {
    ".jpg": ("JPEG", "MPO"),
    ".jpeg": ("JPEG", "MPO"),
    ".jpe": ("JPEG", "MPO"),
    ".png": ("PNG",),
    ".gif": ("GIF",),
    ".bmp": ("BMP", "DIB"),
    ".tif": ("TIFF",),
    ".tiff": ("TIFF",),
    ".webp": ("WEBP",),
    ".ppm": ("PPM",),
    ".pgm": ("PPM",),
    ".pbm": ("PPM",),
    ".pnm": ("PPM",),
}
WORKERS = 8  # threads decoding images (Pillow releases the GIL while decoding)
MAX_BYTES = 4 << 30  # the images of a folder are held in memory: refuse more than 4 GiB


@dataclass(frozen=True)
class FolderOptions:
    """How a folder is read (the part of ``folder:PATH?...`` after the ``?``).

    Attributes:
        size: ``(height, width)`` every image is brought to; None = most common size.
        channels: 1 or 3; None = grey when most images are grey, else RGB.
        fit: ``pad``, ``crop`` or ``stretch`` (see :mod:`cnnkit.data.images`).
        corrupt: ``skip`` unreadable files (and list them) or ``fail`` on the first one.
        allow_empty: keep a class that has no readable image instead of failing.
        cache: ``True`` decodes into a memory-mapped file on disk (:mod:`cnnkit.data.cache`),
            ``False`` into memory; None chooses by the decoded size against free memory.
    """

    size: tuple[int, int] | None = None
    channels: int | None = None
    fit: str = DEFAULT_FIT
    corrupt: str = "skip"
    allow_empty: bool = False
    cache: bool | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"folder option size must be positive HxW, got {self.size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"folder option channels must be 1 or 3, got {self.channels}")
        if self.fit not in FIT_MODES:
            raise ConfigError(f"folder option fit must be one of {', '.join(FIT_MODES)}")
        if self.corrupt not in ("skip", "fail"):
            raise ConfigError(f"folder option corrupt must be skip or fail, got {self.corrupt!r}")

    @classmethod
    def parse(cls, query: str) -> FolderOptions:
        """Options from ``"size=64x64&channels=1&fit=crop&corrupt=fail&allow_empty=1"``."""
        known = {f.name for f in fields(cls)}
        values: dict[str, object] = {}
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if key not in known:
                raise ConfigError(
                    f"unknown folder option {key!r}; known: {', '.join(sorted(known))} "
                    '(e.g. "folder:photos?size=64x64&channels=3")'
                )
            values[key] = _parse_value(key, value)
        return cls(**values)  # type: ignore[arg-type]

    def query(self) -> str:
        """The options that differ from the defaults, as ``key=value&...``."""
        parts = []
        default = FolderOptions()
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if f.name == "size":
                value = f"{value[0]}x{value[1]}"
            elif isinstance(value, bool):
                value = int(value)
            parts.append(f"{f.name}={value}")
        return "&".join(parts)


def _parse_value(key: str, value: str) -> object:
    text = value.strip().lower()
    try:
        if key == "size":
            height, _, width = text.partition("x")
            return (int(height), int(width or height))
        if key == "channels":
            return {"grey": 1, "gray": 1, "rgb": 3}.get(text) or int(text)
        if key in ("allow_empty", "cache"):
            if text in ("1", "true", "yes", "on", ""):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
    except ValueError:
        raise ConfigError(
            f"folder option {key}={value!r} is not valid (size=64x64 or 64, channels=1 or 3, "
            "allow_empty=1 or 0, cache=1 or 0)"
        ) from None
    return text


def parse_folder_source(spec: str) -> tuple[Path, FolderOptions]:
    """``"folder:PATH?opts"`` -> ``(PATH, options)``."""
    if not spec.startswith(PREFIX):
        raise ConfigError(f"{spec!r} is not a folder source (folder:PATH)")
    path, _, query = spec[len(PREFIX) :].partition("?")
    if not path:
        raise ConfigError("folder source needs a path: folder:PATH, e.g. folder:photos")
    return Path(path).expanduser(), FolderOptions.parse(query)


def folder_source_name(root: Path, options: FolderOptions) -> str:
    """The canonical source string: absolute path, non-default options."""
    query = options.query()
    return f"{PREFIX}{Path(root).expanduser().absolute()}" + (f"?{query}" if query else "")


@dataclass
class FolderReport:
    """What reading a folder found and did; the health check reports it.

    Paths are relative to the folder root, with ``/`` separators.
    """

    root: Path
    layout: str = "classes"  # "classes" (one folder per class) or "splits" (train/ test/)
    classes: tuple[str, ...] = ()
    hidden: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    links_out: list[str] = field(default_factory=list)  # folder links out of their class
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    extension_mismatch: list[tuple[str, str]] = field(default_factory=list)
    conversions: Counter[str] = field(default_factory=Counter)
    rotated: list[str] = field(default_factory=list)
    fitted: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    channels: int = 0
    fit: str = DEFAULT_FIT
    images: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderData:
    """The parts of a folder (``train``, maybe ``val`` and ``test``) and its report."""

    parts: dict[str, Dataset]
    report: FolderReport


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in HIDDEN_NAMES


def read_folder(root: str | os.PathLike[str], options: FolderOptions | None = None) -> FolderData:
    """Read a folder of images into Datasets (see the module docstring for the rules).

    Four steps, each recording what it found in the report: find the class folders, probe
    every file's header (size, mode, format), decode the pixels (in memory or through the
    disk cache), and cut the decoded rows into one Dataset per part.

    Returns:
        The parts (``{"train": ...}`` for one folder per class; ``train``/``val``/``test``
        as present in a split layout) and the report of what was found.

    Raises:
        DataNotFoundError: the folder does not exist.
        DataError: no class folders, an empty class, a val/test class unknown to train, no
            readable image, or (with ``corrupt=fail``) an unreadable file.
    """
    options = options or FolderOptions()
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataNotFoundError(
            f"{root}: no such folder; folder:PATH needs a folder holding one sub-folder per "
            "class (or train/ and test/ folders that do)"
        )
    report = FolderReport(root=root, fit=options.fit)
    class_dirs = _find_classes(root, report)
    files: list[tuple[str, int, Path]] = [  # (split, label, path)
        (split, label, path)
        for split, dirs in class_dirs.items()
        for label, name in enumerate(report.classes)
        if name in dirs
        for path in _image_files(dirs[name], root, report)
    ]
    stored = _stored(files, report, options)
    readable, infos = _probe(files, report, options, stored)
    images, keep = _decode(readable, infos, report, options, stored)
    parts = _split_parts(images, keep, readable, class_dirs, report)
    if report.empty_classes and not options.allow_empty:
        raise DataError(
            f"{root}: class folder(s) with no readable image: {', '.join(report.empty_classes)}; "
            "add images, remove the folder, or pass allow_empty=1 "
            '("folder:PATH?allow_empty=1")'
        )
    if "train" not in parts:
        raise DataError(f"{root}: no readable training images")
    return FolderData(parts=parts, report=report)


Readable = tuple[str, int, Path, ImageInfo]  # (split, label, path, header)


def _find_classes(root: Path, report: FolderReport) -> dict[str, dict[str, Path]]:
    """The class folders of each part (``{"train": {"cat": PATH, ...}, ...}``); sets the
    report's layout and classes (train's folders, sorted)."""
    split_dirs = _split_layout(root)
    if split_dirs:
        report.layout = "splits"
        for entry in _entries(root, root, report):
            if entry.name not in {d.name for d in split_dirs.values()}:
                report.ignored.append(_rel(entry, root))
    else:
        split_dirs = {"train": root}
    class_dirs = {split: _class_dirs(folder, root, report) for split, folder in split_dirs.items()}
    classes = tuple(sorted(class_dirs["train"]))
    if not classes:
        raise DataError(
            f"{root}: no class folders found; put the images of each class in a sub-folder "
            "named after the class (PATH/cat/*.jpg, PATH/dog/*.jpg), or use train/ and test/ "
            "folders that do"
        )
    for split, dirs in class_dirs.items():
        unknown = sorted(set(dirs) - set(classes))
        if unknown:
            raise DataError(
                f"{root}: {split}/ has class folder(s) {', '.join(unknown)} with no matching "
                f"train/ folder; every class needs training images (rename or remove them)"
            )
        for name in classes:
            if split != "train" and name not in dirs:
                report.missing_classes.append(f"{split}/{name}")
    report.classes = classes
    return class_dirs


def _stored(
    files: list[tuple[str, int, Path]], report: FolderReport, options: FolderOptions
) -> cache.FolderCache | None:
    """The folder's decoded cache as the options ask for it (None: ``cache=0``); a cache
    built earlier knows every file's header already."""
    if options.cache is False:
        return None
    asked = {"size": options.size, "channels": options.channels, "fit": options.fit}
    return cache.FolderCache(report.root, asked, files)


def _probe(
    files: list[tuple[str, int, Path]],
    report: FolderReport,
    options: FolderOptions,
    stored: cache.FolderCache | None,
) -> tuple[list[Readable], list[ImageInfo | DataError]]:
    """Read every file's header (or the cache's record of them); tally sizes, modes and
    formats, and settle the size and channel count the images are decoded to. Returns the
    readable files and every file's header or error."""
    root = report.root
    infos = stored.probes() if stored is not None else None
    if infos is None:
        infos = map_threads(lambda item: probe_image(item[2]), files)
    readable: list[Readable] = []
    for (split, label, path), result in zip(files, infos, strict=True):
        if isinstance(result, DataError):
            _unreadable(report, path, result, options)
        else:
            readable.append((split, label, path, result))
    if not readable:
        raise DataError(f"{root}: no readable images found under the class folders")
    for _, _, path, info in readable:
        report.sizes[(info.height, info.width)] += 1
        report.modes[info.mode] += 1
        report.formats[info.format] += 1
        allowed = EXTENSION_FORMATS.get(path.suffix.lower())
        if allowed is not None and info.format not in allowed:
            report.extension_mismatch.append((_rel(path, root), info.format))
        if info.orientation != 1:
            report.rotated.append(_rel(path, root))
    report.size = options.size or _common_size(report.sizes)
    grey = sum(1 for *_, info in readable if info.grey)
    report.channels = options.channels or (1 if grey > len(readable) - grey else 3)
    return readable, infos


def _decode(
    readable: list[Readable],
    infos: list[ImageInfo | DataError],
    report: FolderReport,
    options: FolderOptions,
    stored: cache.FolderCache | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the readable images to ``report``'s size and channels, in memory or through the
    disk cache. Returns the uint8 rows ``(N, C, H, W)`` and which of them decoded."""
    root = report.root
    needed = len(readable) * report.channels * report.size[0] * report.size[1]
    if stored is not None and cache.use_cache(options.cache, needed, MAX_BYTES):
        images, decoded = stored.images(report, infos, readable)
    else:
        if needed > MAX_BYTES:
            raise DataError(
                f"{root}: {len(readable)} images of {report.size[0]}x{report.size[1]}x"
                f"{report.channels} would take {needed / 2**30:.1f} GiB of memory (the limit is "
                f"{MAX_BYTES / 2**30:.0f} GiB); choose a smaller size, e.g. "
                f'"folder:{root}?size=224x224", or decode to disk: "folder:{root}?cache=1"'
            )
        log.info("%s: decoded in memory (%.1f MiB)", root, needed / 2**20)
        images = np.empty((len(readable), report.channels, *report.size), dtype=np.uint8)

        def decode(item: Readable) -> DecodedImage:
            return decode_image(item[2], channels=report.channels, size=report.size, fit=report.fit)

        decoded = map_threads(decode, readable)
    keep = np.zeros(len(readable), dtype=bool)
    for i, ((_, _, path, _), outcome) in enumerate(zip(readable, decoded, strict=True)):
        if isinstance(outcome, DataError):
            _unreadable(report, path, outcome, options)
            continue
        if outcome.pixels.size:  # the cache has written its rows already
            images[i] = outcome.pixels
        keep[i] = True
        if outcome.conversion:
            report.conversions[outcome.conversion] += 1
        if outcome.fitted:
            report.fitted.append(_rel(path, root))
    report.unreadable.sort()
    if report.unreadable:
        names = ", ".join(p for p, _ in report.unreadable[:3])
        more = f" and {len(report.unreadable) - 3} more" if len(report.unreadable) > 3 else ""
        log.warning(
            "%s: skipped %d unreadable file(s): %s%s (`cnnkit data check` lists the reasons)",
            root,
            len(report.unreadable),
            names,
            more,
        )
    return images, keep


def _split_parts(
    images: np.ndarray,
    keep: np.ndarray,
    readable: list[Readable],
    class_dirs: dict[str, dict[str, Path]],
    report: FolderReport,
) -> dict[str, Dataset]:
    """One Dataset per part from the decoded rows; records each part's image count and the
    classes left with no readable image."""
    classes = report.classes
    labels = np.array([item[1] for item in readable], dtype=np.int64)
    splits = np.array([item[0] for item in readable])
    paths = [str(item[2]) for item in readable]
    parts: dict[str, Dataset] = {}
    for split in class_dirs:
        mask = keep & (splits == split)
        counts = np.bincount(labels[mask], minlength=len(classes))
        for name in (classes[i] for i in np.flatnonzero(counts == 0)):
            if split == "train" or name in class_dirs[split]:
                where = f"{split}/{name}" if report.layout == "splits" else name
                report.empty_classes.append(where)
        index = np.flatnonzero(mask)
        report.images[split] = len(index)
        if len(index) == 0:
            continue
        parts[split] = Dataset.from_numpy(
            take_rows(images, index),
            labels[index],
            classes,
            source=f"{PREFIX}{split} ({report.root})",
            ids=[paths[i] for i in index],
        )
    return parts


def _unreadable(report: FolderReport, path: Path, error: DataError, options: FolderOptions) -> None:
    if options.corrupt == "fail":
        raise DataError(
            f"{error}\n(corrupt=fail stops at the first unreadable file; remove or repair it, "
            "or leave out corrupt=fail to skip such files and list them)"
        )
    reason = str(error).removeprefix(f"{path}: ")
    report.unreadable.append((_rel(path, report.root), reason))
    log.info("skipping %s: %s", path, reason)


_T = TypeVar("_T")
_R = TypeVar("_R")


def map_threads(function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R | DataError]:
    """``[function(item) ...]`` on threads, in order; DataErrors are returned, not raised.

    For decoding many image files (Pillow releases the GIL while it decodes).
    """

    def call(item: _T) -> _R | DataError:
        try:
            return function(item)
        except DataError as exc:
            return exc

    if len(items) < 16:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(WORKERS, os.cpu_count() or 1)) as pool:
        return list(pool.map(call, items))


def _common_size(sizes: Counter[tuple[int, int]]) -> tuple[int, int]:
    """The most frequent ``(height, width)``; ties go to the larger area, then height."""
    return max(sizes, key=lambda s: (sizes[s], s[0] * s[1], s[0]))


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _entries(folder: Path, root: Path, report: FolderReport | None) -> Iterator[Path]:
    """Non-hidden entries of ``folder`` in sorted order; hidden ones go to the report."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc})") from exc
    for entry in entries:
        if not is_hidden(entry.name):
            yield entry
        elif report is not None:
            report.hidden.append(_rel(entry, root) + ("/" if entry.is_dir() else ""))


def _split_layout(root: Path) -> dict[str, Path]:
    """``{"train": ..., "test": ...}`` when ``root`` has a train/ folder of class folders."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc})") from exc
    for entry in entries:
        split = SPLIT_FOLDERS.get(entry.name)
        if split and entry.is_dir() and split not in found:
            found[split] = entry
    train = found.get("train")
    if train is None or not any(p.is_dir() and not is_hidden(p.name) for p in train.iterdir()):
        return {}
    return found


def _class_dirs(folder: Path, root: Path, report: FolderReport) -> dict[str, Path]:
    dirs = {}
    for entry in _entries(folder, root, report):
        if entry.is_dir():
            dirs[entry.name] = entry
        else:
            report.ignored.append(_rel(entry, root))
    return dirs


def list_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every non-hidden file under ``folder`` (at any depth), sorted by folder then name.

    Hidden entries (see :func:`is_hidden`) are left out; a link to a folder is followed only
    when it stays inside ``folder`` (so loops and links out are not followed); links to files
    are followed. ``cnnkit predict`` lists the files of a folder this way, as training reads
    a class folder.
    """
    return _image_files(Path(folder), Path(folder), None)


def _image_files(folder: Path, root: Path, report: FolderReport | None) -> list[Path]:
    """Every non-hidden file under a class folder, sorted; a link to a folder is followed only
    when it stays inside the class folder, and each folder is read once."""
    found: list[Path] = []
    seen: set[Path] = set()
    home = folder.resolve()

    def walk(current: Path) -> None:
        real = current.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in _entries(current, root, report):
            if entry.is_dir():
                if entry.is_symlink() and not entry.resolve().is_relative_to(home):
                    # a/loop -> .. would pull every other class's images into this one
                    log.warning("not following %s: it links out of %s", entry, folder)
                    if report is not None:
                        report.links_out.append(f"{_rel(entry, root)}/")
                    continue
                walk(entry)
            elif entry.is_file():
                found.append(entry)

    walk(folder)
    return found
