"""Data sources (``mnist``, ``cifar10``, ``folder:PATH``, ...) and the entry point that loads
one as train / validation / test splits.

Named sources live in :data:`SOURCES`; ``folder:PATH`` (with optional ``?options``, see
:mod:`cnnkit.data.folder`) names a folder of your own images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cnnkit.data.cifar import CIFAR_SOURCES, CifarFiles, CifarSource, load_cifar, locate_cifar
from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.folder import (
    PREFIX as FOLDER_PREFIX,
)
from cnnkit.data.folder import (
    FolderReport,
    folder_source_name,
    parse_folder_source,
    read_folder,
)
from cnnkit.data.images import DEFAULT_FIT
from cnnkit.data.mnist import FASHION_MNIST, MNIST, IdxSource, candidate_dirs, load_idx_source
from cnnkit.data.split import (
    apply_split_file,
    held_out_count,
    hold_out,
    read_split_file,
)
from cnnkit.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class SourceData:
    """What reading a source gives: its parts, and for a folder the report and root.

    Attributes:
        parts: ``{"train": ..., "test": ...}`` (a folder may also have ``val``, or only
            ``train``).
        report: what reading a folder found (skipped files, sizes, ...); None otherwise.
        root: the folder of a folder source; split files store ids relative to it.
    """

    parts: dict[str, Dataset]
    report: FolderReport | None = None
    root: Path | None = None


@dataclass(frozen=True)
class Source:
    """A data source: how to read it and how it is split by default.

    Attributes:
        name: the name on the command line.
        description: one line for ``cnnkit datasets``.
        read: ``data_dir -> SourceData``; ``data_dir`` is the only folder searched (for a
            folder source: the folder to read instead of the recorded one).
        val_size: validation part held out of train when the source has none (count or
            fraction of the training part).
        locate: ``data_dir -> folder the files are in, or None``.
        how_to_get: what to do when the files are missing.
        test_size: test part held out of train when the source has no test part.
    """

    name: str
    description: str
    read: Callable[[Path | None], SourceData]
    val_size: int | float
    locate: Callable[[Path | None], Path | None]
    how_to_get: str
    test_size: int | float = 0


def _idx(source: IdxSource, description: str) -> Source:
    return Source(
        name=source.name,
        description=description,
        read=lambda data_dir: SourceData(load_idx_source(source, data_dir)),
        val_size=source.val_size,
        locate=lambda data_dir: next(
            (d for d in candidate_dirs(source, data_dir) if source.locate(d) is not None), None
        ),
        how_to_get=source.how_to_get,
    )


def _cifar(source: CifarSource, description: str) -> Source:
    def locate(data_dir: Path | None) -> Path | None:
        found = locate_cifar(source, data_dir)
        return found.folder if isinstance(found, CifarFiles) else found

    return Source(
        name=source.name,
        description=description,
        read=lambda data_dir: SourceData(load_cifar(source, data_dir)),
        val_size=source.val_size,
        locate=locate,
        how_to_get=source.how_to_get,
    )


IDX_SOURCES: dict[str, IdxSource] = {s.name: s for s in (MNIST, FASHION_MNIST)}

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        _idx(MNIST, "MNIST handwritten digits, 28x28 grey, 60,000 train / 10,000 test"),
        _idx(
            FASHION_MNIST,
            "Fashion-MNIST clothing, 28x28 grey, 10 classes, 60,000 train / 10,000 test",
        ),
        _cifar(
            CIFAR_SOURCES["cifar10"],
            "CIFAR-10 photos, 32x32 RGB, 10 classes, 50,000 train / 10,000 test",
        ),
        _cifar(
            CIFAR_SOURCES["cifar100"],
            "CIFAR-100 photos, 32x32 RGB, 100 fine classes, 50,000 train / 10,000 test",
        ),
        _cifar(
            CIFAR_SOURCES["cifar100-coarse"],
            "CIFAR-100 with its 20 coarse (superclass) labels",
        ),
    )
}

FOLDER_DESCRIPTION = (
    "your own images: one sub-folder per class, or train/ (val/) test/ folders of them; "
    'options after "?", e.g. "folder:photos?size=64x64&channels=3"'
)
FOLDER_VAL_SIZE = 0.1  # of the images, when the folder has no val/ folder
FOLDER_TEST_SIZE = 0.2  # of the images, when the folder has no test/ folder (80/20)


def _folder(spec: str) -> Source:
    root, options = parse_folder_source(spec)

    def read(data_dir: Path | None) -> SourceData:
        folder = Path(data_dir) if data_dir is not None else root
        data = read_folder(folder, options)
        return SourceData(data.parts, report=data.report, root=data.report.root)

    return Source(
        name=folder_source_name(root, options),
        description=FOLDER_DESCRIPTION,
        read=read,
        val_size=FOLDER_VAL_SIZE,
        locate=lambda data_dir: (Path(data_dir) if data_dir else root) if root.is_dir() else None,
        how_to_get="pass an existing folder: folder:PATH",
        test_size=FOLDER_TEST_SIZE,
    )


def source_spec(name: str) -> str:
    """``name`` in the form the other functions here read: the path of an existing folder
    (``photos/``) becomes ``folder:photos/``; a source's own name wins over a folder
    called the same (write ``./mnist`` or ``folder:mnist`` for that folder)."""
    if name in SOURCES or name.startswith(FOLDER_PREFIX):
        return name
    return f"{FOLDER_PREFIX}{name}" if Path(name).expanduser().is_dir() else name


def get_source(name: str) -> Source:
    """The source called ``name``, ``folder:PATH`` or the path of a folder; unknown names
    fail with a suggestion."""
    name = source_spec(name)
    if name.startswith(FOLDER_PREFIX):
        return _folder(name)
    try:
        return SOURCES[name]
    except KeyError:
        hint = did_you_mean(name, SOURCES)
        raise ConfigError(
            f"unknown data source {name!r}.{hint} Known: {', '.join(sorted(SOURCES))}, "
            "or the path of a folder of your own images (folder:PATH?OPTIONS)"
        ) from None


def canonical_source(name: str) -> str:
    """The source string to record in a run card: folder paths made absolute."""
    name = source_spec(name)
    return get_source(name).name if name.startswith(FOLDER_PREFIX) else name


def inspection_source(name: str) -> str:
    """The same source, read so that every problem is reported rather than fatal.

    For a folder: ``allow_empty=1`` and ``corrupt=skip``, so ``cnnkit data check`` can list
    empty classes and unreadable files that would stop training. Other names unchanged.
    """
    name = source_spec(name)
    if not name.startswith(FOLDER_PREFIX):
        return name
    root, options = parse_folder_source(name)
    return folder_source_name(root, replace(options, allow_empty=True, corrupt="skip"))


def fit_rule(name: str) -> str:
    """How images of another size are brought to the size of source ``name``'s images.

    A folder source records its rule (``folder:PATH?fit=crop``); every other source has
    images of one size, decoded by the default rule of :mod:`cnnkit.data.images`. Prediction
    decodes new images by the rule the run's training data was read with.
    """
    name = source_spec(name)
    if not name.startswith(FOLDER_PREFIX):
        return DEFAULT_FIT
    _, options = parse_folder_source(name)
    return options.fit


def data_root(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder a folder source reads (sample ids are files under it); None otherwise."""
    name = source_spec(name)
    if not name.startswith(FOLDER_PREFIX):
        return None
    root, _ = parse_folder_source(name)
    return (Path(data_dir) if data_dir is not None else root).expanduser().absolute()


