"""The detect command's result files, written atomically (:mod:`tcnn.files`).

:class:`DetectOutput` streams a :class:`~tcnn.pipeline.Pipeline`'s results into
``landmarks.json`` or ``landmarks.csv`` (and annotated images) as they come, so an interrupted
run keeps everything computed so far in a valid file marked as interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tcnn.errors import TcnnError
from tcnn.files import StreamFile, ensure_dir

if TYPE_CHECKING:
    from tcnn.pipeline import Result
    from tcnn.types import Face


#: The coordinate convention of the landmarks and boxes tcnn writes.
COORDINATES = (
    "continuous pixel coordinates: pixel i covers [i, i+1); "
    "subtract 0.5 for OpenCV/dlib pixel indices"
)
#: The convention with ``pixel_centers=True`` (``tcnn detect --pixel-centers``).
PIXEL_CENTERS = (
    "landmarks in OpenCV/dlib pixel indices (the centre of pixel i is i; add 0.5 for "
    "continuous pixel coordinates); box in continuous pixel coordinates: pixel i covers [i, i+1)"
)


class LandmarksWriter:
    """Per-image results streamed into ``landmarks.json`` or ``landmarks.csv``.

    JSON: ``coordinates`` and ``meta`` first, then ``faces`` (one record per face: ``file``,
    ``face``, ``box``, ``score``, ``landmarks``), then ``images`` (images read), ``no_face``,
    ``failed`` (``file`` and ``error``) and ``interrupted``.

    CSV: a ``# coordinates: ...`` comment line, a ``# `` line with ``meta``, the header
    ``file,face,left,top,right,bottom,score,x0,y0,...,error``, then one row per face, one row
    with empty face columns per image without a face, and one row with ``error`` set per file
    that failed. An interrupted run ends with a ``# interrupted`` comment line.

    Args:
        path: the file; its suffix (``.json`` or ``.csv``) picks the format.
        points: landmarks per face (the CSV's x/y columns).
        meta: fields that describe the run (model, detector, ...).
        pixel_centers: landmarks as OpenCV/dlib pixel indices (continuous value - 0.5).
    """

    def __init__(
        self, path: Path, points: int, meta: dict[str, Any], pixel_centers: bool = False
    ) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self.points = points
        self.pixel_centers = pixel_centers
        self.images = 0
        self.faces = 0
        self.no_face: list[str] = []
        self.failed: list[dict[str, str]] = []
        self._file = StreamFile(path)
        head = {"coordinates": PIXEL_CENTERS if pixel_centers else COORDINATES, **meta}
        if self.csv:
            about = ", ".join(f"{k}: {v}" for k, v in meta.items() if not isinstance(v, list))
            header = ["file", "face", "left", "top", "right", "bottom", "score"]
            header += [f"{a}{i}" for i in range(points) for a in "xy"] + ["error"]
            self._file.write(f"# coordinates: {head['coordinates']}\n# {about}\n")
            self._file.write(_csv_row(header))
        else:
            fields = "".join(f" {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
            self._file.write("{\n" + fields + ' "faces": [')

    def add(self, result: Result) -> None:
        """Write one image's faces (or its error) and hand them to the operating system."""
        if result.error is not None:
            self.failed.append({"file": result.source, "error": result.error})
        elif not result.faces:
            self.no_face.append(result.source)
        self.images += result.error is None
        records = [
            {"file": result.source, "face": i, **f.to_dict(self.pixel_centers)}
            for i, f in enumerate(result.faces)
        ]
        if self.csv:
            text = "".join(_csv_row(self._row(r)) for r in records)
            if not records:
                blank = [""] * (6 + 2 * self.points)
                text = _csv_row([result.source, *blank, result.error or ""])
        else:
            text = "".join(
                ("\n  " if self.faces + i == 0 else ",\n  ") + json.dumps(r)
                for i, r in enumerate(records)
            )
        self.faces += len(records)
        self._file.write(text, flush=True)

    def _row(self, r: dict[str, Any]) -> list[Any]:
        score = "" if r["score"] is None else r["score"]
        xy = [v for point in r["landmarks"] for v in point]
        return [r["file"], r["face"], *r["box"], score, *xy, ""]

    def close(self, interrupted: bool = False) -> Path:
        """Finish the file (``interrupted``: say the run stopped early) and rename it in place."""
        if self.csv:
            if interrupted:
                self._file.write(
                    f"# interrupted: stopped after {self.images + len(self.failed)} input(s)\n"
                )
        else:
            tail = {
                "images": self.images,
                "no_face": self.no_face,
                "failed": self.failed,
                "interrupted": interrupted,
            }
            body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in tail.items())
            self._file.write(("\n ],\n" if self.faces else "],\n") + body + "\n}\n")
        return self._file.commit()

    def abort(self) -> None:
        """Drop the file being written."""
        self._file.abort()


