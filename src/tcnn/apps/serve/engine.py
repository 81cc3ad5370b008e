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
import re
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

from tcnn.detect import DETECTORS, check_face_detector, make_detector
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.predictor import LandmarkDetector
from tcnn.registry import DEFAULTS, list_models

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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (about 89 million pixels) caught it while reading the header.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1))} pixels" if found else "too many pixels"
        limit = (
            f"over the limit of --max-pixels {max_pixels}"
            if found is None or int(found.group(1)) > max_pixels
            else "over Pillow's decompression bomb limit"
        )
        raise ApiError(413, f"image: {size}, {limit}") from None
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
                f"image: {w}x{h} is {w * h} pixels, over the limit of --max-pixels {max_pixels}",
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

#: Requests a worker lets wait per core of the machine, by default (``tcnn serve --queue``):
#: per core, not per thread of the worker, because connections spread unevenly over workers
#: and each worker should take what the whole machine would.
QUEUE_PER_CORE = 16


class Slot:
    """One admitted request's place in the pool: taken before its upload is read, given back
    when its job ends (or when it ends without a job). A context manager: leaving the block
    gives the slot back unless a job has taken it over."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held = True
        self.handed = False

    def release(self) -> None:
        """Give the place back (once; later calls do nothing)."""
        with self._engine._count:
            if not self._held:
                return
            self._held = False
            self._engine.busy -= 1
            self._engine._count.notify_all()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_: object) -> None:
        if not self.handed:
            self.release()


@dataclass
class Engine:
    """Landmark detectors loaded once per process, and the bounded pool that runs them.

    At most ``threads`` jobs run at once and at most ``queue`` more wait: a request takes its
    place (:meth:`admit`) before its upload is read, so at most ``threads + queue`` uploads
    are held in memory at once. A request beyond that gets 503 with ``Retry-After`` (the time
    the pool needs for the requests waiting) without its body being read.

    ``max_wait_ms`` (0, the default: off) adds a bound by time for those who prefer refusals to
    waiting: the queue then holds at most ``max_wait_ms * threads / service`` requests, where
    ``service`` is the mean run time of the last :data:`SERVICE_WINDOW` jobs, and a job that
    waited longer than ``max_wait_ms`` when a thread takes it, while others wait behind it, is
    refused too.

    Args:
        threads: worker threads running inference.
        queue: most requests that may wait for a thread.
        max_wait_ms: longest wait for a thread, milliseconds; 0 for no limit but ``queue``.
        ort_threads: ONNX Runtime threads per detector (requests are the parallelism:
            ``threads * ort_threads`` should not exceed the cores).
    """

    threads: int = 2
    queue: int = 2 * QUEUE_PER_CORE
    max_wait_ms: float = 0.0
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
        #: Requests admitted and not yet done (uploading, waiting or running); refused since
        #: start.
        self.busy = 0
        self.rejected = 0
        self._count = threading.Condition()
        self._times: deque[float] = deque(maxlen=SERVICE_WINDOW)
        self._available: dict[str, str | None] = {}
        #: Shipped model names and their points, read once (each card is parsed and checked).
        self.shipped = {m.name: m.points for m in list_models()}

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
        if detector is not None:
            try:
                check_face_detector(detector)
            except TcnnError as exc:
                raise ApiError(422, f"detector: {exc}") from None
        return Choice(model, detector)

    def detector(self, choice: Choice) -> LandmarkDetector:
        """The detector for ``choice``, loaded on first use (once, under a lock)."""
        with self._lock:
            det = self._detectors.get(choice)
            if det is None:
                det = LandmarkDetector(
                    choice.model, face_detector=choice.detector, threads=self.ort_threads
                )
                self._detectors[choice] = det
            return det

    def available(self) -> dict[str, str | None]:
        """Each face detector's name and ``None`` when it runs here, else why not (each tried
        once: that may take a second, so not on the event loop)."""
        return {name: self.why_not(name) for name in DETECTORS}

    def why_not(self, name: str) -> str | None:
        """Why face detector ``name`` cannot run here (``None`` when it can), tried once."""
        with self._lock:
            if name not in self._available:
                try:
                    make_detector(name, threads=1)
                    self._available[name] = None
                except TcnnError as exc:
                    self._available[name] = str(exc)
            return self._available[name]

    def check_runs(self, name: str) -> None:
        """Raises ApiError 422 when face detector ``name`` cannot run here."""
        why = self.why_not(name)
        if why is not None:
            raise ApiError(422, f"detector: {name} cannot run on this server ({why})")

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return [f"{c.model}/{d.face_detector}" for c, d in self._detectors.items()]

    @property
    def service_ms(self) -> float | None:
        """Mean run time of the recent jobs on a pool thread, ms (``None`` before the first)."""
        with self._count:
            return 1e3 * sum(self._times) / len(self._times) if self._times else None

    @property
    def queue_limit(self) -> int:
        """Requests that may wait now: ``queue``, or with a wait limit those the pool finishes
        within ``max_wait_ms`` (``queue`` until a job has been timed)."""
        service = self.service_ms
        if not self.max_wait_ms or service is None:
            return self.queue
        return min(self.queue, int(self.max_wait_ms * self.threads / service))

    def admit(self) -> Slot:
        """A place for one request, before its upload is read.

        Raises:
            ApiError: 503 with ``Retry-After`` when ``threads`` requests run and the queue is
                at its limit.
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
                f"busy: {waiting} requests waiting for {self.threads} inference threads, "
                f"the limit of {self._limit_text(limit)}",
                waiting,
            )
        return Slot(self)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request holds a place (``busy`` is 0); false after ``timeout`` s."""
        with self._count:
            return self._count.wait_for(lambda: self.busy == 0, timeout)

    def _limit_text(self, limit: int) -> str:
        """What set the queue's limit, in the options' units."""
        service = self.service_ms
        if self.max_wait_ms and service is not None and limit < self.queue:
            return (
                f"--max-wait-ms {self.max_wait_ms:g} at {service:.0f} ms a request "
                f"({limit} waiting; --queue {self.queue})"
            )
        return f"--queue {self.queue}"

    async def in_slot(self, fn: Callable[..., T], *args: Any, slot: Slot | None = None) -> T:
        """``fn(*args)`` on a pool thread, in ``slot`` (else one taken now: 503 with
        ``Retry-After`` beyond the queue's bound).

        The slot is given back when the job ends, not when the caller stops waiting, so a
        client that hangs up cannot make room for more jobs than there are slots.
        """
        slot = slot or self.admit()
        slot.handed = True
        try:
            if self.pool is None:
                raise ApiError(503, "the server is shutting down", {"Retry-After": "1"})
            future = self.pool.submit(self._timed, perf_counter(), fn, *args)
        except (RuntimeError, ApiError):
            slot.release()
            raise
        future.add_done_callback(lambda _: slot.release())
        return await asyncio.wrap_future(future)

    def _timed(self, queued: float, fn: Callable[..., T], *args: Any) -> T:
        """Runs on the pool thread: with a wait limit, refuses a job that waited too long while
        others wait behind it (refusing it drains the backlog; with none, running it is the
        fastest answer); times the jobs it runs."""
        start = perf_counter()
        waited_ms = (start - queued) * 1e3
        waiting = 0
        if self.max_wait_ms and waited_ms > self.max_wait_ms:
            with self._count:
                waiting = max(0, self.busy - self.threads)
                self.rejected += bool(waiting)
        if waiting:
            raise self._busy(
                f"busy: waited {waited_ms:.0f} ms for an inference thread (--max-wait-ms "
                f"{self.max_wait_ms:g})",
                waiting,
            )
        try:
            return fn(*args)
        finally:
            with self._count:
                self._times.append(perf_counter() - start)

    def _busy(self, message: str, waiting: int) -> ApiError:
        """A 503 whose ``Retry-After`` is the time the pool needs for the requests now waiting
        (whole seconds, at least 1); the message says it."""
        service = self.service_ms or 0.0
        seconds = max(1, math.ceil(waiting * service / self.threads / 1e3))
        return ApiError(503, f"{message}; retry after {seconds} s", {"Retry-After": str(seconds)})

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
