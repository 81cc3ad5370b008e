"""The service's work outside HTTP: checked image decoding, detectors, a bounded worker pool.

Nothing here knows about FastAPI; every failure a client caused is an :class:`ApiError` with an
HTTP status and a one-line message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from tcnn.detect import DETECTORS
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.models.registry import DEFAULTS, list_models
from tcnn.predictor import LandmarkDetector

T = TypeVar("T")

#: Image formats accepted (PIL's names; MPO is how PIL names many phone JPEGs).
FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"})

#: Most face boxes one request may pass.
MAX_BOXES = 256


class ApiError(Exception):
    """A client-caused failure: its HTTP status, a one-line message and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded file as ``[H, W, 3]`` uint8 RGB, its size checked before it is decoded.

    PIL reads only the header in ``Image.open``, so a small file that would decode to a huge
    image (a decompression bomb) is refused before any pixel memory is allocated.

    Raises:
        ApiError: 400 (empty, not an image, truncated), 415 (a format not accepted),
            413 (more than ``max_pixels`` pixels).
    """
    if not data:
        raise ApiError(400, "image: the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(413, f"image: too many pixels (limit {max_pixels / 1e6:g} MP)") from None
    except UnidentifiedImageError:
        raise ApiError(
            400, f"image: not an image file ({len(data)} bytes, unknown format)"
        ) from None
    with img:
        if img.format not in FORMATS:
            accepted = ", ".join(sorted(FORMATS - {"MPO"}))
            raise ApiError(415, f"image: format {img.format} is not accepted ({accepted})")
        w, h = img.size
        if w * h > max_pixels:
            raise ApiError(
                413,
                f"image: {w}x{h} is {w * h / 1e6:.1f} megapixels; the limit is "
                f"{max_pixels / 1e6:g}",
            )
        if w == 0 or h == 0:
            raise ApiError(400, f"image: zero size ({w}x{h})")
        try:
            img.load()
            return load_image(img)
        except (OSError, SyntaxError, ValueError, TcnnError) as exc:
            raise ApiError(400, f"image: truncated or corrupt {img.format} ({exc})") from None


def decode_base64(text: object) -> bytes:
    """The bytes of a JSON body's ``image``: base64, optionally as a ``data:`` URL."""
    if not isinstance(text, str):
        raise ApiError(422, "image: expected a base64 string")
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image: not valid base64") from None


