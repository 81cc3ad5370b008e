"""Two plain ASGI middlewares: a request body size limit and Prometheus metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Any

log = logging.getLogger("tcnn.apps.serve")

#: Latency histogram bucket bounds, seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def error_reply(status: int, message: str, headers: Any = None) -> JSONResponse:
    """The one error format of every route and middleware: ``{"error": "<one line>"}``."""
    return JSONResponse({"error": message}, status, headers=headers)


async def _send_error(scope: Scope, receive: Any, send: Any, status: int, message: str) -> None:
    await error_reply(status, message)(scope, receive, send)


def megabytes(size: int, limit: int) -> tuple[str, str]:
    """``size`` and ``limit`` bytes in MB (10^6 bytes), with the digits it takes to tell them
    apart (at least 3 significant ones).

    >>> megabytes(13_398_870, 13_398_869), megabytes(50_000_000, 13_398_869)
    (('13.39887', '13.398869'), ('50', '13.4'))
    """
    for digits in range(3, 10):
        texts = f"{size / 1e6:.{digits}g}", f"{limit / 1e6:.{digits}g}"
        if size == limit or texts[0] != texts[1]:
            return texts
    return f"{size / 1e6:f}", f"{limit / 1e6:f}"


class BodyLimit:
    """Answers 413 as soon as a request body is known to exceed ``max_bytes``.

    A ``Content-Length`` over the limit is refused before any of the body is read; a body
    without one (chunked) is counted as it streams in, and refused when the count passes the
    limit. The application then sees the client as gone and its reply is dropped.

    Args:
        upload_mb: the upload limit (``--max-upload-mb``) that ``max_bytes`` makes room for;
            the message names it, in its units.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_mb: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_mb = upload_mb

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                text = length[:40].decode("latin-1")
                await _send_error(
                    scope, receive, send, 400, f"Content-Length {text!r} is not a number"
                )
                return
            if declared > self.max_bytes:
                log.warning(
                    "413 %s: Content-Length %d over %d", scope["path"], declared, self.max_bytes
                )
                await _send_error(scope, receive, send, 413, self._message(declared))
                return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg: Message = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    scope["tcnn.refused"] = True
                    log.warning("413 %s: streamed body passed %d bytes", scope["path"], seen)
                    await _send_error(scope, receive, send, 413, self._message(seen, True))
                    return {"type": "http.disconnect"}
            return msg

        async def guarded(msg: Message) -> None:
            if not refused:
                await send(msg)

        await self.app(scope, counted, guarded)

    def _message(self, size: int, streamed: bool = False) -> str:
        size_mb, limit_mb = megabytes(size, self.max_bytes)
        return (
            f"request body: {'more than ' if streamed else ''}{size_mb} MB is over the "
            f"{limit_mb} MB that --max-upload-mb {self.upload_mb:g} allows (room for base64 "
            "in JSON)"
        )


class Metrics:
    """Request counts, errors, a latency histogram and face counts in Prometheus text format.

    One instance per process: with ``--workers N`` each worker reports its own figures.

    Args:
        gauges: extra series, ``name -> (help, function giving the value)``; a name ending in
            ``_total`` is a counter.
    """

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.seconds: dict[str, float] = defaultdict(float)
        self.faces = 0
        self.images = 0
        self.gauges = gauges or {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            counts = self.hist[route]
            counts[next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))] += 1
            self.seconds[route] += seconds

    def count_faces(self, faces: int) -> None:
        with self._lock:
            self.images += 1
            self.faces += faces

    def text(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        out = [
            "# HELP tcnn_http_requests_total HTTP requests answered.",
            "# TYPE tcnn_http_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self.requests.items())
            hist = sorted((r, list(c)) for r, c in self.hist.items())
            seconds = dict(self.seconds)
            images, faces = self.images, self.faces
        for (route, method, status), n in requests:
            labels = _labels(route=route, method=method, status=status)
            out.append(f"tcnn_http_requests_total{labels} {n}")
        out += [
            "# HELP tcnn_http_errors_total HTTP requests answered with a 4xx or 5xx status.",
            "# TYPE tcnn_http_errors_total counter",
        ]
        for (route, method, status), n in requests:
            if status >= 400:
                labels = _labels(route=route, method=method, status=status)
                out.append(f"tcnn_http_errors_total{labels} {n}")
        out += [
            "# HELP tcnn_http_request_duration_seconds Time from request to the end of the reply.",
            "# TYPE tcnn_http_request_duration_seconds histogram",
        ]
        for route, counts in hist:
            total = 0
            for bound, n in zip([*BUCKETS, float("inf")], counts):
                total += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                labels = _labels(route=route, le=le)
                out.append(f"tcnn_http_request_duration_seconds_bucket{labels} {total}")
            out.append(
                f'tcnn_http_request_duration_seconds_sum{{route="{route}"}} {seconds[route]:.6f}'
            )
            out.append(f'tcnn_http_request_duration_seconds_count{{route="{route}"}} {total}')
        out += [
            "# HELP tcnn_images_total Images processed.",
            "# TYPE tcnn_images_total counter",
            f"tcnn_images_total {images}",
            "# HELP tcnn_faces_total Faces found (or given) in processed images.",
            "# TYPE tcnn_faces_total counter",
            f"tcnn_faces_total {faces}",
        ]
        for name, (help_text, value) in self.gauges.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value()}"]
        return "\n".join(out) + "\n"


class Observe:
    """Times every HTTP request and records it in :class:`Metrics` by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watched(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - start)


def _labels(**values: object) -> str:
    """Prometheus labels ``{a="1",b="2"}``, values escaped."""
    esc = {k: str(v).replace("\\", "\\\\").replace('"', '\\"') for k, v in values.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc.items()) + "}"
