"""A per-process CPU account of ``tcnn batch`` (local worker processes), for
``profile_batch.py --account``.

Each job runs as ``python -c WRAPPER OUT.json tcnn-batch-args``: the wrapper calls
``tcnn.apps.cli.main`` and at the end records ``getrusage`` of itself (the main process, every
thread) and of its reaped children (the worker processes, exactly). While it runs, this
process samples ``/proc`` every 0.1 s for each worker's per-thread CPU seconds (the last sample
before the worker exits: up to 0.1 s of its shutdown is missed), so each worker's share and its
main thread (landmarks, part writing) against its other threads (reading, detecting) are known.
CPU seconds, not wall seconds, are the measure: the machine is shared.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")

#: Runs the CLI in this process and writes its own and its children's CPU seconds to argv[1].
WRAPPER = """
import json, resource, sys, time
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
t0 = time.perf_counter()
from tcnn.apps.cli import main
imported = cpu(resource.RUSAGE_SELF)
code = main(sys.argv[2:])
done = {"main_cpu_s": cpu(resource.RUSAGE_SELF), "main_import_cpu_s": imported,
        "children_cpu_s": cpu(resource.RUSAGE_CHILDREN), "wall_s": time.perf_counter() - t0}
with open(sys.argv[1], "w") as f:
    json.dump(done, f)
sys.exit(code)
"""


def _cpu(stat: Path) -> float | None:
    """utime + stime in seconds from a ``/proc/.../stat`` file; ``None`` once it has gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


