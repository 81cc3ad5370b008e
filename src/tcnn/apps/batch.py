"""Batch jobs: millions of images in, a resumable Parquet dataset out.

:func:`run` reads a folder (recursively), a text file of paths or a Parquet/CSV manifest,
splits the inputs into parts of ``part_size`` consecutive entries and hands each part to a
worker process: one process on one core, which loads the models once and runs
:class:`tcnn.pipeline.Pipeline` (one thread reads and detects while the main thread places
landmarks, each network on one ONNX Runtime thread), so ``N`` workers use ``N`` cores. A
worker writes its part as ``OUT/part-NNNNNNNN.parquet`` (a temp file, fsync, then a rename),
so a part file is either complete or absent: a run killed at any point resumes
(``resume=True``) by redoing exactly the parts that have no file. With ``ray=...`` the same
job runs on Ray Data (:mod:`tcnn.apps.batch_ray`) and gives the same rows.

One row per face, per image without a face and per failed input (schema: :func:`schema`).
Boxes and landmarks are in continuous pixels: pixel ``i`` covers ``[i, i + 1)``.

Example:
    >>> from tcnn.apps.batch import run
    >>> summary = run("photos/", "faces.parquet", align=112)
    >>> import pandas as pd; rows = pd.read_parquet("faces.parquet")
"""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tcnn.errors import TcnnError
from tcnn.files import ensure_dir, write_text
from tcnn.pipeline import IMAGE_SUFFIXES, Item, Pipeline, Result, list_images

#: One input: its position in the input stream, the path as the input gives it, and the
#: absolute path to read (relative paths are taken from the current folder).
Entry = tuple[int, str, str]

JOB_FILE = "_job.json"
CROPS = "_crops"
MANIFEST_SUFFIXES = (".parquet", ".pq", ".csv")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise TcnnError("batch jobs write Parquet: pip install 'tcnn[batch]'") from None
    return pyarrow


def schema() -> Any:
    """The rows' Arrow schema (a ``pyarrow.Schema``); see the README's "Batch jobs"."""
    pa = _pyarrow()
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


# ---------------------------------------------------------------- inputs


def check_input(source: str | os.PathLike[str], path_column: str = "path") -> None:
    """Fail early, with a one-line error, on an input that cannot be listed."""
    p = Path(source)
    if not p.exists():
        raise TcnnError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in IMAGE_SUFFIXES:
        return
    if suffix == ".csv":
        with _open_text(p) as f:
            header = next(csv.reader(f), None)
        columns = header or []
    elif suffix in (".parquet", ".pq"):
        pq = _pyarrow().parquet
        try:
            columns = pq.read_schema(p).names
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise TcnnError(f"{p}: not a Parquet file ({exc})") from None
    else:
        return
    if path_column not in columns:
        listed = ", ".join(columns) or "none"
        raise TcnnError(
            f"{p}: no column {path_column!r} (columns: {listed}); choose one with --path-column"
        )


def iter_entries(
    inputs: Sequence[str | os.PathLike[str]], path_column: str = "path", exclude: Path | None = None
) -> Iterator[Entry]:
    """Every input, streamed: ``(index, path, absolute path)``, in input order.

    A folder is listed recursively (sorted, image suffixes); a ``.csv``/``.parquet`` file is a
    manifest whose ``path_column`` holds the paths; an image file is itself; any other file
    is a text file of paths, one per line. Manifests are read in batches, never whole.
    """
    paths = (p for source in inputs for p in _paths_of(Path(source), path_column, exclude))
    for index, path in enumerate(paths):
        yield index, path, os.path.abspath(path) if path else ""


def _paths_of(p: Path, column: str, exclude: Path | None) -> Iterator[str]:
    suffix = p.suffix.lower()
    if p.is_dir():
        yield from (str(f) for f in list_images([p], exclude=exclude).files)
    elif suffix in IMAGE_SUFFIXES:
        yield str(p)
    elif suffix == ".csv":
        with _open_text(p) as f:
            for row in csv.DictReader(f):
                yield row.get(column) or ""
    elif suffix in (".parquet", ".pq"):
        table_file = _pyarrow().parquet.ParquetFile(p)
        for batch in table_file.iter_batches(batch_size=4096, columns=[column]):
            yield from (v or "" for v in batch.column(0).to_pylist())
    else:
        with _open_text(p) as f:
            try:
                yield from (s for line in f if (s := line.rstrip("\r\n")))
            except UnicodeDecodeError:
                raise TcnnError(f"{p}: not a UTF-8 text file of paths") from None


def _open_text(p: Path) -> Any:
    try:
        return open(p, encoding="utf-8", newline="")
    except OSError as exc:
        raise TcnnError(f"{p}: cannot read ({exc.strerror or exc})") from None


