"""tcnn batch on thousands of real files: same rows from 1 worker, 2 workers and Ray, files/s,
Ray's overhead, memory over a 20,000-entry manifest, and the multi-node Ray recipe run with a
head on loopback.

Every job runs as ``python -m tcnn batch`` in a subprocess (the way users run it); memory is the
resident set of the job's whole process tree, sampled every 0.5 s. A worker is one process on
one core (``tcnn.apps.batch.Options.threads``). Besides the wall-time files/s (start-up included),
each local run reports its steady files/s from the part files' completion times: the files of
the parts finished after each worker's first one, over the time from then to the last part.

    python benchmarks/bench/bench_batch.py     # on an idle machine (3 to 4 min): results/batch.json
    python benchmarks/tools/render_docs.py   # then the README's batch numbers
    python benchmarks/bench/bench_batch.py --files 200 --workers 1,2 --no-ray --manifest 0 \
        --out x.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import RESULTS, command, machine
from tcnn.apps.batch import COUNTS

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_USAGE_STATS_ENABLED": "0"}
#: Ray keeps 127.0.0.1 as the node address; the head and the driver share ~/.ray/auth_token.
CLUSTER = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def load() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def image_files(n: int) -> list[str]:
    """The shared photos, then ytf68 test and train images, then UTKFace: ``n`` paths (the
    files repeat when ``n`` is more than there are)."""
    files = sorted(str(p) for p in (DATA / "photos").iterdir() if p.suffix != ".md")
    files += sorted(str(p) for p in (DATA / "ytf68").rglob("*.jpg"))[: (n - len(files)) // 2]
    files += sorted(str(p) for p in (DATA / "utkface").rglob("*.jpg"))
    return [files[i % len(files)] for i in range(n)]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(ln.split()[1] for ln in status.splitlines() if ln[:6] == "VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def job(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``tcnn batch ARGS``; wall time, the job's summary, the memory samples and the part
    files' completion times (seconds from the start, with the files in each part)."""
    before = load()
    wall0 = time.time()  # part files' mtimes are wall-clock times
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "tcnn", "batch", "-q", *args]
    proc = subprocess.Popen(cmd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append((time.perf_counter() - t0, tree_rss_mb(proc.pid)))
            time.sleep(0.5)

    thread = threading.Thread(target=sample)
    thread.start()
    stdout, _ = proc.communicate()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{stdout}")
    out = Path(args[args.index("-o") + 1])
    summary = json.loads((out / "_job.json").read_text())["summary"]
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "summary": summary, "load_before": before, "load_after": load(),
            "samples": samples, "files_per_s": summary["files"] / wall,
            "parts": part_times(out, wall0)}  # fmt: skip


def part_times(out: Path, start: float) -> list[tuple[float, int]]:
    """``(seconds from start, files)`` of each ``part-*.parquet`` in ``out``, by completion.

    A part file appears whole when its worker renames it; its mtime is when it was written.
    Ray's files (other names) are not counted.
    """
    done = []
    for path in out.glob("part-*.parquet"):
        meta = pq.read_metadata(path).metadata or {}
        files = json.loads(meta[COUNTS.encode()])["files"] if COUNTS.encode() in meta else 0
        done.append((path.stat().st_mtime - start, files))
    return sorted(done)


def steady_rate(parts: list[tuple[float, int]], workers: int) -> dict[str, Any]:
    """Files/s once every worker has finished a part (start-up and first parts excluded).

    The files of the parts completed after the ``workers``-th one, over the time from that
    completion to the last one; ``None`` when there are too few parts.
    """
    if len(parts) <= workers:
        return {"steady_files_per_s": None, "first_part_s": parts[0][0] if parts else None}
    begin, end = parts[workers - 1][0], parts[-1][0]
    files = sum(n for _, n in parts[workers:])
    rate = files / (end - begin) if end > begin else None
    return {"steady_files_per_s": None if rate is None else round(rate, 2),
            "steady_parts": len(parts) - workers, "steady_s": round(end - begin, 2),
            "first_part_s": round(parts[0][0], 2), "last_part_s": round(end, 2)}  # fmt: skip


