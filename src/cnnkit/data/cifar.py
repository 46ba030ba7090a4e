"""CIFAR-10 and CIFAR-100 in both published layouts: python batches and binary batches.

The python batches (``cifar-10-batches-py/data_batch_1`` ..., ``cifar-100-python/train``)
are Python-2 pickles (protocol 2) of dicts with bytes keys: ``b"data"`` is an
``(N, 3072)`` uint8 numpy array, channel-planar (1024 red, 1024 green, 1024 blue values,
each row-major 32x32), and the labels are a list of ints (``b"labels"``; CIFAR-100 has
``b"fine_labels"`` and ``b"coarse_labels"``). A pickle can run code when it is loaded, so
they are never given to :func:`pickle.load` as they are:

1. the whole opcode stream is checked first (:func:`pickletools.genops`, which runs
   nothing): only the opcodes of plain data (dicts, lists, tuples, ints, floats, strings,
   bytes, None, booleans) plus ``GLOBAL``/``REDUCE``/``BUILD`` for exactly the three
   numpy names a pickled array needs are admitted, and memo indices must stay small;
   anything else is refused *before anything runs*;
2. the unpickler resolves those three names to stand-ins that accept only the
   arguments a pickled uint8/int array has and build the array with
   :func:`numpy.frombuffer` after checking its size — numpy's own constructors never
   see the foreign values;
3. the result is validated: shapes, dtype, label range, counts.

The binary batches (``data_batch_1.bin`` ..., ``train.bin``) are records of label bytes
(1 for CIFAR-10; coarse then fine for CIFAR-100) followed by the same 3072 pixel bytes;
a file's size must be a whole number of records and every label must be in range.

Where the files are looked for: :mod:`cnnkit.data.locations` (``--data-dir``, the user
cache, ...). In each folder the extracted layout (python first, then binary) is used, or
a downloaded archive is checked against its published checksums and extracted safely
(:mod:`cnnkit.data.archive`) next to itself.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
import pickletools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.data.archive import extract_archive
from cnnkit.data.dataset import Dataset
from cnnkit.data.download import Progress, download, expect_checksums, file_digests
from cnnkit.data.locations import data_home, search_dirs
from cnnkit.errors import ConfigError, DataError, DataNotFoundError

log = logging.getLogger(__name__)

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32  # bytes per image: 3072
MAX_PICKLE_BYTES = 1 << 30  # the largest real batch (CIFAR-100 train) is 155 MB


# -- the restricted unpickler ------------------------------------------------------------

# Opcodes of plain data in protocols 1-4 (text opcodes of protocol 0 are not needed).
_DATA_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
        "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
        "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
        "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        "NONE", "NEWTRUE", "NEWFALSE",
        "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
        "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES",
        "BINUNICODE", "SHORT_BINUNICODE",
        "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
        "GLOBAL", "REDUCE", "BUILD",
    }
)  # fmt: skip
_MEMO_PUTS = frozenset({"BINPUT", "LONG_BINPUT"})
_INT_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})


class _NDArrayClass:
    """Stands in for ``numpy.ndarray`` inside a pickle; it can only be passed along."""

    def __new__(cls, *args: object) -> _NDArrayClass:
        raise pickle.UnpicklingError("numpy.ndarray may only be rebuilt through _reconstruct")


class _DType:
    """Stands in for a ``numpy.dtype`` built by a pickle; only integer dtypes exist."""

    def __init__(self, name: object, align: object = False, copy: object = True) -> None:
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        if not isinstance(text, str) or text not in _INT_DTYPES:
            raise pickle.UnpicklingError(f"array dtype {name!r} is not part of the format")
        self.dtype = np.dtype(text)

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        if order == "<":
            self.dtype = self.dtype.newbyteorder("<")
        elif order == ">":
            self.dtype = self.dtype.newbyteorder(">")
        elif order not in ("|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {order!r}")


class _Array:
    """Stands in for the empty array ``_reconstruct`` makes; ``BUILD`` fills it safely."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed array state")
        shape, dtype, fortran, raw = state[-4:]
        if (
            not isinstance(shape, tuple)
            or len(shape) > 8
            or not all(type(n) is int and n >= 0 for n in shape)
        ):
            raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
        if not isinstance(dtype, _DType) or not isinstance(raw, bytes):
            raise pickle.UnpicklingError("array state lacks its dtype or raw bytes")
        if math.prod(shape) * dtype.dtype.itemsize != len(raw):
            raise pickle.UnpicklingError(
                f"array of shape {shape} needs {math.prod(shape) * dtype.dtype.itemsize} "
                f"bytes but holds {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C")


