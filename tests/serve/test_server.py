"""The web demo against hostile input: every case sent to a running server on loopback.

The server runs on a thread (uvicorn, a free port on 127.0.0.1) with small limits, and each
test speaks raw HTTP to it so that it can lie about lengths, hosts and types.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import struct
import sys
import time
import zlib
from dataclasses import dataclass

import pytest
from PIL import Image

from cnnkit.errors import ConfigError
from cnnkit.predict import Predictor
from cnnkit.serve.app import SECURITY_HEADERS, ServeSettings, create_app, host_name
from cnnkit.serve.server import check_bind, host_names, is_loopback, serve_in_background
from tests.data import imagefiles as f

LIMIT = 64 * 1024  # upload cap of the test server, bytes
MAX_PIXELS = 1_000_000
BODY_SECONDS = 3.0


@dataclass
class Server:
    url: str
    port: int
    predictor: Predictor

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def server(trained):
    predictor = Predictor(trained, device="cpu")
    settings = ServeSettings(
        max_upload_bytes=LIMIT,
        max_pixels=MAX_PIXELS,
        max_concurrent=1,
        body_seconds=BODY_SECONDS,
    )
    with serve_in_background(create_app(predictor, settings)) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        yield Server(url, port, predictor)


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def read_answer(sock: socket.socket) -> Answer:
    """Read one HTTP/1.1 response (JSON or page) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(status, headers, rest[:length])


def send(
    server: Server,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    host: str | None = None,
) -> Answer:
    """One request with a correct Content-Length (unless ``headers`` give another)."""
    fields = {"Host": host if host is not None else server.host, "Connection": "close"}
    if method == "POST":
        fields["Content-Length"] = str(len(body))
    fields.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    with connect(server) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        # the server may answer and close before it has read everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(body)
        return read_answer(sock)


def digit_png(server: Server, index: int = 0) -> bytes:
    image = server.predictor.run.load_data("test").images[index, 0].numpy()
    return f.png(image)


def still_up(server: Server) -> None:
    answer = send(server, "POST", "/api/predict", digit_png(server))
    assert answer.status == 200, answer.body


# -- the good path -----------------------------------------------------------------------


def test_a_good_upload_gets_the_predictors_answer(server) -> None:
    png = digit_png(server, 3)
    answer = send(server, "POST", "/api/predict?top_k=3", png)
    assert answer.status == 200, answer.body
    data = answer.json
    (expected,) = server.predictor.predict([png], top_k=3)
    assert [s["class"] for s in data["top"]] == [s.name for s in expected.top]
    assert data["predicted"]["probability"] == pytest.approx(expected.best.probability)
    seen = Image.open(io.BytesIO(base64.b64decode(data["input"].split(",", 1)[1])))
    assert seen.size == (28, 28) and seen.mode == "L"
    overlay = Image.open(io.BytesIO(base64.b64decode(data["gradcam"]["overlay"].split(",")[1])))
    assert overlay.size == (224, 224) and overlay.mode == "RGB"
    assert data["gradcam"]["layer"].startswith("features")
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value


def test_the_page_and_its_files_are_served(server) -> None:
    page = send(server, "GET", "/")
    assert page.status == 200 and b'<canvas id="pad"' in page.body
    assert b"http" not in page.body.replace(b'name="viewport"', b"")  # nothing from elsewhere
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    script = send(server, "GET", "/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    info = send(server, "GET", "/api/info").json
    assert info["run"] == "tiny" and info["canvas"] == {"enabled": True, "ink": "light"}
    assert info["gradcam"] is True and info["max_upload_bytes"] == LIMIT


# -- hostile input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.:1", ""],
)
def test_foreign_host_headers_are_refused(server, host) -> None:
    """DNS rebinding: a page elsewhere whose name resolves to 127.0.0.1 gets nothing."""
    for method, path in (("GET", "/"), ("GET", "/api/info"), ("POST", "/api/predict")):
        answer = send(server, method, path, digit_png(server), host=host)
        assert answer.status == 400, (host, path, answer.body)
        if host:
            assert "is not allowed" in answer.json["error"]
    still_up(server)


def test_loopback_names_are_accepted(server) -> None:
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        assert send(server, "GET", "/api/info", host=host).status == 200, host


