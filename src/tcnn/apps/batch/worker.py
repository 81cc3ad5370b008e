"""The work of one part: a batch job's rows (:func:`schema`), the worker that makes them and
the part files that hold them.

A part file is written to a temp file, made durable and renamed (:func:`tcnn.files.atomic_path`
with ``fsync``), so it is either complete or absent: a resumed job redoes exactly the parts
without a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcnn.apps.batch.inputs import Entry, import_pyarrow
from tcnn.files import atomic_path, make_durable, save_image
from tcnn.pipeline import Item, Pipeline, Result

#: The folder of aligned crops in a batch output (``--align``).
CROPS = "_crops"
#: The key of a part file's Parquet metadata that holds its counts (:func:`count_rows`).
COUNTS = "tcnn.counts"


def schema() -> Any:
    """The rows' Arrow schema (a ``pyarrow.Schema``); see docs/batch.md."""
    pa = import_pyarrow()
    return pa.schema(
        [
            ("index", pa.int64()),  # position of the input in the input stream (0-based)
            ("path", pa.string()),  # the path as the input gives it
            ("status", pa.string()),  # "face", "no_face" or "failed"
            ("face", pa.int32()),  # face number in the image (detection order); null otherwise
            ("error", pa.string()),  # one-line cause when failed
            ("width", pa.int32()),  # image size in pixels (null when failed)
            ("height", pa.int32()),
            ("left", pa.float64()),  # face box in continuous pixels
            ("top", pa.float64()),
            ("right", pa.float64()),
            ("bottom", pa.float64()),
            ("score", pa.float64()),  # face detector score
            ("landmarks", pa.list_(pa.float32())),  # x0, y0, x1, y1, ... in image pixels
            ("crop", pa.string()),  # aligned crop, relative to the output folder (--align)
            ("model", pa.string()),  # landmark model name
            ("detector", pa.string()),  # face detector name
        ]
    )


@dataclass(frozen=True)
class Options:
    """What each worker needs to build its detector (sent to worker processes and actors).

    ``threads`` is a worker's share of the machine: the threads that read and detect images
    (:class:`~tcnn.pipeline.Pipeline`'s workers) and each ONNX Runtime session's intra-op
    threads. At 1 a worker is one process on one core (each network runs on the thread that
    calls it; one thread reads and detects while the main thread places landmarks), so ``N``
    workers use ``N`` cores.
    """

    model: str | None = None
    points: int = 5
    detector: str | None = None
    upsample: int | None = None
    threshold: float | None = None
    align: int | None = None
    part_size: int = 256
    threads: int = 1
    refine: bool = False


@dataclass
class Summary:
    """What a batch job did.

    Attributes:
        out: the output folder (a Parquet dataset).
        files: inputs in the output, including parts done by an earlier run that was resumed.
        faces, no_face, failed: face rows, images without a face, inputs that failed.
        parts: part files written by this run; ``resumed``: parts found done already.
        seconds: wall time of this run.
    """

    out: Path
    files: int = 0
    faces: int = 0
    no_face: int = 0
    failed: int = 0
    parts: int = 0
    resumed: int = 0
    seconds: float = 0.0

    def add(self, counts: dict[str, int]) -> None:
        for key in ("files", "faces", "no_face", "failed"):
            setattr(self, key, getattr(self, key) + counts[key])

    def line(self) -> str:
        done = f" ({self.resumed} part(s) done before)" if self.resumed else ""
        return (
            f"{self.files} file(s), {self.faces} face(s), {self.no_face} without a face, "
            f"{self.failed} failed{done}: wrote {self.out}"
        )


