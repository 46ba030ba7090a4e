"""Safe extraction of downloaded archives (tar, tar.gz/bz2/xz, zip).

An archive from the internet is foreign data. :func:`extract_archive` writes only regular
files and folders whose paths stay inside the destination: a member that is a link
(symbolic or hard), a device, a FIFO, an absolute path, a path with ``..``, or a name
that is not a plain relative path makes the whole archive fail, and nothing of it is
left behind. It never calls ``tarfile``'s own extraction, so the rules are the same on
every Python version (the ``filter=`` argument only exists from 3.11.4/3.12).

Sizes are bounded too: the bytes written (``max_bytes``) and the number of members
(``max_members``), so a small archive cannot fill the disk.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from cnnkit.errors import DataError

MAX_BYTES = 8 << 30  # 8 GiB: far above CIFAR's 180 MB, far below a full disk
MAX_MEMBERS = 1_000_000
COPY_CHUNK = 1 << 20


def extract_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_BYTES,
    max_members: int = MAX_MEMBERS,
) -> list[Path]:
    """Extract ``archive`` into the folder ``dest`` (created when missing).

    The archive is first extracted into a temporary folder inside ``dest``; only when every
    member passed the checks are its top-level entries moved into ``dest``.

    Args:
        archive: a tar file (plain, gzip, bzip2 or xz; decided by content) or a zip file.
        dest: the folder to extract into; an entry the archive would create there must
            not exist yet.
        max_bytes: refuse archives that would write more than this many bytes.
        max_members: refuse archives with more members than this.

    Returns:
        The top-level paths created in ``dest``.

    Raises:
        DataError: the archive is unreadable, corrupt, too large, holds an unsafe member,
            or would overwrite an existing entry.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise DataError(f"{archive}: no such archive")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        staging_dir = tempfile.TemporaryDirectory(prefix=".extract-", dir=dest)
    except OSError as exc:
        raise DataError(
            f"{archive}: cannot extract into {dest} ({exc}); copy the archive to a folder "
            "you can write to, or pass --data-dir"
        ) from exc
    with staging_dir as tmp:
        staging = Path(tmp)
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging, max_bytes, max_members)
            elif _is_tar(archive):
                _extract_tar(archive, staging, max_bytes, max_members)
            else:
                raise DataError(
                    f"{archive}: not a tar or zip archive; download it again "
                    "(`cnnkit data download`)"
                )
        except DataError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:
            raise DataError(
                f"{archive}: corrupt archive ({exc}); delete it and download it again"
            ) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise DataError(f"{archive}: cannot extract ({exc})") from exc
        created = []
        entries = sorted(staging.iterdir())
        for entry in entries:
            if (dest / entry.name).exists():
                raise DataError(
                    f"{archive}: would overwrite {dest / entry.name}; remove it first to "
                    "extract the archive again"
                )
        for entry in entries:
            os.replace(entry, dest / entry.name)
            created.append(dest / entry.name)
    return created


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError):
        return False


def safe_member_path(name: str, archive: Path) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive root itself.

    Raises:
        DataError: the name is absolute, has a drive or backslash, or climbs with ``..``.
    """
    if not name or "\x00" in name or "\\" in name:
        raise DataError(f"{archive}: refusing member {name!r}: not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{archive}: refusing member {name!r}: absolute path")
    parts = [part for part in path.parts if part != "."]
    if ".." in parts:
        raise DataError(f"{archive}: refusing member {name!r}: the path climbs out with '..'")
    return PurePosixPath(*parts) if parts else None


def _target(root: Path, relative: PurePosixPath, archive: Path, name: str) -> Path:
    target = root.joinpath(*relative.parts)
    resolved = Path(os.path.realpath(target))
    if not resolved.is_relative_to(Path(os.path.realpath(root))):
        raise DataError(f"{archive}: refusing member {name!r}: it resolves outside the folder")
    return target


class _Budget:
    def __init__(self, archive: Path, max_bytes: int, max_members: int) -> None:
        self.archive, self.max_bytes, self.max_members = archive, max_bytes, max_members
        self.bytes = 0
        self.members = 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise DataError(f"{self.archive}: more than {self.max_members} members; refusing it")

    def add(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise DataError(
                f"{self.archive}: would write more than {self.max_bytes} bytes; refusing it"
            )


def _copy(source: IO[bytes], target: Path, declared: int, budget: _Budget, name: str) -> None:
    if budget.bytes + declared > budget.max_bytes:
        budget.add(declared)  # raises: the declared size alone is over the limit
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("xb") as out:  # "x": never follow or overwrite anything
        for block in iter(lambda: source.read(COPY_CHUNK), b""):
            written += len(block)
            if written > declared:
                raise DataError(f"{budget.archive}: member {name!r} is larger than it declares")
            budget.add(len(block))
            out.write(block)
    if written != declared:
        raise DataError(
            f"{budget.archive}: member {name!r} is truncated ({written} of {declared} bytes)"
        )


def _extract_tar(archive: Path, root: Path, max_bytes: int, max_members: int) -> None:
    budget = _Budget(archive, max_bytes, max_members)
    with tarfile.open(archive, mode="r:*") as tar:
        for member in _members(tar):
            budget.member()
            kind = _tar_kind(member)
            if kind not in ("file", "folder"):
                raise DataError(
                    f"{archive}: refusing member {member.name!r}: it is a {kind}; only "
                    "regular files and folders are extracted"
                )
            relative = safe_member_path(member.name, archive)
            if relative is None:
                continue
            target = _target(root, relative, archive, member.name)
            if kind == "folder":
                target.mkdir(parents=True, exist_ok=True)
                continue
            source = tar.extractfile(member)
            if source is None:
                raise DataError(f"{archive}: member {member.name!r} has no data")
            with source:
                _copy(source, target, member.size, budget, member.name)


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    member = tar.next()
    while member is not None:
        yield member
        member = tar.next()


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "folder"
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "special member"


def _extract_zip(archive: Path, root: Path, max_bytes: int, max_members: int) -> None:
    budget = _Budget(archive, max_bytes, max_members)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            budget.member()
            mode = info.external_attr >> 16
            file_type = stat.S_IFMT(mode)
            if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
                kind = "symbolic link" if stat.S_ISLNK(mode) else "special member"
                raise DataError(
                    f"{archive}: refusing member {info.filename!r}: it is a {kind}; only "
                    "regular files and folders are extracted"
                )
            if info.flag_bits & 0x1:
                raise DataError(f"{archive}: member {info.filename!r} is encrypted")
            relative = safe_member_path(info.filename, archive)
            if relative is None:
                continue
            target = _target(root, relative, archive, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as source:
                _copy(source, target, info.file_size, budget, info.filename)
