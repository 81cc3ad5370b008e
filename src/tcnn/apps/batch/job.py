"""A batch job: options checked, the job recorded in its output folder (and checked again on
resume), its parts run by local worker processes or on Ray."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tcnn.apps.batch.inputs import (
    Entry,
    check_input,
    chunks,
    import_pyarrow,
    input_count,
    iter_entries,
)
from tcnn.apps.batch.ray import run_ray
from tcnn.apps.batch.worker import COUNTS, Options, PartWorker, Summary, write_empty
from tcnn.errors import TcnnError
from tcnn.files import ensure_dir, write_text

JOB_FILE = "_job.json"


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


def run(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    points: int = 5,
    model: str | None = None,
    face_detector: str | None = None,
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
    detector: str | None = None,
) -> Summary:
    """Landmarks of every face in ``inputs``, written to the Parquet dataset ``out``.

    Args:
        inputs: folders, text files of paths, Parquet/CSV manifests or images (one or many).
        out: the output folder: ``part-*.parquet`` files, ``_job.json``, ``_crops/``.
        points, model, face_detector, upsample, threshold: as for ``LandmarkDetector``.
        align: also write each face aligned to a ``align`` x ``align`` PNG under ``_crops/``.
        workers: worker processes (local) or actors (Ray), each one process on one core
            (see :class:`Options`); default: one per core.
        resume: continue a run in ``out`` that was killed or stopped (local mode).
        ray: ``True`` for a local Ray runtime, or a Ray cluster address (``host:port``).
        path_column: the manifest column that holds the paths.
        part_size: inputs per part file (the work redone at most per worker after a kill).
        refine: place each face twice and average (``LandmarkDetector(refine=True)``).
        detector: the former name of ``face_detector``; deprecated (a ``DeprecationWarning``).

    Raises:
        TcnnError: a missing input or manifest column, an unwritable or already used
            output folder, a bad option; never for an unreadable image (a failed row).
    """
    from tcnn.detect import renamed_face_detector  # the core's check, imported when used

    face_detector = renamed_face_detector(face_detector, detector, "batch.run")
    sources = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if part_size < 1 or (workers is not None and workers < 1):
        raise TcnnError("part_size and workers must be at least 1")
    if align is not None and not 8 <= align <= 4096:
        raise TcnnError(f"align {align}: crop size must be 8 to 4096 pixels")
    if ray is not False and resume:
        raise TcnnError("--resume is for local runs; a Ray job writes its output in one go")
    import_pyarrow()
    for source in sources:
        check_input(source, path_column)
    options = Options(
        model, points, face_detector, upsample, threshold, align, part_size, refine=refine
    )
    _check_options(options)
    out = ensure_dir(Path(out))
    job = {"inputs": [os.path.abspath(s) for s in sources], "path_column": path_column}
    job |= {"cwd": os.getcwd(), **asdict(options)}
    done = _start_job(out, job, resume)
    entries = iter_entries(sources, path_column, exclude=out)
    start = time.monotonic()
    if ray is not False:
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
    pq = import_pyarrow().parquet
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
