"""Running the web demo: where it listens, which host names it answers to, uvicorn.

The demo listens on 127.0.0.1 unless told otherwise: any other address needs
``allow_remote=True`` (``cnnkit serve --host ADDRESS --allow-remote``), and a warning is
logged, since the page then answers anyone who can reach the machine.

Connections are bounded by uvicorn's own settings (:data:`MAX_CONNECTIONS` at once, idle
keep-alive closed after :data:`KEEP_ALIVE_SECONDS`, headers at most
:data:`MAX_HEADER_BYTES`) and two limits uvicorn lacks, added to its h11 protocol: a
connection must deliver each request's headers within :data:`HEADER_SECONDS`, and one client
address holds at most :data:`MAX_PER_CLIENT` connections (more are answered 503 and
closed), so a few slow or idle clients cannot lock everyone else out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from cnnkit.errors import ConfigError
from cnnkit.serve.app import LOOPBACK_HOSTS, ASGIApp, ServeSettings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_CONNECTIONS = 64  # open connections uvicorn serves at once; more are answered 503
KEEP_ALIVE_SECONDS = 5
HEADER_SECONDS = 10.0  # a request's headers must arrive within this; else the connection closes
MAX_PER_CLIENT = 8  # open connections one client address may hold
MAX_HEADER_BYTES = 16 * 1024  # h11's bound on a request's headers


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for the all-interfaces addresses ``0.0.0.0`` and ``::``."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def host_names(host: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The names the ``Host`` header may carry when listening on ``host``.

    Loopback names always; the address listened on; for all interfaces (``0.0.0.0``) also
    this machine's host name; and ``extra`` (``--allowed-host``).
    """
    names = list(LOOPBACK_HOSTS)
    if is_wildcard(host):
        names += [socket.gethostname(), socket.getfqdn()]
    else:
        names.append(host.strip("[]"))
    names += list(extra)
    return tuple(dict.fromkeys(n.lower() for n in names if n))


def check_bind(host: str, *, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless ``allow_remote``; warn when it is allowed.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``allow_remote`` is False.
    """
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(
            f"--host {host} would let other machines reach the demo; it listens on "
            f"{DEFAULT_HOST} by default. Add --allow-remote if you mean it"
        )
    log.warning(
        "listening on %s: anyone who can reach this machine can use the demo (uploads are "
        "capped and decoded in memory, but there is no login)",
        host,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one).

    Raises:
        ConfigError: the address cannot be used (port taken, no such interface).
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "(0 picks a free one)"
        ) from exc
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(
    app: ASGIApp,
    *,
    log_level: str = "warning",
    header_seconds: float = HEADER_SECONDS,
    max_per_client: int = MAX_PER_CLIENT,
) -> Any:
    """A uvicorn server for ``app`` with the demo's limits (h11, no proxy headers)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        http=guarded_h11(header_seconds, max_per_client),
        lifespan="off",
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # never trust X-Forwarded-*: the client is who connected
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    return uvicorn.Server(config)


def guarded_h11(header_seconds: float, max_per_client: int) -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers and a cap on the
    connections of one client address."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    refusal = b"too many connections from your address; close some and try again\n"
    busy = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\nretry-after: 1\r\ncontent-length: %d\r\n\r\n%s"
        % (len(refusal), refusal)
    )

    class GuardedH11Protocol(H11Protocol):  # type: ignore[misc]
        _timer: asyncio.TimerHandle | None = None
        _waiting: object = None  # the request cycle the headers timer was armed after

        def connection_made(self, transport: Any) -> None:
            # Send each write at once: without TCP_NODELAY a kept-alive connection's response
            # body waits for the client's delayed ACK of its headers (~40 ms a request).
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)
            host = self.client[0] if self.client else None
            held = sum(_client_host(c) == host for c in self.connections)
            if host is not None and held > max_per_client:
                log.warning("refusing a connection: %s holds %d already", host, held - 1)
                transport.write(busy)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._waiting = self.cycle
            self._timer = self.loop.call_later(header_seconds, self._headers_late)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _headers_late(self) -> None:
            self._timer = None
            if self.cycle is self._waiting and not self.transport.is_closing():
                self.transport.close()  # no (complete) request in time: free the slot

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._waiting:  # a request's headers arrived
                self._disarm()

        def on_response_complete(self) -> None:
            self._disarm()
            self._arm()  # the next request on this connection gets the same deadline
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def _client_host(connection: Any) -> str | None:
    """The address of a uvicorn connection's client (None when unknown)."""
    client = getattr(connection, "client", None)
    return str(client[0]) if client else None


def settings_for(
    host: str, settings: ServeSettings, extra_hosts: Sequence[str] = ()
) -> ServeSettings:
    """``settings`` with the host names allowed for listening on ``host``."""
    return replace(settings, allowed_hosts=host_names(host, extra_hosts))


@contextlib.contextmanager
def serve_in_background(
    app: ASGIApp,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    start_seconds: float = 30.0,
    **limits: Any,
) -> Iterator[str]:
    """Run ``app`` on a thread while the ``with`` block runs; yields its base URL.

    ``limits`` go to :func:`make_server` (``header_seconds``, ``max_per_client``).

    Example:
        >>> with serve_in_background(create_app(Predictor("runs/x"))) as url:
        ...     urllib.request.urlopen(url + "api/info")
    """
    sock = bind_socket(host, port)
    server = make_server(app, **limits)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="cnnkit-serve", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the demo server did not start within {start_seconds:g} s")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