def _csv_row(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


class UniqueNames:
    """Output file stems that never repeat: ``a``, then ``a-2``, ``a-3`` ... for the same stem.

    Case-insensitive (``A`` and ``a`` are one file on some systems); constant time per name.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._count: dict[str, int] = {}

    def __call__(self, source: str) -> str:
        stem = re.sub(r"[^\w.-]+", "_", Path(source).stem).strip("_") or "image"
        n = self._count.get(stem.casefold(), 1)
        name = stem
        while name.casefold() in self._used:
            n += 1
            name = f"{stem}-{n}"
        self._count[stem.casefold()] = n
        self._used.add(name.casefold())
        return name


#: Annotated image formats and their PIL encoder settings.
DRAW_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "jpg": ("JPEG", {"quality": 90}),
    "png": ("PNG", {}),
}


class DrawingWriter:
    """Annotated copies of images, drawn and encoded in a few threads.

    PIL releases the GIL while it encodes, so the threads use more than one core. At most
    ``2 * threads`` images wait in memory; a write error is raised by a later :meth:`add` or
    by :meth:`close`.

    Args:
        folder: where drawings go, as ``STEM.landmarks.jpg`` (or ``.png``); stems that repeat
            get ``-2``, ``-3`` ...
        fmt: ``"jpg"`` (default: several times faster to encode) or ``"png"``.
        threads: drawing threads.
    """

    def __init__(self, folder: Path, fmt: str = "jpg", threads: int = 2) -> None:
        if fmt not in DRAW_FORMATS:
            raise TcnnError(f"drawing format {fmt!r}: expected {' or '.join(DRAW_FORMATS)}")
        if threads < 1:
            raise TcnnError(f"drawing threads {threads}: must be at least 1")
        self.folder = folder
        self.fmt = fmt
        self.written = 0
        self._names = UniqueNames()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tcnn-draw")
        self._pending: deque[Future[Path]] = deque()
        self._limit = 2 * threads

    def add(self, image: np.ndarray, faces: Sequence[Face], source: str) -> None:
        """Queue the drawing of ``faces`` on ``image`` (``[H, W, 3]`` uint8 RGB)."""
        path = self.folder / f"{self._names(source)}.landmarks.{self.fmt}"
        while self._pending and (len(self._pending) >= self._limit or self._pending[0].done()):
            self._pending.popleft().result()
            self.written += 1
        self._pending.append(self._pool.submit(self._save, image, faces, path))

    def _save(self, image: np.ndarray, faces: Sequence[Face], path: Path) -> Path:
        from tcnn.draw import draw_faces

        fmt, params = DRAW_FORMATS[self.fmt]
        buf = io.BytesIO()
        draw_faces(image, faces).save(buf, format=fmt, **params)
        out = StreamFile(path, binary=True)
        out.write(buf.getvalue())
        return out.commit()

    def close(self, cancel: bool = False) -> int:
        """Wait for the drawings (``cancel``: drop those not started); return how many exist."""
        if cancel:
            for f in self._pending:
                f.cancel()
        self._pool.shutdown(wait=True)
        for f in self._pending:
            if f.cancelled():
                continue
            if cancel and f.exception() is not None:
                continue
            f.result()
            self.written += 1
        self._pending.clear()
        return self.written


class DetectOutput:
    """Everything ``tcnn detect`` writes to its folder, streamed result by result.

    Use as a context manager: leaving the block normally finishes ``landmarks.*``; Ctrl-C
    (``KeyboardInterrupt``) finishes it with what was written so far, marked as interrupted;
    any other error removes it (no temp file is left).

    Args:
        folder: the output folder (created here).
        fmt: ``"json"`` or ``"csv"``.
        points: landmarks per face.
        meta: fields that describe the run (see :class:`LandmarksWriter`).
        pixel_centers: landmarks as OpenCV/dlib pixel indices.
        draw: ``None``, or the format of annotated images (``"jpg"`` or ``"png"``).
        draw_threads: threads that draw and encode.

    Example:
        >>> with DetectOutput("out", "json", 5, {"model": "vanilla5"}) as out:
        ...     for result in Pipeline().run(paths):
        ...         out.add(result)
    """

    def __init__(
        self,
        folder: str | Path,
        fmt: str,
        points: int,
        meta: dict[str, Any],
        pixel_centers: bool = False,
        draw: str | None = None,
        draw_threads: int = 2,
    ) -> None:
        self.folder = ensure_dir(folder)
        self.landmarks = LandmarksWriter(
            self.folder / f"landmarks.{fmt}", points, meta, pixel_centers
        )
        self.drawings = DrawingWriter(self.folder, draw, draw_threads) if draw else None
        self.interrupted = False

    def add(self, result: Result) -> None:
        """Write one result's landmarks, and queue its drawing (needs ``result.image``)."""
        self.landmarks.add(result)
        if self.drawings is not None and result.image is not None:
            self.drawings.add(result.image, result.faces, result.source)

    def summary(self) -> str:
        """One line: images read, faces, images without a face, failures, files written."""
        lm = self.landmarks
        text = f"{lm.images} image(s), {lm.faces} face(s), {len(lm.no_face)} without a face"
        text += f", {len(lm.failed)} failed" if lm.failed else ""
        text += f": wrote {lm.path}"
        drawn = self.drawings.written if self.drawings else 0
        return text + (f" and {drawn} annotated image(s) in {self.folder}" if drawn else "")

    def __enter__(self) -> DetectOutput:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.interrupted = kind is not None and issubclass(kind, KeyboardInterrupt)
        try:
            if self.drawings is not None:
                self.drawings.close(cancel=kind is not None)
        except BaseException:
            self.landmarks.abort()
            raise
        if kind is None or self.interrupted:
            self.landmarks.close(self.interrupted)
        else:
            self.landmarks.abort()
