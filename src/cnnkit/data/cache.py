"""A decoded cache for folders too large to hold in memory.

``folder:PATH`` is normally decoded into memory. When the decoded images would not fit
(more than half the memory available now, or more than the in-memory limit of
:mod:`cnnkit.data.folder`), or when asked with ``folder:PATH?cache=1``, the images are
decoded once into a raw uint8 file and read from it memory-mapped
(:mod:`cnnkit.data.mapped`): the operating system pages them in as batches touch them and
drops them under memory pressure. ``cache=0`` forces the in-memory path.

The cache lives in ``<data home>/folder-cache/<key>/`` (``$CNNKIT_DATA`` or
``~/.cache/cnnkit``), one folder per folder path and decode options as asked::

    images.u8     the readable images, (N, C, H, W) uint8, in the reader's file order
    header.json   fingerprint, shape, decode settings, each file's header facts, and what
                  decoding each file did (conversions, resizing, why it could not be decoded)
    images-rows-*.u8   parts at other rows (held-out splits): :func:`~cnnkit.data.mapped.take_rows`

The fingerprint is the list of files with their sizes and modification times, their classes,
and the decode options; it is computed from the file system's metadata alone, so reusing a
cache opens no image (headers are probed only when it is built). It is rebuilt when the
fingerprint changes. Decoding uses :func:`cnnkit.data.images.decode_image` — the same rule as
the in-memory path, so both give the same pixels — on several processes, with a progress bar
on a terminal. The header is written last, so an interrupted build is simply built again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.atomic import write_json
from cnnkit.data.images import DecodedImage, ImageInfo, decode_image
from cnnkit.data.locations import data_home
from cnnkit.data.mapped import locked, map_images
from cnnkit.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: keyed by the options as asked; header probes stored
MEMORY_SHARE = 0.5  # decode into memory only when the images take at most this much of it
MIN_PARALLEL = 64  # fewer images are decoded in this process

_NO_PIXELS = np.empty(0, dtype=np.uint8)  # outcomes of rows the cache holds the pixels of
Outcome = DecodedImage | DataError
Readable = tuple[str, int, Path, ImageInfo]  # (split, label, path, header facts)


def cache_home() -> Path:
    """Where decoded folders are cached: ``<data home>/folder-cache``."""
    return data_home() / "folder-cache"


def available_memory() -> int:
    """Bytes this process may still use: free memory, or less under a cgroup limit."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError):
        group = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[-1]
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit != "max":
            used = int((folder / "memory.current").read_text())
            free = min(free, int(limit) - used)
    return max(free, 0)


def use_cache(choice: bool | None, needed: int, limit: int) -> bool:
    """Whether ``needed`` bytes of decoded images go to the disk cache.

    ``choice`` is the folder's ``cache=`` option; None decides by size: the cache when the
    images exceed ``limit`` (the in-memory cap) or half the available memory.
    """
    if choice is not None:
        return choice
    budget = min(limit, available_memory() * MEMORY_SHARE)
    if needed <= budget:
        return False
    log.warning(
        "the decoded images take %.1f GiB, more than fits in memory (%.1f GiB): reading them "
        "from a decoded cache on disk (folder option cache=0 refuses, cache=1 always caches)",
        needed / 2**30,
        budget / 2**30,
    )
    return True