def _threads(pid: int) -> dict[str, float] | None:
    """CPU seconds of process ``pid`` (its exited threads included) and of its main thread."""
    total, main = _cpu(Path(f"/proc/{pid}/stat")), _cpu(Path(f"/proc/{pid}/task/{pid}/stat"))
    if total is None or main is None:
        return None
    return {"main_thread": main, "other_threads": total - main}


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return kids


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def job(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``tcnn batch ARGS`` under the wrapper; its CPU account."""
    before = _load()
    with tempfile.TemporaryDirectory(prefix="batch-account-") as tmp:
        usage = Path(tmp) / "usage.json"
        cmd = [sys.executable, "-c", WRAPPER, str(usage), "batch", "-q", *args]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        seen: dict[int, dict[str, Any]] = {}  # worker pid -> its CPU, first and last seen
        main_threads: dict[str, float] = {}

        def sample() -> None:
            while proc.poll() is None:
                now = time.perf_counter() - t0
                main_threads.update(_threads(proc.pid) or {})
                for kid in _children(proc.pid):
                    threads = _threads(kid)
                    if threads is not None:
                        w = seen.setdefault(kid, {"first_s": now})
                        w |= {"threads": threads, "last_s": now}
                time.sleep(0.1)

        thread = threading.Thread(target=sample)
        thread.start()
        proc.wait()
        thread.join()
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd[3:])}")
        done: dict[str, Any] = json.loads(usage.read_text())
    out = Path(args[args.index("-o") + 1])
    # Spawned workers only: multiprocessing's resource tracker is a child too, and idle.
    workers = [w for _, w in sorted(seen.items()) if sum(w["threads"].values()) > 0.2]
    done["workers"] = [_worker(w) for w in workers]
    done["main_threads_cpu_s"] = {k: round(v, 3) for k, v in main_threads.items()}
    done["bytes_written"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    done["rows_files"] = len(list(out.glob("part-*.parquet")))
    return done | {"load_before": before, "load_after": _load()}


def _worker(w: dict[str, Any]) -> dict[str, Any]:
    life = w["last_s"] - w["first_s"]
    cpu = sum(w["threads"].values())
    threads = {k: round(v, 3) for k, v in w["threads"].items()}
    used = round(cpu / life, 3) if life > 0 else None
    return {"cpu_s": round(cpu, 3), **threads, "seen_s": round(life, 2), "cores_used": used}


def main_parts(listing: Path, part_size: int, repeats: int = 3) -> dict[str, float]:
    """Main-process CPU ms per file of two steps it does for every file, in this process:
    listing the inputs and cutting them into parts, and pickling each part for its worker."""
    from tcnn.apps.batch import chunks, iter_entries

    best = {"listing": float("inf"), "pickling": float("inf")}
    for _ in range(repeats):
        t0 = time.process_time()
        parts = list(chunks(iter_entries([listing]), part_size))
        t1 = time.process_time()
        for part in parts:
            pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
        t2 = time.process_time()
        best["listing"] = min(best["listing"], t1 - t0)
        best["pickling"] = min(best["pickling"], t2 - t1)
    files = sum(len(g) for _, g in parts)
    return {k: round(1000 * v / files, 4) for k, v in best.items()}


def per_file(run: dict[str, Any], fixed: dict[str, Any], files: int) -> dict[str, Any]:
    """CPU ms per file of the main process and of the workers, the fixed costs taken out.

    The fixed costs are a one-file, one-worker job's (the main process's start-up, options
    check and summary; a worker's start-up): ``fixed`` less one file's work.
    """
    n = len(run["workers"])
    w_fixed = fixed["children_cpu_s"]
    worker_ms = 1000 * (run["children_cpu_s"] - n * w_fixed) / (files - 1)
    main_ms = 1000 * (run["main_cpu_s"] - fixed["main_cpu_s"]) / (files - 1)
    return {"workers": n, "main_ms": round(main_ms, 4), "worker_ms": round(worker_ms, 3)}


def amdahl(speedups: dict[int, float]) -> dict[str, Any]:
    """The serial fraction ``s`` of ``S(N) = 1 / (s + (1 - s) / N)``: least squares over the
    measured speedups (on ``1/S``, where the model is linear in ``s``), and the ``s`` each
    speedup alone implies."""
    xs = {n: 1 - 1 / n for n in speedups}  # 1/S - 1/N = s * (1 - 1/N)
    ys = {n: 1 / s - 1 / n for n, s in speedups.items()}
    s = sum(xs[n] * ys[n] for n in speedups) / sum(xs[n] ** 2 for n in speedups)
    return {
        "serial_fraction_fit": round(s, 4),
        "implied_by_each": {str(n): round(ys[n] / xs[n], 4) for n in speedups},
        "fit_speedups": {str(n): round(1 / (s + (1 - s) / n), 2) for n in speedups},
    }


#: Issue 25's 16-core host (an accelerator host lent for one run): steady files/s over one
#: worker's, ``bench_batch.py --files 16384 --workers 1,2,4,8,16 --no-ray --manifest 0``.
HOST16 = {2: 1.79, 4: 2.97, 8: 5.75, 16: 9.59}


def account(files: list[str], workers: list[int], part_size: int) -> dict[str, Any]:
    """The CPU account of a one-file job and of each worker count on ``files``; per-file costs
    and the scaling they predict."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    with tempfile.TemporaryDirectory(prefix="batch-account-") as tmp:
        listing, one = Path(tmp) / "files.txt", Path(tmp) / "one.txt"
        listing.write_text("\n".join(files) + "\n")
        one.write_text(files[0] + "\n")
        print(f"one-file job, load {_load()}", flush=True)
        fixed = job([str(one), "-o", f"{tmp}/one", "--workers", "1"], env)
        runs = {}
        for n in workers:
            name = f"{n} worker{'s' if n > 1 else ''}"
            print(f"{name}: {len(files)} files, load {_load()}", flush=True)
            args = [str(listing), "-o", f"{tmp}/out{n}", "--workers", str(n)]
            runs[name] = job([*args, "--part-size", str(part_size)], env)
            runs[name]["per_file"] = per_file(runs[name], fixed, len(files))
            print(f"  {json.dumps(runs[name]['per_file'])}", flush=True)
        parts = main_parts(listing, part_size)
    return {"files": len(files), "part_size": part_size, "one_file_job": fixed, "runs": runs,
            "main_steps_ms_per_file": parts, "predictions": predict(runs, fixed, len(files)),
            "host16": {"steady_speedups": {str(k): v for k, v in HOST16.items()},
                       "amdahl": amdahl(HOST16)}}  # fmt: skip


def predict(runs: dict[str, Any], fixed: dict[str, Any], files: int) -> dict[str, Any]:
    """What the per-file costs allow: the main process's ceiling, the start-up's share, and a
    worker's own core use (one worker's threads overlap; N workers on N cores cannot)."""
    one = runs["1 worker"]
    pf = one["per_file"]
    # All the main process's CPU over the files (its start-up included): an upper bound that
    # the noise of subtracting the one-file job's cannot make negative.
    main_ms = max(1000 * r["main_cpu_s"] / files for r in runs.values())
    (w,), (w0,) = one["workers"], fixed["workers"]  # start-up taken out of the thread split
    lm, other = (max(w[k] - w0[k], 0.0) for k in ("main_thread", "other_threads"))
    inflation = {k: round(r["per_file"]["worker_ms"] / pf["worker_ms"], 3) for k, r in runs.items()}
    return {
        "main_ms_per_file_at_most": round(main_ms, 4),
        "worker_ms_per_file": pf["worker_ms"],
        # The main process saturates one core at 1000 / main_ms files/s: the files of at
        # least this many workers (each worker_ms per file).
        "main_process_ceiling_workers_at_least": round(pf["worker_ms"] / main_ms),
        "worker_startup_cpu_s": round(fixed["children_cpu_s"], 2),
        "worker_startup_in_files": round(1000 * fixed["children_cpu_s"] / pf["worker_ms"], 1),
        "main_fixed_cpu_s": round(fixed["main_cpu_s"], 2),
        "worker_main_thread_share": round(lm / (lm + other), 3),
        # Worker CPU per file over one worker's: > 1 when workers slow each other down
        # (shared caches, memory bandwidth, SMT siblings, clock speed, other tenants).
        "worker_ms_over_1_worker": inflation,
        # One worker alone can run its two threads on two cores at once; on a full machine
        # each worker has one core. One worker's wall time is at least its busiest thread's
        # CPU, so this alone brings a full machine's efficiency over one worker no lower than
        # max / sum; 1 / cores_used is what this run's one worker implies.
        "overlap_worst_efficiency": round(max(lm, other) / (lm + other), 3),
        "one_worker_cores_used": w["cores_used"],
    }