def _reconstruct(cls: object, shape: object, typecode: object) -> _Array:
    if cls is not _NDArrayClass or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("unexpected arguments to numpy's _reconstruct")
    return _Array()


_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArrayClass,
    ("numpy", "dtype"): _DType,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing {module}.{name}") from None


def _check_opcodes(data: bytes, name: str) -> None:
    """Refuse any pickle that uses more than plain data and the three numpy names."""
    try:
        with warnings.catch_warnings():  # genops decodes text opcodes' escapes before we refuse
            warnings.simplefilter("ignore", DeprecationWarning)
            for opcode, arg, pos in pickletools.genops(io.BytesIO(data)):
                _check_opcode(opcode.name, arg, pos or 0, name)
    except DataError:
        raise
    except Exception as exc:  # pickletools raises ValueError on truncated or unknown data
        raise DataError(f"{name}: not a valid pickle ({exc})") from exc


def _check_opcode(opcode: str, arg: Any, pos: int, name: str) -> None:
    if opcode not in _DATA_OPCODES:
        raise DataError(
            f"{name}: refusing to unpickle: opcode {opcode} at byte {pos} is not part of the "
            "CIFAR format (the file may try to run code); use the original files from the "
            "CIFAR website"
        )
    if opcode == "GLOBAL":
        module, _, attr = str(arg).partition(" ")
        if (module, attr) not in _GLOBALS:
            raise DataError(
                f"{name}: refusing to unpickle: it calls {module}.{attr}, which the CIFAR "
                "format does not use (the file may try to run code); use the original files "
                "from the CIFAR website"
            )
    elif opcode in _MEMO_PUTS and int(arg or 0) > pos:
        raise DataError(f"{name}: malformed pickle (memo index {arg} at byte {pos})")


def load_cifar_pickle(source: Path | bytes, name: str | None = None) -> dict[str, Any]:
    """Read one CIFAR python batch or meta file as a dict with ``str`` keys.

    Numpy arrays come back as read-only numpy arrays; Python-2 strings as bytes.

    Raises:
        DataError: the file is not a pickle, is malformed, or uses anything beyond plain
            data and pickled integer numpy arrays (checked before anything is run).
    """
    label = name or str(source if isinstance(source, Path) else "<pickle bytes>")
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > MAX_PICKLE_BYTES:
                raise DataError(f"{label}: {size} bytes is too large for a CIFAR batch")
            data = source.read_bytes()
        except OSError as exc:
            raise DataError(f"{label}: cannot read file ({exc})") from exc
    else:
        data = source
    _check_opcodes(data, label)
    try:
        result = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{label}: malformed pickle ({exc})") from exc
    if not isinstance(result, dict):
        raise DataError(f"{label}: expected a pickled dict, got {type(result).__name__}")
    out: dict[str, Any] = {}
    for key, value in result.items():
        if not isinstance(key, bytes | str):
            raise DataError(f"{label}: unexpected key {key!r}")
        text = key.decode("latin-1") if isinstance(key, bytes) else key
        if isinstance(value, _Array):
            if value.array is None:
                raise DataError(f"{label}: array {text!r} has no data")
            value = value.array
        out[text] = value
    return out


# -- the two batch formats -----------------------------------------------------------------


