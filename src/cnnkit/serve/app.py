"""The web demo's ASGI app: one static page and a JSON prediction endpoint, safe by default.

Routes:

- ``GET /`` — the page; its script and styles from ``GET /static/app.js`` and
  ``/static/style.css`` (shipped in the package, held in memory; nothing is fetched from
  the network, so the page works offline).
- ``GET /api/info`` — the run: name, model, classes, input spec, what the page can offer.
- ``POST /api/predict?top_k=5&gradcam=1`` — the request body is the image file's bytes
  (any format :mod:`cnnkit.data.images` decodes); answers the top-k classes, the image as
  the model saw it and, for convolutional models, the Grad-CAM overlay, as JSON.

What keeps it safe (each is tested against a running server):

- **Host check**: a request whose ``Host`` header does not name this server (loopback
  names by default) is refused with 400, so a web page elsewhere cannot reach the demo by
  DNS rebinding. A ``POST`` from a page of another origin (its ``Origin`` header) gets 403.
- **Upload cap before buffering**: a declared ``Content-Length`` over the cap is refused
  (413) before any of the body is read; a body sent without a length (chunked) is counted
  while it streams in and refused as soon as it passes the cap. A body must arrive within
  :data:`BODY_SECONDS` (else 408).
- **Decided by decoding**: the declared content type and any file name are ignored; the
  bytes are decoded in memory by :func:`cnnkit.data.images.load_image` (common raster
  formats only) and nothing is ever written to disk. Garbage, truncated files and
  decompression bombs (more pixels than ``max_pixels``) get 422 with a JSON message.
- **Bounded concurrency**: at most ``max_concurrent`` predictions are in flight; more get
  503 with ``Retry-After``. An upload is read whole before it takes a slot, so slow
  uploads hold no slot. Model calls are serialised by the predictor. (The server bounds
  header time and connections per client: :mod:`cnnkit.serve.server`.)
- **Numbers are ASCII digits**: ``top_k`` and ``Content-Length`` take 0-9 only.
- **Stays up**: every error is answered with JSON; an unexpected one with 500 (and logged).
- **Headers**: a Content-Security-Policy allowing only this server's own script and styles
  (no inline script), ``nosniff``, no referrer, no framing.

For the user: on runs trained on grey pictures, an upload whose background is light where the
training pictures' is dark (a photo of a digit written on paper, for MNIST) is inverted before
prediction, and the answer says so (``"inverted": true``, shown on the page). Every request
is logged (method, path, status, milliseconds) on the ``cnnkit.serve.requests`` logger, which
``cnnkit serve`` shows.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cnnkit.errors import CnnkitError, ConfigError, DataError
from cnnkit.evaluate.gradcam import heatmap_overlay
from cnnkit.predict import Predictor

log = logging.getLogger(__name__)
requests_log = logging.getLogger("cnnkit.serve.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_UPLOAD_BYTES = 4 << 20  # an upload larger than 4 MiB is refused before it is read
MAX_PIXELS = 4096 * 4096  # larger pictures are refused as decompression bombs
MAX_CONCURRENT = 2  # predictions in flight at once; more are answered 503
BODY_SECONDS = 20.0  # an upload must arrive within this many seconds
OVERLAY_SIZE = 224  # the Grad-CAM overlay is enlarged to about this many pixels a side
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class ServeSettings:
    """The demo's limits.

    Attributes:
        max_upload_bytes: largest request body accepted.
        max_pixels: largest picture (width x height) decoded.
        max_concurrent: predictions in flight at once.
        allowed_hosts: host names the ``Host`` header may carry (without port).
        top_k: classes shown by default.
        body_seconds: time allowed for an upload to arrive.
    """

    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    max_concurrent: int = MAX_CONCURRENT
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    top_k: int = 5
    body_seconds: float = BODY_SECONDS

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_concurrent", "top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"serve setting {name} must be positive, got {getattr(self, name)}"
                )
        if not self.allowed_hosts:
            raise ConfigError("serve needs at least one allowed host name")


class RequestError(Exception):
    """A request refused with an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``; the connection is closed after it."""
    return JSONResponse(
        {"error": message, "status": status},
        status_code=status,
        headers={"connection": "close", **(headers or {})},
    )


class RequestLog:
    """ASGI middleware: one log line per HTTP request: ``POST /api/predict 200 12.3 ms``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]  # 0: no answer was started (the client went away)

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            requests_log.info(
                "%s %s %s %.1f ms",
                scope["method"],
                scope["path"][:200],
                status[0] or "-",
                (time.perf_counter() - started) * 1000,
            )