def parse_boxes(text: str | None) -> list[list[float]] | None:
    """The ``boxes`` query value: a JSON list of ``[left, top, right, bottom]`` in pixels."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError(422, "boxes: not valid JSON (want [[left, top, right, bottom]])") from None
    if not isinstance(value, list) or not all(isinstance(b, list) for b in value):
        raise ApiError(422, "boxes: expected a list of [left, top, right, bottom] lists")
    if len(value) > MAX_BOXES:
        raise ApiError(422, f"boxes: {len(value)} boxes; at most {MAX_BOXES}")
    for b in value:
        if len(b) != 4 or not all(_is_number(v) for v in b):
            raise ApiError(422, f"boxes: {json.dumps(b)[:80]} is not 4 numbers")
    return [[float(v) for v in b] for b in value]


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


@dataclass(frozen=True)
class Choice:
    """Which detector a request asked for: a shipped model name and a face detector (or None)."""

    model: str
    detector: str | None


#: Run times the service time estimate averages (the most recent jobs).
SERVICE_WINDOW = 64


@dataclass
class Engine:
    """Landmark detectors loaded once per process, and the bounded pool that runs them.

    At most ``threads`` jobs run at once. A job may wait for a thread at most about
    ``max_wait_ms``: the queue holds at most ``max_wait_ms * threads / service`` jobs, where
    ``service`` is the mean run time of the last :data:`SERVICE_WINDOW` jobs (those the pool
    finishes within ``max_wait_ms``), and never more than ``queue``. A request beyond that
    bound, or one that has waited longer than ``max_wait_ms`` when a thread takes it while other
    jobs wait behind it, gets 503 with ``Retry-After`` instead of joining a backlog.

    Args:
        threads: worker threads running inference.
        queue: most jobs that may wait for a thread, whatever the estimate.
        max_wait_ms: longest wait for a thread, milliseconds; 0 for no limit but ``queue``.
        ort_threads: ONNX Runtime threads per detector (requests are the parallelism:
            ``threads * ort_threads`` should not exceed the cores).
    """

    threads: int = 2
    queue: int = 32
    max_wait_ms: float = 150.0
    ort_threads: int = 1
    _detectors: dict[Choice, LandmarkDetector] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.threads < 1 or self.queue < 0 or not 0 <= self.max_wait_ms < float("inf"):
            raise TcnnError(
                f"threads {self.threads} / queue {self.queue} / max wait {self.max_wait_ms} ms: "
                "need >= 1 / >= 0 / >= 0"
            )
        self.pool: ThreadPoolExecutor | None = None
        self.open()
        #: Jobs running or waiting; requests refused with 503 since start.
        self.busy = 0
        self.rejected = 0
        self._count = threading.Lock()
        self._times: deque[float] = deque(maxlen=SERVICE_WINDOW)
        #: Shipped model names and their points, read once (each card is parsed and checked).
        self.shipped = {m["name"]: int(m["points"]) for m in list_models()}

    def choose(self, model: str | None, points: int | None, detector: str | None) -> Choice:
        """Check a request's ``model``, ``points`` and ``detector`` against what is shipped.

        Only shipped model names are accepted: a client never names a file on the server.
        """
        shipped = self.shipped
        if points is not None and points not in DEFAULTS:
            raise ApiError(422, f"points: {points}; must be 5 or 68")
        if model is None:
            model = DEFAULTS[points or 5]
        elif model not in shipped:
            names = ", ".join(sorted(shipped))
            raise ApiError(422, f"model: unknown {model!r} (shipped: {names})")
        if points is not None and shipped[model] != points:
            raise ApiError(422, f"points: model {model} has {shipped[model]} points, not {points}")
        if detector is not None and detector not in DETECTORS:
            known = ", ".join(sorted(DETECTORS))
            raise ApiError(422, f"detector: unknown {detector!r} (known: {known})")
        return Choice(model, detector)

    def detector(self, choice: Choice) -> LandmarkDetector:
        """The detector for ``choice``, loaded on first use (once, under a lock)."""
        with self._lock:
            det = self._detectors.get(choice)
            if det is None:
                det = LandmarkDetector(
                    choice.model, detector=choice.detector, threads=self.ort_threads
                )
                self._detectors[choice] = det
            return det

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return [f"{c.model}/{d.detector_name}" for c, d in self._detectors.items()]

    @property
    def service_ms(self) -> float | None:
        """Mean run time of the recent jobs on a pool thread, ms (``None`` before the first)."""
        with self._count:
            return 1e3 * sum(self._times) / len(self._times) if self._times else None

    @property
    def queue_limit(self) -> int:
        """Jobs that may wait now: those the pool finishes within ``max_wait_ms``, at most
        ``queue`` (``queue`` until a job has been timed, or without a wait limit)."""
        service = self.service_ms
        if not self.max_wait_ms or service is None:
            return self.queue
        return min(self.queue, int(self.max_wait_ms * self.threads / service))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a pool thread; 503 with ``Retry-After`` beyond the queue's bound.

        The slot is released when the job ends, not when the caller stops waiting, so a
        client that hangs up cannot make room for more jobs than there are slots.
        """
        limit = self.queue_limit
        with self._count:
            waiting = max(0, self.busy - self.threads)
            admitted = self.busy < self.threads + limit  # a free thread always takes it
            if admitted:
                self.busy += 1
            else:
                self.rejected += 1
        if not admitted:
            raise self._busy(
                f"busy: {waiting} requests waiting for {self.threads} inference threads "
                f"(limit {limit}); retry shortly",
                waiting,
            )
        try:
            if self.pool is None:
                raise ApiError(503, "the server is shutting down", {"Retry-After": "1"})
            future = self.pool.submit(self._timed, perf_counter(), fn, *args)
        except (RuntimeError, ApiError):
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _timed(self, queued: float, fn: Callable[..., T], *args: Any) -> T:
        """Runs on the pool thread: refuses a job that waited too long while others wait
        behind it (refusing it drains the backlog; with none, running it is the fastest
        answer), times the others."""
        start = perf_counter()
        waited_ms = (start - queued) * 1e3
        waiting = 0
        if self.max_wait_ms and waited_ms > self.max_wait_ms:
            with self._count:
                waiting = max(0, self.busy - self.threads)
                self.rejected += bool(waiting)
        if waiting:
            raise self._busy(
                f"busy: waited {waited_ms:.0f} ms for an inference thread (limit "
                f"{self.max_wait_ms:g} ms); retry shortly",
                waiting,
            )
        try:
            return fn(*args)
        finally:
            with self._count:
                self._times.append(perf_counter() - start)

    def _busy(self, message: str, waiting: int) -> ApiError:
        """A 503 whose ``Retry-After`` is the time the pool needs for the jobs now waiting
        (whole seconds, at least 1)."""
        service = self.service_ms or 0.0
        seconds = max(1, math.ceil(waiting * service / self.threads / 1e3))
        return ApiError(503, message, {"Retry-After": str(seconds)})

    def _done(self, _: object) -> None:
        with self._count:
            self.busy -= 1

    def warm(self, choices: Sequence[Choice]) -> None:
        """Load these detectors and build each pool thread's face detector (a blank image)."""
        blank = np.zeros((64, 64, 3), np.uint8)
        for c in choices:
            det = self.detector(c)
            barrier = threading.Barrier(self.threads, timeout=60)  # one task on every thread

            def build(_: int, d: LandmarkDetector = det, b: threading.Barrier = barrier) -> None:
                d.detect(blank)
                b.wait()

            self.open()
            assert self.pool is not None
            list(self.pool.map(build, range(self.threads)))

    def open(self) -> None:
        """Start the pool (again, after :meth:`close`); its threads start on first use."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tcnn-serve")

    def close(self) -> None:
        """Stop taking jobs; running ones finish, queued ones are dropped."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