def sorted_rows(out: Path) -> pa.Table:
    return pq.read_table(out).sort_by([("index", "ascending"), ("face", "ascending")])


def memory_profile(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Peak RSS in each fifth of the run (after the first 10 s of start-up)."""
    steady = [(t, m) for t, m in samples if t > 10] or samples
    begin, span = steady[0][0], steady[-1][0] - steady[0][0]
    edges = [begin + i * span / 5 for i in range(6)]
    fifths = [
        max((m for t, m in steady if edges[i] <= t <= edges[i + 1]), default=0.0) for i in range(5)
    ]
    return {"peak_mb_by_fifth": [round(m, 1) for m in fifths], "peak_mb": round(max(fifths), 1)}


def ray_cluster(files: Path, work: Path, reference: pa.Table) -> dict[str, Any]:
    """The README's multi-node recipe with a head on loopback: start, run, stop.

    The head runs with ``--block`` in its own process group, stopped by signalling that group
    (``ray stop`` would stop every Ray on this shared machine).
    """
    ray = str(Path(sys.executable).parent / "ray")
    env = {**ENV, **CLUSTER}
    head = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6391"]
    head += ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]
    proc = subprocess.Popen(
        [*head, "--block"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(240):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 6391)) == 0:
                    break
            time.sleep(0.5)
        time.sleep(5)  # the raylet registers after the GCS port opens
        out = work / "cluster"
        result = job([str(files), "-o", str(out), "--ray", "127.0.0.1:6391"], CLUSTER)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    same = sorted_rows(out).equals(reference)
    return {"command": " ".join(head[1:]), "same_rows": same, "files": result["summary"]["files"],
            "wall_s": round(result["wall_s"], 1)}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=3072, help="files, speed runs (3072)")
    parser.add_argument(
        "--workers", default="1,2", help="local worker counts to run, comma-separated (1,2)"
    )
    parser.add_argument("--part-size", type=int, default=256, help="inputs per part file (256)")
    parser.add_argument("--ray-actors", type=int, help="actors, Ray run (default: most workers)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray runs")
    parser.add_argument("--manifest", type=int, default=20_000, help="entries, memory run; 0: none")
    parser.add_argument("--memory-upsample", type=int, help="face detector upsampling, memory run")
    parser.add_argument(
        "--memory-only", action="store_true", help="redo only the memory run, into --out"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "batch.json")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    if args.ray_actors is None:
        args.ray_actors = max(args.workers)
    return args


def default_pipeline() -> str:
    """The default model and face detector the jobs run (``LandmarkDetector()``'s)."""
    from tcnn.predictor import LandmarkDetector

    lm = LandmarkDetector()
    return f"`{lm.model.card.name}` with `{lm.face_detector}`"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        if args.memory_only:
            result = json.loads(args.out.read_text())
            memory_run(result, image_files(result["files"]), work, args)
            return
        result = speed_runs(args, work)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # the memory run is long
        if args.manifest:
            memory_run(result, image_files(args.files), work, args)
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def speed_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Each local worker count, then Ray local, on the same files; rows compared."""
    files = image_files(args.files)
    listing = work / "files.txt"
    listing.write_text("\n".join(files) + "\n")
    plan = [(f"{w} worker{'s' if w > 1 else ''}", ["--workers", str(w)]) for w in args.workers]
    if not args.no_ray:
        plan.append((f"ray local, {args.ray_actors} actors", ["--workers", str(args.ray_actors),
                                                               "--ray"]))  # fmt: skip
    runs = {}
    for name, extra in plan:
        print(f"{name}: {len(files)} files, load {load()}", flush=True)
        out = work / name.replace(" ", "_").replace(",", "")
        run = job([str(listing), "-o", str(out), "--part-size", str(args.part_size), *extra])
        if "--ray" not in extra:
            run |= steady_rate(run["parts"], int(extra[1]))
            run["part_times"] = [[round(t, 2), n] for t, n in run["parts"]]
        runs[name] = run
        print(f"  {run['wall_s']:.1f} s, {run['files_per_s']:.1f} files/s, steady "
              f"{run.get('steady_files_per_s')} files/s", flush=True)  # fmt: skip
        run["rows"] = sorted_rows(out)
    tables = [r.pop("rows") for r in runs.values()]
    one = runs.get("1 worker")
    result: dict[str, Any] = {
        "benchmark": f"tcnn batch on {len(files)} real files (shared photos, ytf68, UTKFace), "
        "read in place; default model and detector; each job a `python -m tcnn batch` "
        "subprocess, wall time including start-up; steady files/s from the part files' "
        "completion times, after each worker's first part",
        "command": command(),
        "machine": machine(ort_threads=1) | {"pyarrow": pa.__version__, "ray": _ray_version()},
        "worker": "one process on one core: ONNX Runtime intra-op threads 1 for both networks, "
        "one thread reading and detecting while the process's main thread places landmarks",
        "threads_per_worker": 1,
        "pipeline": default_pipeline(),
        "files": len(files),
        "part_size": args.part_size,
        "rows": tables[0].num_rows,
        "identical_rows": {"runs": list(runs), "same": all(t.equals(tables[0]) for t in tables)},
        "runs": {k: _brief(v) for k, v in runs.items()},
        "speedup_over_1_worker": {
            k: {
                "wall": _ratio(v["files_per_s"], one["files_per_s"]),
                "steady": _ratio(v.get("steady_files_per_s"), one.get("steady_files_per_s")),
            }
            for k, v in runs.items()
            if one is not None and k != "1 worker" and "ray" not in k
        },
        "memory_manifest": "not run" if not args.manifest else "not finished",
    }
    if not args.no_ray:
        ray, local = runs[plan[-1][0]], runs.get(f"{args.ray_actors} workers")
        if local is not None:
            result["ray_overhead_s"] = round(ray["wall_s"] - local["wall_s"], 1)
            result["ray_relative_time"] = round(ray["wall_s"] / local["wall_s"], 3)
        small = work / "small.txt"
        small.write_text("\n".join(files[:200]) + "\n")
        print(f"ray cluster recipe, load {load()}", flush=True)
        reference = sorted_rows_subset(tables[0], 200)
        result["ray_cluster_loopback"] = ray_cluster(small, work, reference)
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def memory_run(result: dict[str, Any], files: list[str], work: Path, args: Any) -> None:
    """A 20,000-entry manifest (the files repeated), the most workers; memory of the process
    tree."""
    workers = max(args.workers)
    repeated = work / "manifest.parquet"
    paths = [files[i % len(files)] for i in range(args.manifest)]
    pq.write_table(pa.table({"path": paths}), repeated)
    print(f"memory: {args.manifest} entries, load {load()}", flush=True)
    extra = [] if args.memory_upsample is None else ["--upsample", str(args.memory_upsample)]
    mem = job([str(repeated), "-o", str(work / "memory"), "--workers", str(workers), *extra])
    mem |= steady_rate(mem["parts"], workers)
    result["memory_manifest"] = {
        "entries": args.manifest,
        "workers": workers,
        "upsample": "by size" if args.memory_upsample is None else args.memory_upsample,
        **_brief(mem),
        **memory_profile(mem["samples"]),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


def sorted_rows_subset(table: pa.Table, n: int) -> pa.Table:
    """Rows of the first ``n`` inputs (the index is the input's position)."""
    import pyarrow.compute as pc

    return table.filter(pc.less(table.column("index"), n))


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    s = run["summary"]
    return {"wall_s": round(run["wall_s"], 1), "files_per_s": round(run["files_per_s"], 2),
            "faces_per_s": round(s["faces"] / run["wall_s"], 2), "files": s["files"],
            "faces": s["faces"], "no_face": s["no_face"], "failed": s["failed"],
            "load_before": run["load_before"], "load_after": run["load_after"],
            **{k: run[k] for k in STEADY if k in run}}  # fmt: skip


STEADY = ("steady_files_per_s", "steady_parts", "steady_s", "first_part_s", "last_part_s",
          "part_times")  # fmt: skip


def _ray_version() -> str:
    try:
        import ray

        return str(ray.__version__)
    except ImportError:
        return "not installed"


if __name__ == "__main__":
    main()
