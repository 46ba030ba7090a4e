"""Safe archive extraction: only regular files and folders, only inside the destination."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from cnnkit.data.archive import extract_archive
from cnnkit.errors import DataError


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_a_good_tar_gz_is_extracted(tmp_path) -> None:
    archive = make_tar(
        tmp_path / "good.tar.gz",
        [
            (member("data", tarfile.DIRTYPE), None),
            (member("data/a.bin"), b"alpha"),
            (member("./data/sub/b.bin"), b"beta"),
        ],
    )
    created = extract_archive(archive, tmp_path / "out")
    assert created == [tmp_path / "out" / "data"]
    assert (tmp_path / "out/data/a.bin").read_bytes() == b"alpha"
    assert (tmp_path / "out/data/sub/b.bin").read_bytes() == b"beta"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["data"]  # no staging left


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((member("../evil.txt"), b"x"), "climbs out"),
        ((member("data/../../evil.txt"), b"x"), "climbs out"),
        ((member("/tmp/evil.txt"), b"x"), "absolute path"),
        ((member("C:/evil.txt"), b"x"), "absolute path"),
        ((member("data\\..\\evil.txt"), b"x"), "not a plain relative path"),
        ((member("data/link", tarfile.SYMTYPE, "/etc/passwd"), None), "symbolic link"),
        ((member("data/hard", tarfile.LNKTYPE, "data/a.bin"), None), "hard link"),
        ((member("data/dev", tarfile.CHRTYPE), None), "device"),
        ((member("data/fifo", tarfile.FIFOTYPE), None), "FIFO"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "drive",
        "backslash",
        "symlink",
        "hardlink",
        "device",
        "fifo",
    ],
)
def test_unsafe_tar_members_fail_and_leave_nothing(tmp_path, bad, message) -> None:
    archive = make_tar(tmp_path / "bad.tar", [(member("data/a.bin"), b"alpha"), bad], mode="w")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        extract_archive(archive, out)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_a_symlink_followed_by_a_file_through_it_is_refused(tmp_path) -> None:
    archive = make_tar(
        tmp_path / "bad.tar",
        [(member("link", tarfile.SYMTYPE, str(tmp_path)), None), (member("link/evil"), b"x")],
    )
    with pytest.raises(DataError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def make_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def test_a_good_zip_is_extracted(tmp_path) -> None:
    archive = make_zip(tmp_path / "good.zip", [("top/", b""), ("top/x.txt", b"hello")])
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out/top/x.txt").read_bytes() == b"hello"


def test_unsafe_zip_members_fail(tmp_path) -> None:
    link = zipfile.ZipInfo("top/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    cases = [
        ([("../evil.txt", b"x")], "climbs out"),
        ([("/abs.txt", b"x")], "absolute path"),
        ([(link, b"/etc/passwd")], "symbolic link"),
    ]
    for i, (entries, message) in enumerate(cases):
        archive = make_zip(tmp_path / f"bad{i}.zip", entries)
        with pytest.raises(DataError, match=message):
            extract_archive(archive, tmp_path / f"out{i}")
        assert list((tmp_path / f"out{i}").iterdir()) == []


def test_size_limits_and_not_an_archive(tmp_path) -> None:
    archive = make_tar(tmp_path / "big.tar.gz", [(member("a.bin"), b"\0" * 5000)])
    with pytest.raises(DataError, match="more than 1000 bytes"):
        extract_archive(archive, tmp_path / "out", max_bytes=1000)
    many = make_tar(tmp_path / "many.tar", [(member(f"{i}.bin"), b"x") for i in range(5)], "w")
    with pytest.raises(DataError, match="more than 3 members"):
        extract_archive(many, tmp_path / "out2", max_members=3)
    text = tmp_path / "x.tar.gz"
    text.write_bytes(b"not an archive at all" * 10)
    with pytest.raises(DataError, match="not a tar or zip archive"):
        extract_archive(text, tmp_path / "out3")


def test_corrupt_archive_and_existing_entries(tmp_path) -> None:
    noise = __import__("random").Random(0).randbytes(50_000)  # incompressible
    archive = make_tar(tmp_path / "good.tar.gz", [(member("data/a.bin"), noise)])
    data = archive.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt archive"):
        extract_archive(broken, tmp_path / "out")
    extract_archive(archive, tmp_path / "again")
    with pytest.raises(DataError, match="would overwrite"):
        extract_archive(archive, tmp_path / "again")
