"""Checksummed HTTPS downloads: temp file, verify, then atomic rename.

Nothing is downloaded unless a caller asks explicitly (``--download`` on the command line).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from cnnkit.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read per network call
TIMEOUT_S = 60  # seconds without data before a mirror is given up

# called as progress(bytes_so_far, total_bytes_or_None)
Progress = Callable[[int, int | None], None]
# checks a finished temp file; raises DownloadError when its content is wrong
Verify = Callable[[Path], None]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def expect_sha256(expected: str) -> Verify:
    """A :data:`Verify` that compares the file's SHA-256 with ``expected``."""

    def verify(path: Path) -> None:
        actual = sha256_of(path)
        if actual != expected:
            raise DownloadError(f"checksum mismatch: SHA-256 {actual}, expected {expected}")

    return verify


def download(
    urls: Sequence[str], dest: Path, *, verify: Verify, progress: Progress | None = None
) -> Path:
    """Fetch the first mirror in ``urls`` that works and passes ``verify`` into ``dest``.

    The data goes to a temporary file beside ``dest`` and is renamed over it only after
    ``verify`` accepts it, so ``dest`` is either absent or complete and correct.

    Raises:
        DownloadError: a URL is not HTTPS, or every mirror failed (each failure is listed).
    """
    for url in urls:
        if not url.startswith("https://"):
            raise DownloadError(f"refusing to download over a non-HTTPS URL: {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, progress)
            verify(tmp)
            os.replace(tmp, dest)
            log.info("downloaded %s -> %s", url, dest)
            return dest
        except (OSError, urllib.error.URLError, DownloadError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise DownloadError(f"could not download {dest.name}:\n  " + "\n  ".join(failures))


def _fetch(url: str, out: object, progress: Progress | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "cnnkit"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = response.headers.get("Content-Length")
        size = int(total) if total and total.isdigit() else None
        done = 0
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)  # type: ignore[attr-defined]
            done += len(block)
            if progress is not None:
                progress(done, size)
