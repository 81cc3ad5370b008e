"""The FastAPI application: landmarks and aligned crops over HTTP, and a page to try them.

``create_app(config)`` builds one application; ``tcnn serve`` runs :func:`app_from_env` in each
uvicorn worker process, so models load once per worker.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

import tcnn.apps.serve.schema as schema
from tcnn import __version__
from tcnn.align import TEMPLATE, align_face
from tcnn.apps.outputs import COORDINATES
from tcnn.apps.serve.engine import (
    QUEUE_PER_CORE,
    ApiError,
    Choice,
    Engine,
    decode_base64,
    decode_image,
)
from tcnn.apps.serve.engine import parse_boxes as _parse_boxes
from tcnn.apps.serve.middleware import BodyLimit, Metrics, Observe, error_reply, megabytes
from tcnn.card import ModelCard
from tcnn.errors import TcnnError
from tcnn.predictor import LandmarkDetector
from tcnn.registry import WEIGHTS, list_models
from tcnn.types import Face

T = TypeVar("T")
log = logging.getLogger("tcnn.apps.serve")
STATIC = Path(__file__).resolve().parent / "static"
ENV = "TCNN_SERVE_CONFIG"
_ENUM: dict[str, Any] = {"enum": [5, 68]}


@dataclass(frozen=True)
class ServeConfig:
    """Limits and pool sizes of one worker process.

    Attributes:
        max_upload_mb: largest image file accepted, in MB (10^6 bytes). A request body may be
            up to 4/3 of it (base64 in JSON) plus 64 KiB; a larger one gets 413 unread.
        max_pixels: largest image accepted, width x height, checked before decoding.
        threads: inference threads (``None``: one per core), each running one-thread ONNX
            Runtime sessions.
        queue: most requests that may wait for a thread (``None``: 16 per core); one more
            gets 503 with ``Retry-After`` before its upload is read.
        max_wait_ms: 0 (the default) for no bound but ``queue``; else also refuse requests
            beyond ``max_wait_ms * threads / mean service time`` waiting, or that waited
            longer (see :class:`~tcnn.apps.serve.engine.Engine`).
        preload: load the default model and face detector at start-up.
    """

    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    threads: int | None = None
    queue: int | None = None
    max_wait_ms: float = 0.0
    preload: bool = True

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0 or not self.max_pixels > 0:
            raise TcnnError(
                f"max upload {self.max_upload_mb} MB / max pixels {self.max_pixels}: "
                "must be positive"
            )
        if (self.threads is not None and self.threads < 1) or (self.queue or 0) < 0:
            raise TcnnError(f"threads {self.threads} / queue {self.queue}: need >= 1 / >= 0")
        if not 0 <= self.max_wait_ms < float("inf"):
            raise TcnnError(f"max wait {self.max_wait_ms} ms: must be 0 (no limit) or more")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_body_bytes(self) -> int:
        return self.max_upload_bytes * 4 // 3 + 65_536


@dataclass
class Detection:
    """What one image's job found, before it becomes a reply."""

    rgb: np.ndarray
    faces: list[Face]
    detector: LandmarkDetector
    boxes_given: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        """The JSON reply: per face the same record as ``tcnn detect`` (without the file)."""
        h, w = self.rgb.shape[:2]
        return {
            "image": {"width": w, "height": h},
            "coordinates": COORDINATES,
            "model": self.detector.model.card.name,
            "points": self.detector.model.points,
            "detector": None if self.boxes_given else self.detector.face_detector,
            "faces": [{"face": i, **f.to_dict()} for i, f in enumerate(self.faces)],
            "timings_ms": self.timings_ms,
        }


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The web service: ``/v1/landmarks``, ``/v1/align``, ``/v1/models``, ``/v1/detectors``,
    ``/healthz``, ``/metrics``, ``/openapi.json`` and the page at ``/``."""
    cfg = config or ServeConfig()
    threads = cfg.threads or os.cpu_count() or 1
    queue = QUEUE_PER_CORE * (os.cpu_count() or 1) if cfg.queue is None else cfg.queue
    engine = Engine(threads, queue, cfg.max_wait_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.open()
        if cfg.preload:
            engine.warm([engine.choose(None, 5, None), engine.choose(None, 68, None)])
            log.info(
                "tcnn serve: loaded %s; %d inference threads, up to %d requests waiting%s",
                engine.loaded,
                engine.threads,
                engine.queue,
                f", max wait {engine.max_wait_ms:g} ms" if engine.max_wait_ms else "",
            )
        yield
        engine.close()

    app = FastAPI(
        title="tcnn",
        version=__version__,
        description=schema.DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    metrics = Metrics(
        {
            "tcnn_inflight_requests": ("Jobs running or queued in the pool.", lambda: engine.busy),
            "tcnn_rejected_total": (
                "Requests refused with 503 (queue at its limit, or waited over --max-wait-ms).",
                lambda: engine.rejected,
            ),
            "tcnn_queue_limit": (
                "Requests that may wait for a thread now (--queue, or less by --max-wait-ms).",
                lambda: engine.queue_limit,
            ),
            "tcnn_service_seconds": (
                "Mean run time of the recent jobs on a pool thread.",
                lambda: round((engine.service_ms or 0.0) / 1e3, 6),
            ),
            "tcnn_resident_memory_bytes": ("Resident memory of this worker.", _resident_bytes),
        }
    )
    app.state.engine, app.state.config, app.state.metrics = engine, cfg, metrics
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes, upload_mb=cfg.max_upload_mb)
    app.add_middleware(Observe, metrics=metrics)
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def work(
        request: Request, choice: Choice, boxes: str | None, then: Callable[[Detection], T]
    ) -> T | Response:
        parsed = _parse_boxes(boxes)
        with engine.admit() as slot:  # a place in the queue before the upload is read
            data = await _read_upload(request, cfg)
            if data is None:
                return Response(status_code=499)  # the client is gone; nobody reads this
            return await engine.in_slot(
                _job, engine, cfg, metrics, data, choice, parsed, then, slot=slot
            )

    @app.post("/v1/landmarks", **schema.LANDMARKS)
    async def landmarks(
        request: Request,
        points: int | None = Query(None, description=schema.POINTS, json_schema_extra=_ENUM),
        model: str | None = Query(None, description=schema.MODEL),
        detector: str | None = Query(None, description=schema.DETECTOR),
        boxes: str | None = Query(None, description=schema.BOXES),
        draw: bool = Query(False, description="Reply with the annotated PNG instead of JSON."),
    ) -> Response:
        choice = engine.choose(model, points, detector)
        reply = await work(request, choice, boxes, _png if draw else Detection.answer)
        if isinstance(reply, Response):
            return reply
        if isinstance(reply, bytes):
            return Response(reply, media_type="image/png")
        return JSONResponse(reply)

    @app.post("/v1/align", **schema.ALIGN)
    async def align(
        request: Request,
        points: int | None = Query(None, description=schema.POINTS, json_schema_extra=_ENUM),
        model: str | None = Query(None, description=schema.MODEL),
        detector: str | None = Query(None, description=schema.DETECTOR),
        boxes: str | None = Query(None, description=schema.BOXES),
        size: int = Query(112, ge=16, le=1024, description="Side of each aligned crop, pixels."),
        margin: float = Query(0.0, ge=0.0, le=0.4, description="Border around the template."),
        format: Literal["zip", "json"] = Query("zip", description="A zip of PNGs, or JSON."),
    ) -> Response:
        choice = engine.choose(model, points, detector)

        def crops(d: Detection) -> dict[str, Any] | bytes:
            return _aligned(d, size, margin, format)

        reply = await work(request, choice, boxes, crops)
        if isinstance(reply, Response):
            return reply
        if isinstance(reply, bytes):
            headers = {"Content-Disposition": 'attachment; filename="aligned.zip"'}
            return Response(reply, media_type="application/zip", headers=headers)
        return JSONResponse(reply)

    @app.get("/v1/models", **schema.MODELS)
    async def models() -> JSONResponse:
        out = [{**m.to_dict(), "card": _card(m.name)} for m in list_models()]
        return JSONResponse(out)

    @app.get("/v1/detectors", **schema.DETECTORS)
    def detectors() -> JSONResponse:  # a plain function: FastAPI runs it off the event loop
        out = [
            {"name": name, "available": why is None, "why_not": why}
            for name, why in engine.available().items()
        ]
        return JSONResponse(out)

    @app.get("/healthz", **schema.HEALTH)
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "loaded": engine.loaded,
                "busy": engine.busy,
                "threads": engine.threads,
                "queue": engine.queue,
                "max_wait_ms": engine.max_wait_ms,
                "queue_limit": engine.queue_limit,
                "service_ms": None if engine.service_ms is None else round(engine.service_ms, 2),
            }
        )

    @app.get("/metrics", **schema.METRICS)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _job(
    engine: Engine,
    cfg: ServeConfig,
    metrics: Metrics,
    data: bytes,
    choice: Choice,
    boxes: list[list[float]] | None,
    then: Callable[[Detection], T],
) -> T:
    """Decode, detect and make the reply with ``then``, all on one pool thread."""
    t0 = perf_counter()
    rgb = decode_image(data, cfg.max_pixels)
    t1 = perf_counter()
    det = engine.detector(choice)
    if boxes is None:
        engine.check_runs(det.face_detector)
    try:
        faces = det.detect(rgb, boxes)
    except TcnnError as exc:
        raise ApiError(422, f"boxes: {exc}" if boxes is not None else str(exc)) from None
    t2 = perf_counter()
    metrics.count_faces(len(faces))
    timings = {"decode": round((t1 - t0) * 1e3, 2), "landmarks": round((t2 - t1) * 1e3, 2)}
    return then(Detection(rgb, faces, det, boxes is not None, timings))


def _png(d: Detection) -> bytes:
    from tcnn.draw import draw_faces

    buf = io.BytesIO()
    draw_faces(d.rgb, d.faces).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _aligned(d: Detection, size: int, margin: float, fmt: str) -> dict[str, Any] | bytes:
    """Each face warped onto the 5-point template: PNGs in a zip, or base64 in JSON."""
    pngs = []
    for f in d.faces:
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(align_face(d.rgb, f.landmarks, size, margin)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    answer = {
        **d.answer(),
        "size": size,
        "margin": margin,
        "template": [[round(float(v), 4) for v in p] for p in TEMPLATE],
    }
    if fmt == "json":
        for record, png in zip(answer["faces"], pngs):
            record["png"] = base64.b64encode(png).decode()
        return answer
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i, png in enumerate(pngs):
            z.writestr(f"face_{i:02d}.png", png)
        z.writestr("landmarks.json", json.dumps(answer, indent=1))
    return buf.getvalue()


async def _read_upload(request: Request, cfg: ServeConfig) -> bytes | None:
    """The uploaded image's bytes (multipart ``image`` field or JSON base64); ``None`` when
    the client hung up (or the body limit cut it off, which has answered already)."""
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if mime == "multipart/form-data":
            async with request.form(max_files=1, max_fields=8) as form:
                item = form.get("image")
                if not isinstance(item, UploadFile):
                    fields = ", ".join(form.keys()) or "none"
                    raise ApiError(422, f"multipart body: no file field 'image' (fields: {fields})")
                data = await item.read()
        elif mime == "application/json":
            raw = await request.body()
            try:
                doc = json.loads(raw)
            except ValueError:
                raise ApiError(400, "JSON body: not valid JSON") from None
            if not isinstance(doc, dict) or "image" not in doc:
                raise ApiError(422, 'JSON body: expected {"image": "<base64>"}')
            data = decode_base64(doc["image"])
        else:
            got = mime or "no Content-Type"
            raise ApiError(415, f"expected multipart/form-data or application/json, got {got}")
    except ClientDisconnect:
        if not request.scope.get("tcnn.refused"):
            log.info("%s: the client hung up before the upload ended", request.url.path)
        return None
    if len(data) > cfg.max_upload_bytes:
        raise ApiError(
            413,
            f"image: {megabytes(len(data), cfg.max_upload_bytes)[0]} MB is over the limit of "
            f"--max-upload-mb {cfg.max_upload_mb:g}",
        )
    return data


def _add_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": "<one line>"}``; tracebacks go to the log only."""

    def reply(request: Request, status: int, message: str, headers: Any = None) -> JSONResponse:
        level = logging.ERROR if status >= 500 else logging.WARNING
        log.log(level, "%d %s %s: %s", status, request.method, request.url.path, message)
        return error_reply(status, message, headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reply(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None) or {}
        what = f"{request.method} {request.url.path[:200]}"
        if exc.status_code == 404:
            message = f"{what}: no such route or file (routes: /openapi.json)"
        elif exc.status_code == 405 and "Allow" in headers:
            message = f"{what}: method not allowed (allowed: {headers['Allow']})"
        else:
            message = f"{what}: {exc.detail}"
        return reply(request, exc.status_code, message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors() if e.get("loc")]
        return reply(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("500 %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_reply(500, "internal error (the server log has the details)")


def _card(name: str) -> dict[str, Any]:
    side = WEIGHTS / f"{name}.json"
    return ModelCard.from_json(side.read_text(), str(side)).to_dict()


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker; its :class:`ServeConfig` is JSON in ``$TCNN_SERVE_CONFIG``."""
    return create_app(ServeConfig(**json.loads(os.environ.get(ENV, "{}"))))


def serve(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = True,
) -> None:
    """Run the service on uvicorn with ``workers`` processes (each loads the models once)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    if workers < 1:
        raise TcnnError(f"workers {workers}: must be at least 1")
    logging_config = json.loads(json.dumps(LOGGING_CONFIG))
    logging_config["loggers"]["tcnn.apps.serve"] = {"handlers": ["default"], "level": "INFO"}
    os.environ[ENV] = json.dumps(asdict(config))
    uvicorn.run(
        "tcnn.apps.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config,
        access_log=access_log,
    )