class Guard:
    """ASGI middleware: Host and Origin checks, and the security headers on every answer."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(h.lower().strip("[]") for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host_name(host)
        if name not in self.allowed:
            shown = host[:80] if host else "(none)"
            await error_response(
                400,
                f"Host header {shown!r} is not allowed: this server answers only as "
                f"{', '.join(sorted(self.allowed))} (cnnkit serve --allowed-host NAME adds one)",
            )(scope, receive, send)
            return
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                await error_response(403, f"cross-origin request from {origin[:80]!r} refused")(
                    scope, receive, send
                )
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> ASGIApp:
    """The demo app for ``predictor``'s run, guarded by :class:`Guard`."""
    settings = settings or ServeSettings()
    demo = Demo(predictor, settings)
    app = Starlette(
        routes=[
            Route("/", demo.page, methods=["GET", "HEAD"]),
            Route("/static/{name}", demo.static, methods=["GET", "HEAD"]),
            Route("/api/info", demo.info, methods=["GET", "HEAD"]),
            Route("/api/predict", demo.predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
    )
    return RequestLog(Guard(app, allowed_hosts=settings.allowed_hosts))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


class Demo:
    """The endpoints, around one predictor."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self.active = 0  # predictions in flight (the event loop is single-threaded)
        folder = resources.files("cnnkit.serve") / "static"
        self.files = {name: (folder / name).read_bytes() for name in STATIC}
        self.about = self._describe()

    def _describe(self) -> dict[str, Any]:
        run, predictor = self.predictor.run, self.predictor
        card = run.card
        accuracy = None
        try:
            metrics = run.read_json(run.files.metrics)
            split = "test" if "test" in metrics else "val"
            accuracy = metrics.get(split, {}).get("accuracy")
            split_name = split
        except (CnnkitError, AttributeError):
            split_name = None
        mean = float(np.mean(predictor.preprocessing.mean))
        self.dark_background = mean < 0.5  # the training pictures' (MNIST: white on black)
        return {
            "run": card.name,
            "model": card.model.name,
            "parameters": card.model.parameters,
            "classes": list(predictor.classes),
            "input": predictor.preprocessing.describe_input(),
            "accuracy": {"split": split_name, "value": accuracy} if accuracy is not None else None,
            # a canvas for grey runs; ink colour like the training images (MNIST: light on dark)
            "canvas": {
                "enabled": predictor.preprocessing.channels == 1,
                "ink": "light" if mean < 0.5 else "dark",
            },
            "gradcam": predictor.explainable,
            "top_k": min(self.settings.top_k, len(predictor.classes)),
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_pixels": self.settings.max_pixels,
        }

    async def page(self, request: Request) -> Response:
        return Response(self.files["index.html"], media_type=STATIC["index.html"])

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC or name == "index.html":
            raise HTTPException(404, f"no static file {name[:80]!r}")
        return Response(self.files[name], media_type=STATIC[name])

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.about)

    async def predict(self, request: Request) -> Response:
        try:
            top_k, gradcam = self._options(request)
            self._check_length(request)
            body = await self._read_body(request)  # whole, before taking a prediction slot
            if self.active >= self.settings.max_concurrent:
                raise RequestError(
                    503,
                    f"busy: {self.active} predictions in flight (the limit is "
                    f"{self.settings.max_concurrent}); try again in a moment",
                    {"retry-after": "1"},
                )
            self.active += 1
            try:
                started = time.perf_counter()
                answer = await run_in_threadpool(self._answer, body, top_k, gradcam)
                answer["milliseconds"] = round((time.perf_counter() - started) * 1000, 1)
                return JSONResponse(answer)
            finally:
                self.active -= 1
        except RequestError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except DataError as exc:
            return error_response(422, str(exc))
        except ConfigError as exc:
            return error_response(400, str(exc))
        except Exception:
            log.exception("prediction failed")
            return error_response(500, "internal error while predicting; see the server log")

    def _options(self, request: Request) -> tuple[int, bool]:
        params = request.query_params
        raw = params.get("top_k", str(self.about["top_k"]))
        if not _is_whole(raw) or not 1 <= int(raw) <= len(self.predictor.classes):
            raise RequestError(
                400,
                f"top_k must be a whole number 1..{len(self.predictor.classes)}, got {raw[:20]!r}",
            )
        flag = params.get("gradcam", "1")
        if flag not in ("0", "1"):
            raise RequestError(400, f"gradcam must be 0 or 1, got {flag[:20]!r}")
        return int(raw), flag == "1"

    def _check_length(self, request: Request) -> None:
        declared = request.headers.get("content-length")
        if declared is None:
            return
        if not _is_whole(declared.strip()):
            raise RequestError(400, "Content-Length must be a whole number")
        if int(declared) > self.settings.max_upload_bytes:
            raise RequestError(413, self._too_large(int(declared)))

    def _too_large(self, size: int | None) -> str:
        limit = self.settings.max_upload_bytes
        said = f"{size:,} bytes" if size is not None else "the upload"
        return f"{said} is over the upload limit of {limit:,} bytes; send a smaller image"

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_upload_bytes

        async def read() -> bytes:
            body = bytearray()
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise RequestError(413, self._too_large(None))
            return bytes(body)

        try:
            body = await asyncio.wait_for(read(), timeout=self.settings.body_seconds)
        except TimeoutError:
            raise RequestError(
                408, f"the upload did not arrive within {self.settings.body_seconds:g} s"
            ) from None
        if not body:
            raise RequestError(400, "empty request: send the image file's bytes as the body")
        return body

    def _answer(self, body: bytes, top_k: int, gradcam: bool) -> dict[str, Any]:
        """Decode, predict and explain one upload (runs on a worker thread)."""
        predictor = self.predictor
        image = predictor.load(body, max_pixels=self.settings.max_pixels, name="the upload")
        # grey runs: a dark digit on paper, for a model trained on light digits on black (or
        # the other way round), is inverted to look like the training pictures
        inverted = predictor.preprocessing.channels == 1 and (
            light_background(image.numpy()) == self.dark_background
        )
        if inverted:
            image = 255 - image
        (prediction,) = predictor.predict_images(image[None], top_k=top_k, sources=["upload"])
        answer: dict[str, Any] = {
            "predicted": prediction.best.to_dict(),
            "top": [score.to_dict() for score in prediction.top],
            "input": png_data_url(image.numpy()),
            "inverted": inverted,
            "gradcam": None,
        }
        if gradcam and predictor.explainable:
            cam = predictor.explain(image, target=prediction.best.index)
            pixels = image.numpy()
            scale = max(1, min(8, math.ceil(OVERLAY_SIZE / max(pixels.shape[1:]))))
            overlay = heatmap_overlay(pixels, cam.heatmaps[0].numpy(), scale=scale)
            answer["gradcam"] = {
                "layer": cam.layer,
                "class": prediction.best.name,
                "overlay": png_data_url(overlay.transpose(2, 0, 1)),
                "blank": bool(float(cam.heatmaps[0].max()) == 0.0),
            }
        return answer


def light_background(pixels: np.ndarray) -> bool:
    """Whether uint8 ``(C, H, W)`` pixels have a light background: the median of a frame
    one eighth of the size wide around the picture is above mid-grey."""
    _, height, width = pixels.shape
    edge = max(1, min(height, width) // 8)
    frame = np.concatenate(
        [
            pixels[:, :edge, :].ravel(),
            pixels[:, -edge:, :].ravel(),
            pixels[:, :, :edge].ravel(),
            pixels[:, :, -edge:].ravel(),
        ]
    )
    return bool(np.median(frame) > 127.5)


def _is_whole(text: str) -> bool:
    """ASCII digits only, at most 18: ``str.isdigit`` also takes '²' and '٣'."""
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def png_data_url(pixels: np.ndarray) -> str:
    """A ``data:image/png`` URL of uint8 ``(C, H, W)`` pixels (1 or 3 channels)."""
    from PIL import Image

    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
