"""MNIST-style sources: four IDX files (train/test images and labels), found or downloaded.

Where a source's files are looked for: see :mod:`cnnkit.data.locations`. A download from
the source's mirrors into the user cache happens only when asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnkit.data.dataset import Dataset
from cnnkit.data.download import Progress, Verify, download
from cnnkit.data.idx import read_idx_pair
from cnnkit.data.locations import data_home, search_dirs
from cnnkit.errors import DataNotFoundError, DownloadError

log = logging.getLogger(__name__)

PACKAGED = Path(__file__).parent / "files"
SPLIT_FILES = {"train": ("train-images", "train-labels"), "test": ("test-images", "test-labels")}


@dataclass(frozen=True)
class IdxFile:
    """One IDX file of a source: its canonical name and the SHA-256 of its uncompressed bytes.

    Checking the uncompressed content (not the ``.gz``) accepts any faithful recompression.
    """

    name: str
    sha256: str


@dataclass(frozen=True)
class IdxSource:
    """An MNIST-like dataset: four IDX files, class names, where to look, where to download."""

    name: str
    classes: tuple[str, ...]
    files: dict[str, IdxFile]  # keys: train-images, train-labels, test-images, test-labels
    mirrors: tuple[str, ...]  # HTTPS base URLs holding "<file>.gz"
    known_dirs: tuple[Path, ...] = ()
    how_to_get: str = ""
    val_size: int = field(default=5000)

    def locate(self, file_dir: Path) -> dict[str, Path] | None:
        """Paths of all four files in ``file_dir`` (``.gz`` or raw), or None if any is missing."""
        found = {}
        for key, spec in self.files.items():
            for candidate in (file_dir / f"{spec.name}.gz", file_dir / spec.name):
                if candidate.is_file():
                    found[key] = candidate
                    break
            else:
                return None
        return found


MNIST = IdxSource(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    files={
        "train-images": IdxFile(
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels": IdxFile(
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test-images": IdxFile(
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test-labels": IdxFile(
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    known_dirs=(PACKAGED / "mnist",),
    how_to_get="cnnkit ships MNIST; reinstall cnnkit, or run `cnnkit data download mnist`",
)


FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    files={
        "train-images": IdxFile(
            "train-images-idx3-ubyte",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels": IdxFile(
            "train-labels-idx1-ubyte",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test-images": IdxFile(
            "t10k-images-idx3-ubyte",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test-labels": IdxFile(
            "t10k-labels-idx1-ubyte",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    mirrors=(
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    known_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    how_to_get=(
        "on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist`; "
        "elsewhere `cnnkit data download fashion-mnist`"
    ),
)


def candidate_dirs(source: IdxSource, data_dir: Path | None) -> list[Path]:
    """Folders searched for ``source``'s files, in order (see :mod:`cnnkit.data.locations`)."""
    return search_dirs(source.name, source.known_dirs, data_dir)


def find_files(source: IdxSource, data_dir: Path | None = None) -> dict[str, Path]:
    """The four files of ``source``; raises DataNotFoundError listing where it looked."""
    searched = candidate_dirs(source, data_dir)
    for folder in searched:
        found = source.locate(folder)
        if found is not None:
            return found
    names = ", ".join(f.name + "[.gz]" for f in source.files.values())
    where = "\n  ".join(str(p) for p in searched)
    raise DataNotFoundError(
        f"{source.name}: files not found ({names}).\nLooked in:\n  {where}\n"
        f"To fix: {source.how_to_get}; or pass --data-dir pointing at a folder holding "
        f"the four files."
    )


def load_idx_source(source: IdxSource, data_dir: Path | None = None) -> dict[str, Dataset]:
    """Read the train and test parts of ``source``.

    Returns:
        ``{"train": Dataset, "test": Dataset}`` with uint8 images ``(N, 1, H, W)``.
    """
    paths = find_files(source, data_dir)
    parts = {}
    for split, (img_key, lbl_key) in SPLIT_FILES.items():
        images, labels = read_idx_pair(
            paths[img_key], paths[lbl_key], num_classes=len(source.classes)
        )
        tag = f"{source.name}:{split}"
        parts[split] = Dataset.from_numpy(
            images,
            labels,
            source.classes,
            source=f"{tag} ({paths[img_key].parent})",
            ids=[f"{tag}/{i}" for i in range(len(labels))],
        )
    return parts


def _verify_uncompressed(expected: str, name: str) -> Verify:
    def verify(path: Path) -> None:
        digest = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
        except (OSError, EOFError) as exc:
            raise DownloadError(f"{name}: not a valid gzip file ({exc})") from exc
        if digest.hexdigest() != expected:
            raise DownloadError(
                f"{name}: checksum mismatch (SHA-256 of content {digest.hexdigest()}, "
                f"expected {expected})"
            )

    return verify


def download_idx_source(
    source: IdxSource,
    dest_dir: Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download the files of ``source`` that are missing from ``dest_dir`` (default: cache).

    Each file is checked against the SHA-256 of its uncompressed content before it is
    renamed into place; files already present and correct are kept.

    Returns:
        The folder holding the four files.
    """
    folder = Path(dest_dir) if dest_dir is not None else data_home() / source.name
    for spec in source.files.values():
        target = folder / f"{spec.name}.gz"
        verify = _verify_uncompressed(spec.sha256, spec.name)
        if target.is_file():
            try:
                verify(target)
                continue
            except DownloadError:
                log.warning("%s is corrupt; downloading it again", target)
        urls = [base + f"{spec.name}.gz" for base in (mirrors or source.mirrors)]
        download(urls, target, verify=verify, progress=progress)
    return folder
