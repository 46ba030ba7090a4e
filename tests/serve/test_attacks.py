"""Slow and greedy clients against a running demo (bounded, on 127.0.0.1 and 127.0.0.2):
a normal request is still answered within a second."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from cnnkit.predict import Predictor
from cnnkit.serve.app import ServeSettings, create_app
from cnnkit.serve.server import serve_in_background
from tests.serve.test_server import Server, digit_png, read_answer, send

HEADER_SECONDS = 1.5
PER_CLIENT = 8
ATTACKER = "127.0.0.2"  # another loopback address: another client to the server


@pytest.fixture(scope="module")
def server(trained):
    predictor = Predictor(trained, device="cpu")
    settings = ServeSettings(max_concurrent=2, body_seconds=20.0)
    with serve_in_background(
        create_app(predictor, settings), header_seconds=HEADER_SECONDS, max_per_client=PER_CLIENT
    ) as url:
        yield Server(url, int(url.rstrip("/").rsplit(":", 1)[1]), predictor)


def attacker_socket(server: Server) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((ATTACKER, 0))
    sock.connect(("127.0.0.1", server.port))
    return sock


def answered_quickly(server: Server) -> None:
    started = time.monotonic()
    info = send(server, "GET", "/api/info")
    answer = send(server, "POST", "/api/predict", digit_png(server))
    took = time.monotonic() - started
    assert info.status == 200 and answer.status == 200, (info.body, answer.body)
    assert took < 1.0, f"a normal request took {took:.2f} s"


def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """What the server sent before closing ``sock`` (fails if it stays open ``within`` s)."""
    sock.settimeout(within)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_connections_that_never_finish_their_headers_lock_nobody_out(server) -> None:
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(70):  # more than uvicorn's 64 connections
            sock = stack.enter_context(attacker_socket(server))
            with contextlib.suppress(OSError):
                sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
            held.append(sock)
        time.sleep(0.3)
        answered_quickly(server)
        # all but the first PER_CLIENT were refused at once, with a 503
        refused = [closed_by_server(sock, 1.0) for sock in held[PER_CLIENT:]]
        assert all(b"503" in data and b"too many connections" in data for data in refused)
        # the ones let in are closed when their headers are late
        started = time.monotonic()
        for sock in held[:PER_CLIENT]:
            assert closed_by_server(sock, HEADER_SECONDS + 3) == b""
        assert time.monotonic() - started < HEADER_SECONDS + 1
        answered_quickly(server)


def test_headers_sent_a_byte_at_a_time_are_cut_off(server) -> None:
    with attacker_socket(server) as sock:
        started = time.monotonic()
        request = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
        with contextlib.suppress(OSError):
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)  # the whole request would take 10 s
        assert closed_by_server(sock, 5) == b""
        assert time.monotonic() - started < HEADER_SECONDS + 1.5
    answered_quickly(server)


def test_keep_alive_then_slow_headers_are_cut_off_too(server) -> None:
    with attacker_socket(server) as sock:
        sock.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert read_answer(sock).status == 200
        sock.sendall(b"GET /api/info HTTP/1.1\r\n")  # the second request never ends
        started = time.monotonic()
        assert closed_by_server(sock, 8) == b""
        assert time.monotonic() - started < HEADER_SECONDS + 1


def test_two_trickling_uploads_hold_no_prediction_slot(server) -> None:
    png = digit_png(server)
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {len(png)}\r\n\r\n"
    ).encode()
    with attacker_socket(server) as one, attacker_socket(server) as two:
        for sock in (one, two):
            sock.sendall(head + png[:1])
        for i in range(1, 4):  # 1 byte every 0.3 s each, while others use the demo
            time.sleep(0.3)
            for sock in (one, two):
                sock.sendall(png[i : i + 1])
            answered_quickly(server)
        for sock in (one, two):  # they finish in the end, and are answered too
            sock.sendall(png[4:])
            assert read_answer(sock).status == 200