class PartWorker:
    """Loads the model once; turns parts (lists of entries) into rows.

    Used by each local worker process and by each Ray actor.
    """

    def __init__(self, options: Options, out: str | os.PathLike[str]) -> None:
        from tcnn.predictor import LandmarkDetector

        self.options = options
        self.out = Path(out)
        o = options
        lm = LandmarkDetector(
            o.model, o.points, o.detector, o.upsample, o.threshold,
            threads=o.threads, detector_threads=o.threads, refine=o.refine,
        )  # fmt: skip
        self.model_name = lm.model.card.name
        self.face_detector = lm.face_detector
        self.pipeline = Pipeline(lm, workers=o.threads, keep_images=o.align is not None)
        self._crops: list[Path] = []  # written since the last part, not yet made durable

    def rows(self, entries: Sequence[Entry]) -> Any:
        """The rows of ``entries`` (a ``pyarrow.Table`` with :func:`schema`), crops written."""
        cols: dict[str, list[Any]] = {name: [] for name in schema().names}
        self._crops = []
        readable = [Item(file, name=path) for _, path, file in entries if path]
        results = iter(self.pipeline.run(readable))
        for index, path, _ in entries:
            if not path:
                self._add(cols, index, path, "failed", error=f"input {index}: empty path")
                continue
            self._add_result(cols, index, next(results))
        return import_pyarrow().table(cols, schema=schema())

    def _add_result(self, cols: dict[str, list[Any]], index: int, r: Result) -> None:
        if r.error is not None:
            self._add(cols, index, r.source, "failed", error=r.error)
            return
        w, h = r.size or (None, None)
        if not r.faces:
            self._add(cols, index, r.source, "no_face", width=w, height=h)
        for i, face in enumerate(r.faces):
            b = face.box
            crop = self._crop(r, index, i) if self.options.align else None
            self._add(
                cols, index, r.source, "face", face=i, width=w, height=h,
                left=b.left, top=b.top, right=b.right, bottom=b.bottom, score=face.score,
                landmarks=face.landmarks.reshape(-1).tolist(), crop=crop,
            )  # fmt: skip

    def _add(
        self, cols: dict[str, list[Any]], index: int, path: str, status: str, **v: Any
    ) -> None:
        v.update(index=index, path=path, status=status)
        v.update(model=self.model_name, detector=self.face_detector)
        for name, values in cols.items():
            values.append(v.get(name))

    def _crop(self, r: Result, index: int, face: int) -> str:
        from PIL import Image

        from tcnn.align import align_face

        assert r.image is not None and self.options.align is not None
        rel = f"{CROPS}/{index // 1000:06d}/{index:09d}-{face}.png"  # 1000 inputs a folder
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        aligned = align_face(r.image, r.faces[face].landmarks, self.options.align)
        self._crops.append(save_image(Image.fromarray(aligned), path))
        return rel

    def write_part(self, part: int, entries: Sequence[Entry]) -> dict[str, int]:
        """Write ``OUT/part-NNNNNNNN.parquet`` for ``entries`` atomically; its counts."""
        table = self.rows(entries)
        counts = count_rows(table)
        make_durable(self._crops)  # the part's crops before the part that counts them as done
        self._crops.clear()
        write_part(self.out, part, table.replace_schema_metadata({COUNTS: json.dumps(counts)}))
        return counts


def write_part(out: Path, part: int, table: Any) -> Path:
    """``table`` as ``out/part-NNNNNNNN.parquet``, atomically and durably (fsync)."""
    final = out / f"part-{part:08d}.parquet"
    with atomic_path(final, fsync=True) as tmp:
        import_pyarrow().parquet.write_table(table, tmp)
    return final


def write_empty(out: Path) -> Path:
    """A part with no rows, so that an empty job still reads as a dataset with the schema."""
    counts = {"files": 0, "faces": 0, "no_face": 0, "failed": 0}
    return write_part(
        out, 0, schema().empty_table().replace_schema_metadata({COUNTS: json.dumps(counts)})
    )


def count_rows(table: Any) -> dict[str, int]:
    """``files``, ``faces``, ``no_face``, ``failed`` in a table of rows."""
    status = table.column("status").to_pylist()
    faces = status.count("face")
    first = sum(1 for s, f in zip(status, table.column("face").to_pylist()) if f == 0)
    no_face, failed = status.count("no_face"), status.count("failed")
    return {"files": first + no_face + failed, "faces": faces, "no_face": no_face, "failed": failed}


def failures(out: str | os.PathLike[str], limit: int = 5) -> list[tuple[str, str]]:
    """The first ``limit`` failed inputs of a batch output, ``(path, error)``, in part order.

    Reads only the ``status``, ``path`` and ``error`` columns, part by part, and stops at
    ``limit``: cheap on an output of millions of rows.
    """
    pq = import_pyarrow().parquet
    found: list[tuple[str, str]] = []
    for path in sorted(Path(out).glob("part-*.parquet")):
        table = pq.read_table(path, columns=["status", "path", "error"])
        for status, source, error in zip(*(c.to_pylist() for c in table.columns)):
            if status == "failed":
                found.append((source, error))
                if len(found) >= limit:
                    return found
    return found