def _labels(values: Any, count: int, num_classes: int, key: str, name: str) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise DataError(f"{name}: {key!r} must be a 1-D integer array")
        labels = values.astype(np.int64)
    elif isinstance(values, list) and all(type(v) is int for v in values):
        bad = next((i for i, v in enumerate(values) if not 0 <= v < num_classes), None)
        if bad is not None:  # checked as Python ints: 2**70 does not fit an int64
            raise DataError(
                f"{name}: label {values[bad]} at index {bad} is out of range 0..{num_classes - 1}"
            )
        labels = np.fromiter(values, dtype=np.int64, count=len(values))
    else:
        raise DataError(f"{name}: {key!r} must be a list of ints")
    if len(labels) != count:
        raise DataError(f"{name}: {count} images but {len(labels)} {key!r}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.argmax((labels < 0) | (labels >= num_classes)))
        raise DataError(
            f"{name}: label {int(labels[bad])} at index {bad} is out of range 0..{num_classes - 1}"
        )
    return labels


def read_python_batch(
    path: Path, *, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One python batch: images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)``."""
    batch = load_cifar_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(
            f"{path}: not a CIFAR batch (keys {sorted(batch)}; expected 'data' and {label_key!r})"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' must be a uint8 array")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(f"{path}: 'data' has shape {data.shape}; expected (N, {PIXELS})")
    labels = _labels(batch[label_key], len(data), num_classes, label_key, str(path))
    return data.reshape(-1, *IMAGE_SHAPE), labels


def read_binary_batch(
    path: Path, *, label_bytes: int, label_index: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)``.

    Args:
        label_bytes: label bytes before each image (1 for CIFAR-10, 2 for CIFAR-100).
        label_index: which of them is the label (CIFAR-100: 0 coarse, 1 fine).
    """
    record = label_bytes + PIXELS
    try:
        size = path.stat().st_size
        if size == 0 or size % record:
            raise DataError(
                f"{path}: {size} bytes is not a whole number of {record}-byte records "
                f"({label_bytes} label byte(s) + {PIXELS} pixels); the file is truncated "
                "or not a CIFAR binary batch"
            )
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from exc
    rows = raw.reshape(-1, record)
    labels = _labels(rows[:, label_index], len(rows), num_classes, "label byte", str(path))
    return np.ascontiguousarray(rows[:, label_bytes:]).reshape(-1, *IMAGE_SHAPE), labels


# -- sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CifarArchive:
    """A published archive: file name, URL and checksums (from the CIFAR website)."""

    name: str
    url: str
    md5: str
    sha256: str
    size: int


@dataclass(frozen=True)
class CifarLayout:
    """One published layout: the folder an archive extracts to and the files in it."""

    kind: str  # "python" or "binary"
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str  # the file naming the classes
    archive: CifarArchive


@dataclass(frozen=True)
class CifarSource:
    """CIFAR-10, or CIFAR-100 with fine or coarse labels.

    Attributes:
        name: source name (``cifar10``, ``cifar100``, ``cifar100-coarse``).
        dataset: the cache folder, shared by sources reading the same files.
        classes: class names (the meta files agree; they are checked when present).
        python_label_key: the labels in a python batch.
        python_meta_key: the class names in the python meta file.
        binary_label_bytes: label bytes per binary record.
        binary_label_index: which label byte is this source's label.
        binary_meta: the text file of class names in the binary layout.
        layouts: python first, then binary.
    """

    name: str
    dataset: str
    classes: tuple[str, ...]
    python_label_key: str
    python_meta_key: str
    binary_label_bytes: int
    binary_label_index: int
    binary_meta: str
    layouts: tuple[CifarLayout, ...]
    val_size: int = 5000
    known_dirs: tuple[Path, ...] = field(default=())

    @property
    def how_to_get(self) -> str:
        python = self.layouts[0]
        return (
            f"run `cnnkit data download {self.name}` ({python.archive.size / 1e6:.0f} MB "
            f"from {python.archive.url}), or pass --data-dir pointing at a folder holding "
            f"{python.folder}/, {self.layouts[1].folder}/ or {python.archive.name}"
        )

    def layout(self, kind: str) -> CifarLayout:
        for layout in self.layouts:
            if layout.kind == kind:
                return layout
        raise ConfigError(f"{self.name}: unknown layout {kind!r}; choose python or binary")


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip

_TORONTO = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_LAYOUTS = (
    CifarLayout(
        kind="python",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        archive=CifarArchive(
            "cifar-10-python.tar.gz",
            _TORONTO + "cifar-10-python.tar.gz",
            md5="c58f30108f718f92721af3b95e74349a",
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            size=170_498_071,
        ),
    ),
    CifarLayout(
        kind="binary",
        folder="cifar-10-batches-bin",
        train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test=("test_batch.bin",),
        meta="batches.meta.txt",
        archive=CifarArchive(
            "cifar-10-binary.tar.gz",
            _TORONTO + "cifar-10-binary.tar.gz",
            md5="c32a1d4ab5d03f1284b67883e8d87530",
            sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            size=170_052_171,
        ),
    ),
)
CIFAR100_LAYOUTS = (
    CifarLayout(
        kind="python",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        archive=CifarArchive(
            "cifar-100-python.tar.gz",
            _TORONTO + "cifar-100-python.tar.gz",
            md5="eb9058c3a382ffc7106e4002c42a8d85",
            sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
            size=169_001_437,
        ),
    ),
    CifarLayout(
        kind="binary",
        folder="cifar-100-binary",
        train=("train.bin",),
        test=("test.bin",),
        meta="fine_label_names.txt",
        archive=CifarArchive(
            "cifar-100-binary.tar.gz",
            _TORONTO + "cifar-100-binary.tar.gz",
            md5="03b5dce01913d631647c71ecec9e9cb8",
            sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            size=168_513_733,
        ),
    ),
)

CIFAR10 = CifarSource(
    name="cifar10",
    dataset="cifar10",
    classes=CIFAR10_CLASSES,
    python_label_key="labels",
    python_meta_key="label_names",
    binary_label_bytes=1,
    binary_label_index=0,
    binary_meta="batches.meta.txt",
    layouts=CIFAR10_LAYOUTS,
)
CIFAR100 = CifarSource(
    name="cifar100",
    dataset="cifar100",
    classes=CIFAR100_FINE,
    python_label_key="fine_labels",
    python_meta_key="fine_label_names",
    binary_label_bytes=2,
    binary_label_index=1,
    binary_meta="fine_label_names.txt",
    layouts=CIFAR100_LAYOUTS,
)
CIFAR100_COARSE_SOURCE = CifarSource(
    name="cifar100-coarse",
    dataset="cifar100",
    classes=CIFAR100_COARSE,
    python_label_key="coarse_labels",
    python_meta_key="coarse_label_names",
    binary_label_bytes=2,
    binary_label_index=0,
    binary_meta="coarse_label_names.txt",
    layouts=CIFAR100_LAYOUTS,
)
CIFAR_SOURCES = {s.name: s for s in (CIFAR10, CIFAR100, CIFAR100_COARSE_SOURCE)}


@dataclass(frozen=True)
class CifarFiles:
    """Where one layout of a source was found: the folder and its kind."""

    folder: Path
    layout: CifarLayout


def _layout_in(folder: Path, layout: CifarLayout) -> Path | None:
    for candidate in (folder / layout.folder, folder):
        if all((candidate / f).is_file() for f in (*layout.train, *layout.test)):
            return candidate
    return None


def locate_cifar(source: CifarSource, data_dir: Path | None = None) -> CifarFiles | Path | None:
    """The extracted files of ``source``, else an archive of them, else None."""
    dirs = search_dirs(source.dataset, source.known_dirs, data_dir)
    for folder in dirs:
        for layout in source.layouts:
            found = _layout_in(folder, layout)
            if found is not None:
                return CifarFiles(found, layout)
    for folder in dirs:
        for layout in source.layouts:
            if (folder / layout.archive.name).is_file():
                return folder / layout.archive.name
    return None


def _extract(source: CifarSource, archive: Path) -> CifarFiles:
    layout = next(lay for lay in source.layouts if lay.archive.name == archive.name)
    log.info("checking %s against its published checksums", archive)
    digests = file_digests(archive, ("sha256", "md5"))
    if digests != {"sha256": layout.archive.sha256, "md5": layout.archive.md5}:
        raise DataError(
            f"{archive}: not the published {layout.archive.name} (SHA-256 {digests['sha256']}, "
            f"expected {layout.archive.sha256}); delete it and run `cnnkit data download "
            f"{source.name}`"
        )
    log.info("extracting %s", archive)
    extract_archive(archive, archive.parent)
    found = _layout_in(archive.parent, layout)
    if found is None:
        raise DataError(f"{archive}: the archive does not hold {layout.folder}/ as published")
    return CifarFiles(found, layout)


def _class_names(source: CifarSource, files: CifarFiles) -> tuple[str, ...]:
    """The classes named by the layout's meta file when present, checked; else built in."""
    layout = files.layout
    if layout.kind == "python":
        path = files.folder / layout.meta
        if not path.is_file():
            return source.classes
        names = load_cifar_pickle(path).get(source.python_meta_key)
    else:
        path = files.folder / source.binary_meta
        if not path.is_file():
            return source.classes
        names = [line for line in path.read_bytes().splitlines() if line.strip()]
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(f"{path}: no list of class names in the meta file")
    decoded = tuple(
        n.decode("utf-8", "replace").strip() if isinstance(n, bytes) else n for n in names
    )
    if len(decoded) != len(source.classes):
        raise DataError(
            f"{path}: names {len(decoded)} classes; {source.name} has {len(source.classes)}"
        )
    return decoded


def load_cifar(source: CifarSource, data_dir: Path | None = None) -> dict[str, Dataset]:
    """Read the train and test parts of ``source`` (extracting its archive when needed).

    Returns:
        ``{"train": Dataset, "test": Dataset}`` with uint8 images ``(N, 3, 32, 32)``.

    Raises:
        DataNotFoundError: no layout and no archive in any searched folder.
        DataError: a file is malformed or unsafe.
    """
    found = locate_cifar(source, data_dir)
    if found is None:
        where = "\n  ".join(
            str(d) for d in search_dirs(source.dataset, source.known_dirs, data_dir)
        )
        raise DataNotFoundError(
            f"{source.name}: files not found.\nLooked in:\n  {where}\nTo fix: {source.how_to_get}."
        )
    files = found if isinstance(found, CifarFiles) else _extract(source, found)
    classes = _class_names(source, files)
    parts = {}
    for split in ("train", "test"):
        names = getattr(files.layout, split)
        chunks = [_read(source, files, files.folder / name) for name in names]
        images = np.concatenate([c[0] for c in chunks])
        labels = np.concatenate([c[1] for c in chunks])
        tag = f"{source.name}:{split}"
        parts[split] = Dataset.from_numpy(
            images,
            labels,
            classes,
            source=f"{tag} ({files.folder})",
            ids=[f"{tag}/{i}" for i in range(len(labels))],
        )
    return parts


def _read(source: CifarSource, files: CifarFiles, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if files.layout.kind == "python":
        return read_python_batch(
            path, label_key=source.python_label_key, num_classes=len(source.classes)
        )
    return read_binary_batch(
        path,
        label_bytes=source.binary_label_bytes,
        label_index=source.binary_label_index,
        num_classes=len(source.classes),
    )


def download_cifar(
    source: CifarSource,
    dest_dir: Path | None = None,
    *,
    kind: str = "python",
    progress: Progress | None = None,
) -> Path:
    """Download and extract one layout of ``source`` (default: the python batches).

    The archive is checked against its published SHA-256 and MD5 before it is renamed
    into place, then extracted safely beside itself.

    Returns:
        The folder holding the extracted batches.
    """
    layout = source.layout(kind)
    folder = Path(dest_dir) if dest_dir is not None else data_home() / source.dataset
    found = _layout_in(folder, layout)
    if found is not None:
        return found
    archive = folder / layout.archive.name
    if not archive.is_file():
        download(
            [layout.archive.url],
            archive,
            verify=expect_checksums(sha256=layout.archive.sha256, md5=layout.archive.md5),
            progress=progress,
        )
    return _extract(source, archive).folder