def input_count(inputs: Sequence[str | os.PathLike[str]]) -> int | None:
    """The number of inputs when it is cheap to know (folders, images, Parquet), else None."""
    total = 0
    for source in map(Path, inputs):
        if source.is_dir():
            total += len(list_images([source]).files)
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            total += 1
        elif source.suffix.lower() in (".parquet", ".pq"):
            total += _pyarrow().parquet.read_metadata(source).num_rows
        else:
            return None
    return total


def chunks(entries: Iterable[Entry], size: int) -> Iterator[tuple[int, list[Entry]]]:
    """``(part number, entries)`` groups of ``size`` consecutive entries."""
    it = iter(entries)
    for part in itertools.count():
        group = list(itertools.islice(it, size))
        if not group:
            return
        yield part, group


# ---------------------------------------------------------------- the work of one part


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
        self.detector_name = lm.detector_name
        self.pipeline = Pipeline(lm, workers=o.threads, keep_images=o.align is not None)

    def rows(self, entries: Sequence[Entry]) -> Any:
        """The rows of ``entries`` (a ``pyarrow.Table`` with :func:`schema`), crops written."""
        cols: dict[str, list[Any]] = {name: [] for name in schema().names}
        readable = [Item(file, name=path) for _, path, file in entries if path]
        results = iter(self.pipeline.run(readable))
        for index, path, _ in entries:
            if not path:
                self._add(cols, index, path, "failed", error=f"input {index}: empty path")
                continue
            self._add_result(cols, index, next(results))
        return _pyarrow().table(cols, schema=schema())

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
        v.update(model=self.model_name, detector=self.detector_name)
        for name, values in cols.items():
            values.append(v.get(name))

    def _crop(self, r: Result, index: int, face: int) -> str:
        from PIL import Image

        from tcnn.align import align_face
        from tcnn.files import save_image

        assert r.image is not None and self.options.align is not None
        rel = f"{CROPS}/{index // 1000:06d}/{index:09d}-{face}.png"  # 1000 inputs a folder
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        aligned = align_face(r.image, r.faces[face].landmarks, self.options.align)
        save_image(Image.fromarray(aligned), path)
        _fsync(path)
        return rel

    def write_part(self, part: int, entries: Sequence[Entry]) -> dict[str, int]:
        """Write ``OUT/part-NNNNNNNN.parquet`` for ``entries`` atomically; its counts."""
        table = self.rows(entries)
        counts = count_rows(table)
        write_part(self.out, part, table.replace_schema_metadata({COUNTS: json.dumps(counts)}))
        return counts


COUNTS = "tcnn.counts"


def write_part(out: Path, part: int, table: Any) -> Path:
    """``table`` as ``out/part-NNNNNNNN.parquet``: a temp file, fsync, rename, fsync."""
    final = out / f"part-{part:08d}.parquet"
    tmp = out / f".{final.name}.{os.getpid()}.tmp"
    try:
        _pyarrow().parquet.write_table(table, tmp)
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TcnnError(f"{final}: cannot write ({exc.strerror or exc})") from None
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
    pq = _pyarrow().parquet
    found: list[tuple[str, str]] = []
    for path in sorted(Path(out).glob("part-*.parquet")):
        table = pq.read_table(path, columns=["status", "path", "error"])
        for status, source, error in zip(*(c.to_pylist() for c in table.columns)):
            if status == "failed":
                found.append((source, error))
                if len(found) >= limit:
                    return found
    return found


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- local worker processes

_WORKER: PartWorker | None = None


def _init_worker(options: Options, out: str, parent: int) -> None:
    global _WORKER
    _WORKER = PartWorker(options, out)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A killed job leaves no worker behind (``kill -9`` of the main process)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _work(part: int, entries: list[Entry]) -> tuple[int, int, dict[str, int]]:
    assert _WORKER is not None
    return part, len(entries), _WORKER.write_part(part, entries)


# ---------------------------------------------------------------- the job


