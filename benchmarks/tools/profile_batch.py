"""Where one batch worker's time goes: start-up, then decode, detection, landmarks and writing.

Start-up, in a fresh interpreter as a spawned worker: the interpreter, the imports, loading the
models (landmark network, RetinaFace); and a whole one-file, one-worker ``tcnn batch`` job.
Then the per-file stages of one worker in this process, one after the other on one thread (a
worker's threads overlap them; here they are timed apart): decoding each file, finding its
faces, placing the landmarks (in batches of ``Pipeline``'s 64 faces), writing the part file.
Prints a table; ``--out FILE`` also writes it as JSON. A profile, not a benchmark: its seconds
are those of a single thread, on whatever else the machine is doing (the load is printed).

    python benchmarks/tools/profile_batch.py --files 512

With ``--account``, instead: a per-process CPU account of whole ``tcnn batch`` jobs (local
worker processes) with each of ``--workers`` on the same files, and of a one-file job (the
fixed costs): the main process's CPU against each worker's, per file, the start-up, the bytes
written, and the scaling they predict (:mod:`benchmarks.tools.batch_account`); written to
``results/batch_account.json`` (or ``--out``), rendered into docs/batch.md.

    python benchmarks/tools/profile_batch.py --account --files 2048 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HERE = Path(__file__).resolve().parent


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def startup(threads: int) -> dict[str, float]:
    """Seconds of a worker's start-up stages, in a fresh interpreter (as a spawned worker)."""
    code = f"""
import json, sys, time
t = {{}}
t0 = time.perf_counter()
import numpy as np
from tcnn.apps.batch import Options, PartWorker
t["import"] = time.perf_counter() - t0
t0 = time.perf_counter()
worker = PartWorker(Options(threads={threads}), ".")
t["load landmark model"] = time.perf_counter() - t0
t0 = time.perf_counter()
worker.pipeline.detector.find_faces(np.zeros((64, 64, 3), np.uint8))
t["load RetinaFace"] = time.perf_counter() - t0
print(json.dumps(t))
"""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total = time.perf_counter() - t0
    stages: dict[str, float] = json.loads(done.stdout)
    return {"interpreter": total - sum(stages.values()), **stages}


def job_startup(file: str) -> float:
    """Wall seconds of ``tcnn batch`` on one file with one worker: a job's fixed cost."""
    with tempfile.TemporaryDirectory(prefix="profile-batch-") as out:
        cmd = [sys.executable, "-m", "tcnn", "batch", "-q", file, "-o", f"{out}/o"]
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--workers", "1"], capture_output=True, check=True)
        return time.perf_counter() - t0


def profile(files: list[str], threads: int) -> dict[str, Any]:
    """Seconds per stage for ``files`` on one worker with ``threads`` ONNX Runtime threads."""
    import numpy as np

    from tcnn.apps.batch import Options, PartWorker, write_part
    from tcnn.imaging import load_image

    t = startup(threads)
    t["whole job on 1 file"] = job_startup(files[0])
    with tempfile.TemporaryDirectory(prefix="profile-batch-") as out:
        worker = PartWorker(Options(threads=threads), out)
        lm = worker.pipeline.detector
        lm.find_faces(np.zeros((64, 64, 3), np.uint8))
        decode = detect = marks = 0.0
        found: list[Any] = []
        faces = 0
        for path in files:
            t0 = time.perf_counter()
            rgb = load_image(path)
            t1 = time.perf_counter()
            boxes = lm.find_faces(rgb)
            t2 = time.perf_counter()
            decode, detect = decode + t1 - t0, detect + t2 - t1
            found += [(rgb, b) for b, _ in boxes]
            if len(found) >= 64 or path == files[-1]:
                t0 = time.perf_counter()
                if found:
                    lm.landmarks_batch(found)
                marks += time.perf_counter() - t0
                faces += len(found)
                found = []
        t.update({"decode": decode, "detect faces": detect, "landmarks": marks})
        entries = [(i, p, os.path.abspath(p)) for i, p in enumerate(files)]
        table = worker.rows(entries)  # the whole pipeline once more, for the rows to write
        t0 = time.perf_counter()
        write_part(Path(out), 0, table)
        t["write part"] = time.perf_counter() - t0
    per_file = ("decode", "detect faces", "landmarks", "write part")
    work = sum(t[k] for k in per_file)
    return {
        "files": len(files),
        "faces": faces,
        "threads": threads,
        "seconds": {k: round(v, 3) for k, v in t.items()},
        "ms_per_file": {k: round(1000 * t[k] / len(files), 3) for k in per_file},
        "share_of_per_file_work": {k: round(t[k] / work, 3) for k in per_file},
        "single_thread_files_per_s": round(len(files) / work, 1),
        "load": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=512, help="files to profile (512)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (1)")
    parser.add_argument("--out", type=Path, help="also write the profile as JSON here")
    parser.add_argument("--account", action="store_true", help="the per-process CPU account")
    parser.add_argument("--workers", default="1,2", help="--account: worker counts (1,2)")
    parser.add_argument("--part-size", type=int, default=256, help="--account: (256)")
    args = parser.parse_args()
    from benchmarks.bench.bench_batch import image_files

    if args.account:
        write_account(args, image_files(args.files))
        return
    print(f"load before: {_load()}", flush=True)
    result = profile(image_files(args.files), args.threads)
    for key, value in result["seconds"].items():
        share = result["share_of_per_file_work"].get(key)
        extra = f"  {result['ms_per_file'][key]:.2f} ms/file, {100 * share:.0f}%" if share else ""
        print(f"{key:<20} {value:8.3f} s{extra}")
    print(f"single-thread files/s (per-file work only): {result['single_thread_files_per_s']}")
    print(f"load after: {result['load']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


def write_account(args: argparse.Namespace, files: list[str]) -> None:
    from benchmarks.tools.batch_account import account
    from benchmarks.tools.common import RESULTS, command, machine

    workers = [int(w) for w in args.workers.split(",")]
    if 1 not in workers:
        raise SystemExit("profile_batch: --workers must include 1 (the per-file baseline)")
    before = _load()
    result = {"command": command(), "machine": machine(ort_threads=1), "load_before": before}
    result |= account(files, workers, args.part_size) | {"load_after": _load()}
    out = args.out or RESULTS / "batch_account.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["predictions"], indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