def test_cross_origin_posts_are_refused(server) -> None:
    png = digit_png(server)
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port + 1}"):
        answer = send(server, "POST", "/api/predict", png, headers={"Origin": origin})
        assert answer.status == 403 and "cross-origin" in answer.json["error"], origin
    same = send(server, "POST", "/api/predict", png, headers={"Origin": server.url.rstrip("/")})
    assert same.status == 200


def test_a_declared_length_over_the_cap_is_refused_before_reading(server) -> None:
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Content-Length: {LIMIT * 1000}\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head.encode())  # and not one byte of the body
        started = time.monotonic()
        answer = read_answer(sock)
    assert answer.status == 413 and "over the upload limit" in answer.json["error"]
    assert time.monotonic() - started < BODY_SECONDS  # answered without waiting for a body
    still_up(server)


def test_a_streamed_body_over_the_cap_is_cut_off(server) -> None:
    """No Content-Length (chunked): counted while it streams, refused once past the cap."""
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: {server.host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 8192
    sent = 0
    with connect(server) as sock:
        sock.sendall(head.encode())
        try:
            for _ in range(64):  # up to 512 KiB, 8x the cap
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(sock)
    assert answer.status == 413, answer.body
    still_up(server)


def test_a_lying_content_length_is_a_clean_error(server) -> None:
    for value in ("-5", "abc", "1e3"):
        answer = send(server, "POST", "/api/predict", b"", headers={"Content-Length": value})
        assert answer.status == 400, (value, answer.body)
    still_up(server)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("garbage", os.urandom(2048), "not a readable image"),
        ("text", b"GIF89a? no, just text pretending to be a picture", "the upload:"),
        ("html", b"<html><script>alert(1)</script></html>", "not a readable image"),
        ("truncated png", f.truncated(f.png(f.rgb_array(1, 64, 64))), "the upload: "),
        ("eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a readable image"),
    ],
)
def test_garbage_is_refused_with_422(server, name, body, message) -> None:
    answer = send(server, "POST", "/api/predict", body)
    assert answer.status == 422, (name, answer.body)
    assert message in answer.json["error"], answer.json
    still_up(server)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` grey pixels and holds a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bombs_are_refused_before_decoding(server) -> None:
    # a real bomb: 3000 x 3000 = 9 Mpixels of zeros, squeezed into a few KB
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, format="PNG", optimize=True)
    bomb = buffer.getvalue()
    assert len(bomb) < LIMIT
    for body in (bomb, _png_header_only(65535, 65535), _png_header_only(100_000, 100_000)):
        answer = send(server, "POST", "/api/predict", body)
        assert answer.status == 422, answer.body
        assert "too large" in answer.json["error"] or "not a readable" in answer.json["error"]
    still_up(server)


def test_the_declared_type_and_file_name_mean_nothing(server) -> None:
    """The bytes are decoded for what they are; multipart framing is not an image."""
    jpeg = f.jpeg(f.rgb_array(5, 40, 40))
    for content_type in ("image/png", "text/html", "application/x-msdownload"):
        answer = send(server, "POST", "/api/predict", jpeg, headers={"Content-Type": content_type})
        assert answer.status == 200, answer.body
    boundary = "XyZ"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="../../../../tmp/evil.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + digit_png(server)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = send(
        server,
        "POST",
        "/api/predict",
        form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status == 422 and "not a readable image" in answer.json["error"]
    assert not os.path.exists("/tmp/evil.png")


WRITES: list[str] = []
WATCHING = [False]


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCHING[0]:
        path, mode, flags = args
        writes = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) if flags else False
        if writes or (isinstance(mode, str) and any(c in mode for c in "wax+")):
            WRITES.append(str(path))


sys.addaudithook(_audit)


def test_nothing_is_written_to_disk(server, tmp_path) -> None:
    """Every file the Python process opens for writing while uploads are handled is caught."""
    still_up(server)  # first use of everything (matplotlib's colour maps, ...) done before
    bodies = (digit_png(server, 1), f.jpeg(f.rgb_array(2, 50, 30)), b"junk" * 100)
    WRITES.clear()
    WATCHING[0] = True
    try:
        statuses = [send(server, "POST", "/api/predict", body).status for body in bodies]
    finally:
        WATCHING[0] = False
    assert statuses == [200, 200, 422] and WRITES == []
    WATCHING[0] = True  # the watch itself works: a write is seen
    try:
        (tmp_path / "control.txt").write_text("x")
    finally:
        WATCHING[0] = False
    assert [str(tmp_path / "control.txt")] == WRITES


def test_bad_options_and_requests(server) -> None:
    png = digit_png(server)
    queries = ("top_k=0", "top_k=11", "top_k=abc", "top_k=-1", "gradcam=yes", "top_k=+3")
    # digits of other scripts: '²' made int() fail (500), '٣' (Arabic 3) was taken as 3
    for query in (*queries, "top_k=%C2%B2", "top_k=%D9%A3", "top_k=" + "9" * 40):
        answer = send(server, "POST", f"/api/predict?{query}", png)
        assert answer.status == 400, (query, answer.body)
        assert "top_k must be a whole number" in answer.json["error"] or "gradcam" in query
    assert "empty request" in send(server, "POST", "/api/predict", b"").json["error"]
    assert send(server, "GET", "/api/predict").status == 405
    assert send(server, "GET", "/nope").status == 404
    for path in ("/static/..%2Frun.json", "/static/%2e%2e%2fapi%2finfo", "/static/index.html"):
        assert send(server, "GET", path).status == 404, path
    still_up(server)


def test_a_slow_upload_holds_no_prediction_slot(server) -> None:
    """The only slot stays free while an upload trickles in; the upload gets 408 in the end."""
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: 5000\r\n\r\n"
    ).encode()
    with connect(server) as slow:
        slow.sendall(head + b"\x89PNG")  # then nothing more
        time.sleep(0.5)
        started = time.monotonic()
        answer = send(server, "POST", "/api/predict", digit_png(server))
        assert answer.status == 200 and time.monotonic() - started < 1.0
        answer = read_answer(slow)
    assert answer.status == 408 and "did not arrive" in answer.json["error"]
    still_up(server)


# -- where it listens --------------------------------------------------------------------


def test_only_loopback_without_an_explicit_flag(caplog) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.1") and is_loopback("::1")
    assert is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.4") and not is_loopback("example.org")
    check_bind("127.0.0.1", allow_remote=False)
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_bind("0.0.0.0", allow_remote=False)
    check_bind("0.0.0.0", allow_remote=True)
    assert "anyone who can reach this machine" in caplog.text


def test_host_names() -> None:
    assert host_names("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert "10.1.2.3" in host_names("10.1.2.3")
    assert "demo.lan" in host_names("0.0.0.0", ["Demo.LAN"])
    assert host_name("Example.org:8000") == "example.org"
    assert host_name("[::1]:8000") == "::1" and host_name("::1") == "::1"


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_upload_bytes must be positive"):
        ServeSettings(max_upload_bytes=0)
    with pytest.raises(ConfigError, match="allowed host"):
        ServeSettings(allowed_hosts=())


def test_port_in_use_is_a_clear_error(server) -> None:
    with (
        pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"),
        serve_in_background(create_app(server.predictor), port=server.port),
    ):
        pass


def test_cli_refuses_a_public_address_without_the_flag(trained) -> None:
    from typer.testing import CliRunner

    from cnnkit.cli.main import app

    result = CliRunner().invoke(app, ["serve", str(trained.path), "--host", "0.0.0.0"])
    assert isinstance(result.exception, ConfigError)
    assert "--allow-remote" in str(result.exception)


def test_responses_on_a_kept_alive_connection_are_sent_at_once(trained) -> None:
    """TCP_NODELAY on every accepted connection: without it, each response after the first
    on a kept-alive connection (what browsers use) waits ~40 ms for a delayed ACK."""
    import http.client
    import threading

    from cnnkit.serve.server import bind_socket, make_server

    sock = bind_socket("127.0.0.1", 0)
    server = make_server(create_app(Predictor(trained, device="cpu")))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        client = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=15)
        for _ in range(2):  # two requests on one connection
            client.request("GET", "/api/info")
            response = client.getresponse()
            assert response.status == 200 and json.loads(response.read())["classes"]
        (connection,) = server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
