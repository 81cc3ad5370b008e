"""What the OpenAPI schema says about each route: reply models, bodies, descriptions.

The schema is committed as ``openapi.json`` next to this file (``tcnn serve --openapi``
prints it); a test fails when the app's schema and the committed one differ.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

DESCRIPTION = (
    "Facial landmarks (5 or 68 points) with Tweaked CNNs. Coordinates are continuous pixels: "
    "pixel i covers [i, i + 1), so the centre of the top-left pixel is (0.5, 0.5). Every error "
    'is JSON: {"error": "<one line naming the cause>"}.'
)
POINTS = "Landmark scheme, 5 or 68 (default: the model's, or 5)."
MODEL = "A shipped model name (see /v1/models); default: the default model for `points`."
DETECTOR = "Face detector name (see /v1/detectors; default: the one the model card names)."
BOXES = (
    "Known face boxes, skipping detection: a JSON list of [left, top, right, bottom] in "
    "continuous pixels, e.g. [[120, 80, 260, 220]]."
)


class Error(BaseModel):
    error: str = Field(description="One line naming the cause.")


class ImageSize(BaseModel):
    width: int
    height: int


class FaceRecord(BaseModel):
    """One face: the same record as ``tcnn detect``'s JSON, without the file name."""

    face: int = Field(description="Index of the face in this image (detection order).")
    box: list[float] = Field(description="left, top, right, bottom in continuous pixels.")
    score: float | None = Field(description="Face detector score; null for given boxes.")
    landmarks: list[list[float]] = Field(description="[K, 2] (x, y) in continuous pixels.")


class Landmarks(BaseModel):
    image: ImageSize
    coordinates: str = Field(description="How to read the coordinates.")
    model: str
    points: int
    detector: str | None = Field(description="Face detector used; null when boxes were given.")
    faces: list[FaceRecord]
    timings_ms: dict[str, float] = Field(description="decode and landmarks, milliseconds.")


class AlignedFace(FaceRecord):
    png: str = Field(description="The aligned crop, a base64 PNG.")


class Aligned(Landmarks):
    faces: list[AlignedFace]  # type: ignore[assignment]
    size: int
    margin: float
    template: list[list[float]] = Field(description="[5, 2] template, in units of the crop.")


class ModelInfo(BaseModel):
    name: str
    points: int
    default: bool
    size_kb: int
    metrics: dict[str, Any]
    card: dict[str, Any]


class DetectorInfo(BaseModel):
    name: str
    available: bool = Field(description="Whether it runs on this server.")
    why_not: str | None = Field(description="Why it does not (a missing package); else null.")


class Health(BaseModel):
    status: str
    version: str
    loaded: list[str] = Field(description="model/detector pairs loaded in this worker.")
    busy: int = Field(
        description="Requests admitted and not done in this worker (uploading, waiting, running)."
    )
    threads: int = Field(description="Inference threads of this worker.")
    queue: int = Field(description="Most requests that may wait for a thread (--queue).")
    max_wait_ms: float = Field(description="Optional wait limit, ms (0, the default: none).")
    queue_limit: int = Field(
        description="Requests that may wait now: queue, or less with a wait limit "
        "(max_wait_ms x threads / service_ms)."
    )
    service_ms: float | None = Field(
        description="Mean run time of the recent requests on a thread, ms (null before any)."
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {
        400: "Bad input: empty, not an image, truncated, bad base64 or JSON.",
        413: "Upload or image too large (--max-upload-mb, --max-pixels).",
        415: "Not multipart/form-data or JSON, or an image format not accepted.",
        422: "Unknown model, points or detector (or one that cannot run here); malformed "
        "boxes or parameters.",
        503: "Busy: threads + queue requests are in progress (the queue's limit; or, with "
        "a wait limit set, the request waited longer). Retry after `Retry-After` seconds.",
    }
    return {c: {"model": Error, "description": why[c]} for c in codes}


#: A 32x32 grey PNG (no face), the JSON body's example.
_EXAMPLE = (
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAKElEQVR42u3NQQEAAAQEMCS/6Erw2wqsk9SnqWcCgUAg"
    "EAgEAoHgygK+PQHAs0oJIwAAAABJRU5ErkJggg=="
)

_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "description": "base64, or a data: URL"}
                    },
                    "required": ["image"],
                },
                "example": {"image": _EXAMPLE},
            },
        },
    }
}

LANDMARKS: dict[str, Any] = {
    "summary": "Landmarks of every face in an image",
    "description": "Upload a JPEG, PNG, WebP, BMP or TIFF (multipart field `image`, or JSON "
    'with {"image": base64}). Replies with the faces found, or with `draw=true` the '
    "annotated PNG.",
    "openapi_extra": _UPLOAD,
    "responses": {
        200: {
            "model": Landmarks,
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The faces (JSON), or the annotated image with `draw=true`.",
        },
        **_errors(400, 413, 415, 422, 503),
    },
}

ALIGN: dict[str, Any] = {
    "summary": "Each face warped so its 5 landmarks land on a canonical template",
    "description": "Same upload as /v1/landmarks. Replies with a zip of PNGs (face_00.png, "
    "... and landmarks.json) or, with `format=json`, the landmarks reply with a base64 PNG "
    "per face.",
    "openapi_extra": _UPLOAD,
    "responses": {
        200: {
            "model": Aligned,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "A zip of aligned PNGs, or JSON with `format=json`.",
        },
        **_errors(400, 413, 415, 422, 503),
    },
}

MODELS: dict[str, Any] = {
    "summary": "The shipped models and their cards",
    "response_model": list[ModelInfo],
}
DETECTORS: dict[str, Any] = {
    "summary": "The face detectors and whether each runs on this server",
    "response_model": list[DetectorInfo],
}
HEALTH: dict[str, Any] = {"summary": "Liveness and this worker's state", "response_model": Health}
METRICS: dict[str, Any] = {
    "summary": "Prometheus metrics of this worker (text format 0.0.4)",
    "response_class": PlainTextResponse,
}