def run(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    points: int = 5,
    model: str | None = None,
    detector: str | None = None,
    upsample: int | None = None,
    threshold: float | None = None,
    align: int | None = None,
    workers: int | None = None,
    resume: bool = False,
    ray: str | bool = False,
    path_column: str = "path",
    part_size: int = 256,
    progress: bool = True,
    refine: bool = False,
) -> Summary:
    """Landmarks of every face in ``inputs``, written to the Parquet dataset ``out``.

    Args:
        inputs: folders, text files of paths, Parquet/CSV manifests or images (one or many).
        out: the output folder: ``part-*.parquet`` files, ``_job.json``, ``_crops/``.
        points, model, detector, upsample, threshold: as for ``LandmarkDetector``.
        align: also write each face aligned to a ``align`` x ``align`` PNG under ``_crops/``.
        workers: worker processes (local) or actors (Ray), each one process on one core
            (see :class:`Options`); default: one per core.
        resume: continue a run in ``out`` that was killed or stopped (local mode).
        ray: ``True`` for a local Ray runtime, or a Ray cluster address (``host:port``).
        path_column: the manifest column that holds the paths.
        part_size: inputs per part file (the work redone at most per worker after a kill).
        refine: place each face twice and average (``LandmarkDetector(refine=True)``).

    Raises:
        TcnnError: a missing input or manifest column, an unwritable or already used
            output folder, a bad option; never for an unreadable image (a failed row).
    """
    sources = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if part_size < 1 or (workers is not None and workers < 1):
        raise TcnnError("part_size and workers must be at least 1")
    if align is not None and not 8 <= align <= 4096:
        raise TcnnError(f"align {align}: crop size must be 8 to 4096 pixels")
    if ray is not False and resume:
        raise TcnnError("--resume is for local runs; a Ray job writes its output in one go")
    _pyarrow()
    for source in sources:
        check_input(source, path_column)
    options = Options(model, points, detector, upsample, threshold, align, part_size, refine=refine)
    _check_options(options)
    out = ensure_dir(Path(out))
    job = {"inputs": [os.path.abspath(s) for s in sources], "path_column": path_column}
    job |= {"cwd": os.getcwd(), **asdict(options)}
    done = _start_job(out, job, resume)
    entries = iter_entries(sources, path_column, exclude=out)
    start = time.monotonic()
    if ray is not False:
        from tcnn.apps.batch_ray import run_ray

        address = ray if isinstance(ray, str) and ray else None
        summary = run_ray(entries, out, options, workers, address, progress)
    else:
        workers = workers or len(os.sched_getaffinity(0))
        summary = _run_local(entries, out, options, workers, done, input_count(sources), progress)
    summary.seconds = time.monotonic() - start
    write_text(out / JOB_FILE, json.dumps({**job, "summary": _summary_dict(summary)}, indent=1))
    return summary


def _check_options(options: Options) -> None:
    """A bad model or detector fails here, in one line, not in every worker."""
    from tcnn.predictor import LandmarkDetector

    o = options
    LandmarkDetector(
        o.model, o.points, o.detector, o.upsample, o.threshold, threads=1, refine=o.refine
    )


def _summary_dict(s: Summary) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()}


def _start_job(out: Path, job: dict[str, Any], resume: bool) -> dict[int, dict[str, int]]:
    """Record the job in ``out``; on resume check it is the same job and list its done parts."""
    job_file = out / JOB_FILE
    has_rows = any(out.glob("*.parquet"))
    if not resume:
        if has_rows or job_file.exists():
            raise TcnnError(
                f"{out}: already holds a batch output: pass --resume to continue it, "
                "or choose an empty folder"
            )
        write_text(job_file, json.dumps(job, indent=1))
        return {}
    if job_file.exists():
        before = json.loads(job_file.read_text())
        defaults = asdict(Options())  # a job written before an option existed had its default
        changed = [k for k in job if before.get(k, defaults.get(k)) != job[k]]
        if changed:
            raise TcnnError(f"{out}: --resume with a different job ({', '.join(changed)} changed)")
    else:
        write_text(job_file, json.dumps(job, indent=1))
    for tmp in out.glob(".part-*.tmp"):
        tmp.unlink()
    return done_parts(out)


def done_parts(out: Path) -> dict[int, dict[str, int]]:
    """Complete part files in ``out`` and their counts; unreadable ones are removed."""
    pq = _pyarrow().parquet
    done = {}
    for path in sorted(out.glob("part-*.parquet")):
        try:
            meta = pq.read_metadata(path).metadata or {}
            done[int(path.stem.split("-")[1])] = json.loads(meta[COUNTS.encode()])
        except Exception:  # a file that is not a whole part (never ours: we rename whole files)
            print(f"tcnn: redoing {path.name}: not a complete part file", file=sys.stderr)
            path.unlink()
    return done


def _run_local(
    entries: Iterator[Entry],
    out: Path,
    options: Options,
    workers: int,
    done: dict[int, dict[str, int]],
    total: int | None,
    progress: bool,
) -> Summary:
    from tqdm import tqdm

    summary = Summary(out, resumed=len(done))
    for counts in done.values():
        summary.add(counts)
    bar = tqdm(total=total, initial=summary.files, unit="file", disable=not progress)
    context = multiprocessing.get_context("spawn")
    args = (options, str(out), os.getpid())
    with bar, ProcessPoolExecutor(workers, context, _init_worker, args) as pool:
        running: set[Future[tuple[int, int, dict[str, int]]]] = set()

        def collect(when: str) -> None:
            nonlocal running
            finished, running = wait(running, return_when=when)
            for future in finished:
                _, n, counts = future.result()
                summary.add(counts)
                summary.parts += 1
                bar.update(n)
                rate = summary.faces / max(bar.format_dict["elapsed"], 1e-9)
                bar.set_postfix_str(f"{summary.faces} faces, {rate:.1f} faces/s", refresh=False)

        for part, group in chunks(entries, options.part_size):
            if part in done:
                continue
            running.add(pool.submit(_work, part, group))
            if len(running) >= 2 * workers:
                collect(FIRST_COMPLETED)
        collect("ALL_COMPLETED")
    if not done and not summary.parts:
        write_empty(out)
    return summary