def fingerprint(files: Sequence[tuple[str, int, Path]], settings: dict[str, Any]) -> str:
    """SHA-256 over the decode settings and every file's split, class, path, size and mtime.

    Only the files' metadata is read (one ``stat`` each), never their contents.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for split, label, path in files:
        stat = os.stat(path)
        digest.update(f"{split}\0{label}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


Probe = ImageInfo | DataError


class FolderCache:
    """The cache folder of one folder path read with one set of folder options.

    Made before any image is opened: the fingerprint covers the listed files (split, class,
    path, size, modification time) and the options (size, channels, fit as asked). While it
    matches, :meth:`probes` gives back what reading each file's header found when the cache
    was built, so reusing a cache opens no image file.

    Args:
        root: the folder.
        options: the decode options as asked (``size``, ``channels``, ``fit``; None = chosen
            from the images).
        files: every image file the folder lists, ``(split, label, path)``, in order.
    """

    def __init__(
        self, root: Path, options: dict[str, Any], files: Sequence[tuple[str, int, Path]]
    ) -> None:
        asked = {"version": FORMAT_VERSION, **options}
        key = hashlib.sha256(f"{root}\0{json.dumps(asked, sort_keys=True)}".encode())
        self.folder = cache_home() / key.hexdigest()[:20]
        self.fingerprint = fingerprint(files, asked)
        self._count = len(files)

    def probes(self) -> list[Probe] | None:
        """Each listed file's header facts (or why it could not be read), as found when the
        cache was built; None when there is no cache for these files as they are now."""
        header = _read_header(self.folder / "header.json")
        stored = header.get("probes")
        if header.get("fingerprint") != self.fingerprint or not isinstance(stored, list):
            return None
        if len(stored) != self._count:
            return None
        infos: dict[tuple[Any, ...], ImageInfo] = {}  # most files share a few header facts
        return [
            DataError(p) if isinstance(p, str) else infos.setdefault(tuple(p), ImageInfo(*p))
            for p in stored
        ]

    def images(
        self, report: Any, probes: Sequence[Probe], readable: Sequence[Readable]
    ) -> tuple[np.ndarray, list[Outcome]]:
        """The images of ``readable`` from the cache, building it when missing or stale.

        Args:
            report: the folder's report so far (root, size, channels, fit are decided).
            probes: every listed file's header facts, stored for the next reuse.
            readable: the files whose header could be read, in order; one row each.

        Returns:
            The mapped ``(N, C, H, W)`` images (rows of undecodable files are zero) and, per
            row, what decoding did: a :class:`DecodedImage` with no pixels, or the DataError.
        """
        settings = {"size": list(report.size), "channels": report.channels, "fit": report.fit}
        shape = (len(readable), report.channels, *report.size)
        folder, data = self.folder, self.folder / "images.u8"
        with locked(folder):
            header = _read_header(folder / "header.json")
            fresh = (
                header.get("fingerprint") == self.fingerprint
                and header.get("settings") == settings
                and data.is_file()
                and data.stat().st_size == int(np.prod(shape))
            )
            if fresh:
                log.info("%s: reading decoded images from the cache %s", report.root, folder)
                outcomes = _outcomes(header, readable)
            else:
                started = time.perf_counter()
                outcomes = _build(folder, data, shape, readable, report)
                header = _header(self.fingerprint, settings, shape, outcomes, report)
                header["probes"] = [
                    str(p) if isinstance(p, DataError) else dataclasses.astuple(p) for p in probes
                ]
                write_json(folder / "header.json", header)
                log.info(
                    "%s: decoded %d images into the cache %s in %.1f s",
                    report.root,
                    len(readable),
                    folder,
                    time.perf_counter() - started,
                )
        return map_images(data, shape), outcomes


def _read_header(path: Path) -> dict[str, Any]:
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def _build(
    folder: Path, data: Path, shape: tuple[int, ...], readable: Sequence[Readable], report: Any
) -> list[Outcome]:
    """Decode every row of ``readable`` into ``data`` (stale files of ``folder`` removed)."""
    for stale in folder.iterdir():
        if stale.name != ".lock":
            stale.unlink() if stale.is_file() else shutil.rmtree(stale)
    size = int(np.prod(shape))
    with open(data, "wb") as file:
        file.truncate(size)
    paths = [str(item[2]) for item in readable]
    decode = (str(data), shape, report.channels, tuple(report.size), report.fit)
    results: list[tuple[str, bool, str | None]] = []
    workers = min(os.cpu_count() or 1, 16)
    if len(paths) < MIN_PARALLEL or workers == 1:
        results = _decode_rows(*decode, 0, paths)
    else:
        step = max(16, min(1024, len(paths) // (workers * 8)))
        starts = range(0, len(paths), step)
        context = multiprocessing.get_context("fork")  # workers need Pillow only, not torch
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_decode_rows, *decode, s, paths[s : s + step]) for s in starts]
            with _progress(len(paths), f"decoding {report.root.name} into {folder}") as advance:
                for future in futures:
                    chunk = future.result()
                    results.extend(chunk)
                    advance(len(chunk))
    return [_outcome(result, item[3]) for result, item in zip(results, readable, strict=True)]


def _decode_rows(
    data: str,
    shape: tuple[int, ...],
    channels: int,
    size: tuple[int, int],
    fit: str,
    start: int,
    paths: Sequence[str],
) -> list[tuple[str, bool, str | None]]:
    """Decode ``paths`` into rows ``start...`` of the file ``data``: (conversion, fitted, error)."""
    images = np.memmap(data, dtype=np.uint8, mode="r+", shape=shape)
    out: list[tuple[str, bool, str | None]] = []
    for row, path in enumerate(paths, start):
        try:
            decoded = decode_image(path, channels=channels, size=size, fit=fit)
        except DataError as exc:
            out.append(("", False, str(exc)))
            continue
        images[row] = decoded.pixels
        out.append((decoded.conversion, decoded.fitted, None))
    images.flush()
    del images
    return out


def _outcome(result: tuple[str, bool, str | None], info: ImageInfo) -> Outcome:
    conversion, fitted, error = result
    if error is not None:
        return DataError(error)
    return DecodedImage(_NO_PIXELS, info, conversion, fitted)


def _header(
    fingerprint: str,
    settings: dict[str, Any],
    shape: tuple[int, ...],
    outcomes: Sequence[Outcome],
    report: Any,
) -> dict[str, Any]:
    errors, conversions, fitted = {}, {}, []
    for row, outcome in enumerate(outcomes):
        if isinstance(outcome, DataError):
            errors[str(row)] = str(outcome)
            continue
        if outcome.conversion:
            conversions[str(row)] = outcome.conversion
        if outcome.fitted:
            fitted.append(row)
    return {
        "format": "cnnkit decoded folder cache",
        "root": str(report.root),
        "fingerprint": fingerprint,
        "settings": settings,
        "shape": list(shape),
        "errors": errors,
        "conversions": conversions,
        "fitted": fitted,
    }


def _outcomes(header: dict[str, Any], readable: Sequence[Readable]) -> list[Outcome]:
    errors, conversions = header.get("errors", {}), header.get("conversions", {})
    fitted = set(header.get("fitted", []))
    return [
        _outcome((conversions.get(str(row), ""), row in fitted, errors.get(str(row))), item[3])
        for row, item in enumerate(readable)
    ]


@contextlib.contextmanager
def _progress(total: int, what: str) -> Iterator[Any]:
    """A rich progress bar on stderr (when it is a terminal), advanced by ``advance(n)``."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(
        *Progress.get_default_columns(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)