def read_source(name: str, data_dir: str | Path | None = None) -> SourceData:
    """Read the parts of a source as they come (no validation/test split made yet)."""
    return get_source(name).read(Path(data_dir) if data_dir is not None else None)


def make_splits(
    name: str,
    data: SourceData,
    *,
    val_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
    group_by: str | None = None,
    split_file: str | Path | None = None,
) -> Splits:
    """Turn a source's parts into train / validation / test (see :func:`load_dataset`)."""
    if split_file is not None:
        samples = sum(len(part) for part in data.parts.values())
        return apply_split_file(read_split_file(split_file, samples=samples), data.parts, data.root)
    source = get_source(name)
    train = data.parts["train"]
    val, test = data.parts.get("val"), data.parts.get("test")
    pool = len(train)  # sizes given as fractions are fractions of the whole train part
    own = "has its own test split; --test-size applies only to sources without one (a folder "
    own += "without a test/ folder)"
    train, test = _held_out(
        name, train, test, test_size, source.test_size, pool, seed, group_by, "test", own
    )
    own = "has its own validation split (a val/ folder); drop --val-size"
    train, val = _held_out(
        name, train, val, val_size, source.val_size, pool, seed, group_by, "validation", own
    )
    return Splits(train=train, val=val, test=test)


def _held_out(
    name: str,
    train: Dataset,
    own: Dataset | None,
    size: int | float | None,
    default: int | float,
    pool: int,
    seed: int,
    group_by: str | None,
    part: str,
    has_own: str,
) -> tuple[Dataset, Dataset | None]:
    """``(train, part)``: the source's own part, or ``size`` (default ``default``) samples
    held out of ``train``; a size for a part the source has is an error (``has_own``)."""
    if own is not None:
        if size:
            raise ConfigError(f"{name} {has_own}")
        return train, own
    size = default if size is None else size
    if not size:
        return train, None
    return hold_out(train, held_out_count(size, pool), seed=seed, part=part, group_by=group_by)


def load_dataset(
    name: str = "mnist",
    *,
    data_dir: str | Path | None = None,
    val_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 0,
    group_by: str | None = None,
    split_file: str | Path | None = None,
) -> Splits:
    """Load a source as train / validation / test splits.

    Args:
        name: a source name (``cnnkit datasets`` lists them) or ``folder:PATH``.
        data_dir: look only in this folder for the source's files (for ``folder:PATH``:
            read this folder instead of PATH).
        val_size: validation part held out of the training part, stratified and seeded —
            a count or a fraction of the training part; ``None`` takes the source's default
            (MNIST: 5,000; a folder: 0.1), ``0`` keeps no validation set. Not allowed when
            the source has its own validation part.
        test_size: test part held out when the source has no test part (a folder without
            test/): count or fraction; ``None`` = the source's default (a folder: 0.2).
        seed: seeds the splits.
        group_by: a regular expression naming each sample's group in its id (file path);
            groups are never divided between parts.
        split_file: take the parts from this split file (or a run directory's
            ``split.json``) instead of making them; the other split options are ignored.

    Returns:
        Splits with uint8 images; MNIST gives 55,000 / 5,000 / 10,000 by default.
    """
    return make_splits(
        name,
        read_source(name, data_dir),
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        group_by=group_by,
        split_file=split_file,
    )
