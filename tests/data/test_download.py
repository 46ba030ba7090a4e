"""Downloads: resume after a broken connection, clean retry, SHA-256 and MD5, progress."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from cnnkit.data.download import download, expect_checksums
from cnnkit.errors import DownloadError

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Response(io.BytesIO):
    """A urlopen response that can break after ``break_after`` bytes."""

    def __init__(self, data: bytes, status: int, length: int, break_after: int | None = None):
        super().__init__(data)
        self.status = status
        self.headers = {"Content-Length": str(length)}
        self.break_after = break_after

    def read(self, n: int = -1) -> bytes:
        if self.break_after is not None and self.tell() >= self.break_after:
            raise ConnectionResetError("connection reset by peer")
        if self.break_after is not None:
            n = min(n if n > 0 else len(self.getvalue()), self.break_after - self.tell())
        return super().read(n)

    def geturl(self) -> str:
        return "https://mirror/file"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Server:
    """Serves PAYLOAD, honouring Range when ``ranges`` is True; scripted failures."""

    def __init__(self, data: bytes = PAYLOAD, *, ranges: bool = True, breaks=(), errors=()):
        self.data, self.ranges = data, ranges
        self.breaks = list(breaks)  # bytes after which the n-th response breaks
        self.errors = list(errors)  # exceptions raised by the n-th urlopen call
        self.requests: list[str | None] = []

    def urlopen(self, request, timeout):
        rng = request.get_header("Range")
        self.requests.append(rng)
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        start = int(rng.split("=")[1].rstrip("-")) if rng and self.ranges else 0
        body = self.data[start:]
        status = 206 if start else 200
        return Response(body, status, len(body), self.breaks.pop(0) if self.breaks else None)


@pytest.fixture
def serve(monkeypatch):
    def install(server: Server) -> Server:
        monkeypatch.setattr("urllib.request.urlopen", server.urlopen)
        return server

    return install


def test_broken_connection_resumes_with_a_range_request(serve, tmp_path) -> None:
    server = serve(Server(breaks=[4000]))
    seen = []
    target = download(
        ["https://mirror/file"],
        tmp_path / "file",
        verify=expect_checksums(sha256=SHA, md5=MD5),
        progress=lambda done, total: seen.append((done, total)),
        retry_wait_s=0,
    )
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=4000-"]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and (4000, len(PAYLOAD)) in seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_partial_file_from_an_earlier_run_is_resumed(serve, tmp_path) -> None:
    (tmp_path / ".file.part").write_bytes(PAYLOAD[:3000])
    server = serve(Server())
    download(["https://mirror/file"], tmp_path / "file", verify=expect_checksums(md5=MD5))
    assert server.requests == ["bytes=3000-"]
    assert (tmp_path / "file").read_bytes() == PAYLOAD


def test_server_ignoring_range_sends_everything_again(serve, tmp_path) -> None:
    (tmp_path / ".file.part").write_bytes(PAYLOAD[:3000])
    serve(Server(ranges=False))
    download(["https://mirror/file"], tmp_path / "file", verify=expect_checksums(sha256=SHA))
    assert (tmp_path / "file").read_bytes() == PAYLOAD


def test_a_stale_partial_file_is_discarded_and_fetched_again(serve, tmp_path) -> None:
    (tmp_path / ".file.part").write_bytes(b"garbage from another file")
    server = serve(Server())
    download(["https://mirror/file"], tmp_path / "file", verify=expect_checksums(sha256=SHA))
    assert server.requests == ["bytes=25-", None]
    assert (tmp_path / "file").read_bytes() == PAYLOAD


def test_md5_mismatch_fails_and_leaves_nothing(serve, tmp_path) -> None:
    serve(Server(data=PAYLOAD[::-1]))
    with pytest.raises(DownloadError, match=f"checksum mismatch: MD5 .* expected {MD5}"):
        download(["https://mirror/file"], tmp_path / "file", verify=expect_checksums(md5=MD5))
    assert list(tmp_path.iterdir()) == []


def test_gives_up_after_the_attempts_and_lists_each_mirror(serve, tmp_path) -> None:
    not_found = urllib.error.HTTPError("https://a/file", 404, "Not Found", {}, None)
    server = serve(Server(errors=[not_found, OSError("down"), OSError("down"), OSError("down")]))
    with pytest.raises(DownloadError) as info:
        download(
            ["https://a/file", "https://b/file"],
            tmp_path / "file",
            verify=expect_checksums(sha256=SHA),
            retry_wait_s=0,
        )
    message = str(info.value)
    assert "https://a/file: HTTP Error 404" in message and "https://b/file: down" in message
    assert "run the command again" in message
    assert len(server.requests) == 4  # 404 is not retried; "down" is, three times


def test_checksums_are_required() -> None:
    with pytest.raises(ValueError):
        expect_checksums()


def test_plain_http_and_downgrading_redirects_are_refused(serve, tmp_path, monkeypatch) -> None:
    with pytest.raises(DownloadError, match="non-HTTPS"):
        download(["http://mirror/file"], tmp_path / "f", verify=expect_checksums(md5=MD5))
    server = serve(Server())
    monkeypatch.setattr(Response, "geturl", lambda self: "http://evil/file")
    with pytest.raises(DownloadError, match="redirected to a non-HTTPS URL"):
        download(["https://mirror/file"], tmp_path / "f", verify=expect_checksums(md5=MD5))
    assert server.requests and not Path(tmp_path / "f").exists()
