"""Checksummed HTTPS downloads: resumable partial file, verify, then atomic rename.

Nothing is downloaded unless a caller asks explicitly (``--download`` on the command line).

A download goes to a hidden partial file beside its destination (``.<name>.part``). When a
connection breaks, the same mirror is tried again (``attempts`` times, waiting a little
longer each time) and the transfer resumes where it stopped, with an HTTP ``Range``
request; a server that ignores ``Range`` simply sends the whole file again. A later call
resumes a partial file left by an interrupted one. Only when the finished file passes its
checksums (SHA-256 and/or MD5) is it renamed to its destination; a file that fails them
is deleted, and a resumed one is fetched once more from the start, so a stale partial
file can never produce a wrong result.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from cnnkit.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read per network call
TIMEOUT_S = 60  # seconds without data before a connection is given up
ATTEMPTS = 3  # tries per mirror when the connection fails
RETRY_WAIT_S = 1.0  # seconds before the second try; doubled before each later one

# called as progress(bytes_so_far, total_bytes_or_None)
Progress = Callable[[int, int | None], None]
# checks a finished temp file; raises DownloadError when its content is wrong
Verify = Callable[[Path], None]


def file_digests(path: Path, algorithms: Sequence[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file for each of ``algorithms`` (``sha256``, ``md5``), in one read."""
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    return file_digests(path, ("sha256",))["sha256"]


def expect_checksums(*, sha256: str | None = None, md5: str | None = None) -> Verify:
    """A :data:`Verify` comparing the file's SHA-256 and/or MD5 with the published values."""
    expected = {name: value.lower() for name, value in (("sha256", sha256), ("md5", md5)) if value}
    if not expected:
        raise ValueError("expect_checksums needs a SHA-256 or an MD5 value")

    def verify(path: Path) -> None:
        actual = file_digests(path, tuple(expected))
        for name, value in expected.items():
            if actual[name] != value:
                raise DownloadError(
                    f"checksum mismatch: {name.upper().replace('SHA', 'SHA-')} "
                    f"{actual[name]}, expected {value}"
                )

    return verify


def expect_sha256(expected: str) -> Verify:
    """A :data:`Verify` that compares the file's SHA-256 with ``expected``."""
    return expect_checksums(sha256=expected)


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    verify: Verify,
    progress: Progress | None = None,
    attempts: int = ATTEMPTS,
    retry_wait_s: float = RETRY_WAIT_S,
) -> Path:
    """Fetch the first mirror in ``urls`` that works and passes ``verify`` into ``dest``.

    The data goes to ``.<name>.part`` beside ``dest`` and is renamed over it only after
    ``verify`` accepts it, so ``dest`` is either absent or complete and correct.

    Args:
        urls: HTTPS mirrors of the same file, tried in order.
        dest: where the verified file goes.
        verify: raises :class:`DownloadError` when the finished file is wrong.
        progress: called as ``progress(bytes_so_far, total_or_None)`` while data arrives.
        attempts: tries per mirror when the connection fails (resuming each time).
        retry_wait_s: wait before the second try; doubled before each later one.

    Raises:
        DownloadError: a URL is not HTTPS, or every mirror failed (each failure is listed).
    """
    for url in urls:
        if not url.startswith("https://"):
            raise DownloadError(f"refusing to download over a non-HTTPS URL: {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.parent / f".{dest.name}.part"
    failures = []
    for url in urls:
        for fresh_try in (False, True):
            resumed = part.is_file() and part.stat().st_size > 0
            try:
                _fetch_with_retries(url, part, progress, attempts, retry_wait_s)
                verify(part)
            except DownloadError as exc:  # wrong content: never keep it
                _remove(part)
                if resumed and not fresh_try:
                    log.warning("%s: resumed file is wrong (%s); downloading it again", url, exc)
                    continue
                failures.append(f"{url}: {exc}")
                break
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {exc}")
                break
            os.replace(part, dest)
            log.info("downloaded %s -> %s", url, dest)
            return dest
    raise DownloadError(
        f"could not download {dest.name}:\n  " + "\n  ".join(failures) + "\nTo fix: check "
        "the network connection and run the command again (it resumes), or download the "
        f"file yourself and put it at {dest}"
    )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _permanent(exc: BaseException) -> bool:
    """HTTP errors that another try will not fix (404, 403, ...)."""
    return (
        isinstance(exc, urllib.error.HTTPError)
        and 400 <= exc.code < 500
        and exc.code
        not in (
            408,
            429,
        )
    )


def _fetch_with_retries(
    url: str, part: Path, progress: Progress | None, attempts: int, retry_wait_s: float
) -> None:
    for attempt in range(1, attempts + 1):
        try:
            _fetch(url, part, progress)
            return
        except (OSError, http.client.HTTPException) as exc:
            if attempt == attempts or _permanent(exc):
                raise
            wait = retry_wait_s * 2 ** (attempt - 1)
            log.warning("%s: %s; trying again in %.0f s (resuming)", url, exc, wait)
            time.sleep(wait)


def _fetch(url: str, part: Path, progress: Progress | None) -> None:
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "cnnkit"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part is complete
            return
        raise
    with response:
        final_url = getattr(response, "geturl", lambda: url)()
        if not str(final_url).startswith("https://"):
            raise DownloadError(f"{url} redirected to a non-HTTPS URL: {final_url}")
        resuming = bool(start) and getattr(response, "status", 200) == 206
        done = start if resuming else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        with part.open("ab" if resuming else "wb") as out:
            if progress is not None:
                progress(done, total)
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
