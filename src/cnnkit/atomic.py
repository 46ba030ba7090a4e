"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or Ctrl-C in the middle of a write leaves the previous file intact. Finished files
get the usual permissions (``0o666`` minus the umask), not the private ``0o600`` of a
temporary file. Folders written as a whole (:func:`atomic_folder`) work the same way.

A temporary file is named ``.<target>.<pid>.<random>.tmp``. A process killed mid-write
(SIGKILL, power loss) cannot remove its own; the next write of the same target removes
those whose process is gone.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@functools.cache
def _umask() -> int:
    umask = os.umask(0o022)  # read the umask (the only way) and put it back at once
    os.umask(umask)
    return umask


def _file_mode() -> int:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def _temporary_beside(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(fd, tmp_path)`` of a new file beside ``path``; on success move it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    try:
        yield fd, tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_stale(target: Path) -> None:
    """Remove temporary files of ``target`` left by writers that no longer run."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isascii() and pid.isdigit() and _is_running(int(pid)):
            continue  # a write in progress (or an unrelated process that reuses the id)
        with contextlib.suppress(OSError):
            leftover.unlink()


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**22  # another user's process, or not a process id at all
    return True


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    Args:
        path: the final file path.
        mode: ``"wb"`` or ``"w"``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    with (
        _temporary_beside(path) as (fd, _),
        os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as handle,
    ):
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_path_atomically(path: str | os.PathLike[str], writer: Callable[[str], Any]) -> None:
    """Call ``writer(tmp_path)`` to produce a file, then move it over ``path`` atomically.

    For libraries (safetensors, matplotlib) that insist on writing to a path themselves.
    """
    with _temporary_beside(path) as (fd, tmp):
        os.close(fd)
        writer(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield a new, empty folder beside ``path`` to fill; on success it becomes ``path``.

    On any exception the staged folder is removed and ``path`` is untouched. The finished
    folder gets the usual permissions (``0o777`` minus the umask).

    Args:
        path: the final folder; it must not exist or be empty, unless ``replace``.
        replace: an existing folder at ``path`` is replaced as a whole (it is moved aside,
            the new one moved in, then the old one deleted).

    Raises:
        FileExistsError: ``path`` is a file, or a non-empty folder and not ``replace``.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.exists() and not replace and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if not target.exists():
            os.replace(staging, target)
        elif not any(target.iterdir()):
            target.rmdir()
            os.replace(staging, target)
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
