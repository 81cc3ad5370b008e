"""tcnn batch on thousands of real files: same rows from 1 worker, 2 workers and Ray, files/s,
Ray's overhead, memory over a 20,000-entry manifest, and the multi-node Ray recipe run with a
head on loopback.

Every job runs as ``python -m tcnn batch`` in a subprocess (the way users run it); memory is the
resident set of the job's whole process tree, sampled every 0.5 s.

    nice -n 19 python benchmarks/bench_batch.py            # writes results/batch.json
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

from common import RESULTS, machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_USAGE_STATS_ENABLED": "0"}
#: Ray keeps 127.0.0.1 as the node address; the head and the driver share ~/.ray/auth_token.
CLUSTER = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def load() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def image_files(n: int) -> list[str]:
    """The shared photos, then ytf68 test and train images, then UTKFace: ``n`` paths."""
    files = sorted(str(p) for p in (DATA / "photos").iterdir() if p.suffix != ".md")
    files += sorted(str(p) for p in (DATA / "ytf68").rglob("*.jpg"))[: (n - len(files)) // 2]
    files += sorted(str(p) for p in (DATA / "utkface").rglob("*.jpg"))
    return files[:n]


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
    """Run ``tcnn batch ARGS``; wall time, the job's summary and the memory samples."""
    before = load()
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
            "samples": samples, "files_per_s": summary["files"] / wall}  # fmt: skip


def sorted_rows(out: Path) -> pa.Table:
    return pq.read_table(out).sort_by([("index", "ascending"), ("face", "ascending")])


def memory_profile(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Peak RSS in each fifth of the run (after the first 10 s of start-up)."""
    steady = [(t, m) for t, m in samples if t > 10] or samples
    end = steady[-1][0]
    fifths = [
        max((m for t, m in steady if i * end / 5 <= t <= (i + 1) * end / 5), default=0.0)
        for i in range(5)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1024, help="files for the speed runs")
    parser.add_argument("--manifest", type=int, default=20_000, help="entries, memory run")
    parser.add_argument("--out", default=str(RESULTS / "batch.json"))
    parser.add_argument(
        "--memory-only", action="store_true", help="redo only the memory run, into --out"
    )
    parser.add_argument("--memory-upsample", type=int, help="face detector upsampling, memory run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    if args.memory_only:
        try:
            result = json.loads(Path(args.out).read_text())
            memory_run(result, image_files(result["files"]), work, args)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        files = image_files(args.files)
        listing = work / "files.txt"
        listing.write_text("\n".join(files) + "\n")
        runs = {}
        for name, extra in (("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"]),
                            ("ray local, 2 actors", ["--workers", "2", "--ray"])):  # fmt: skip
            print(f"{name}: {len(files)} files, load {load()}", flush=True)
            runs[name] = job([str(listing), "-o", str(work / name.replace(" ", "_")), *extra])
            print(f"  {runs[name]['wall_s']:.1f} s, {runs[name]['files_per_s']:.1f} files/s")
        tables = [sorted_rows(work / name.replace(" ", "_")) for name in runs]
        same = all(t.equals(tables[0]) for t in tables[1:])
        small = work / "small.txt"
        small.write_text("\n".join(files[:200]) + "\n")
        print(f"ray cluster recipe, load {load()}", flush=True)
        cluster = ray_cluster(small, work, sorted_rows_subset(tables[0], 200))
        one, two, ray = runs.values()
        result = {
            "benchmark": f"tcnn batch on {len(files)} real files (shared photos, ytf68, UTKFace), "
            "read in place; default model and detector; each job a `python -m tcnn batch` "
            "subprocess, wall time including start-up",
            "machine": machine() | {"pyarrow": pa.__version__, "ray": _ray_version()},
            "files": len(files),
            "rows": tables[0].num_rows,
            "identical_rows_1w_2w_ray": same,
            "runs": {k: _brief(v) for k, v in runs.items()},
            "speedup_2w_over_1w": round(two["files_per_s"] / one["files_per_s"], 3),
            "ray_overhead_s": round(ray["wall_s"] - two["wall_s"], 1),
            "ray_relative_time": round(ray["wall_s"] / two["wall_s"], 3),
            "ray_cluster_loopback": cluster,
            "memory_manifest": "not finished",
        }
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")  # the memory run is long
        memory_run(result, files, work, args)
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory_run(result: dict[str, Any], files: list[str], work: Path, args: Any) -> None:
    """A 20,000-entry manifest (the files repeated), 2 workers; memory of the process tree."""
    repeated = work / "manifest.parquet"
    paths = [files[i % len(files)] for i in range(args.manifest)]
    pq.write_table(pa.table({"path": paths}), repeated)
    print(f"memory: {args.manifest} entries, load {load()}", flush=True)
    extra = [] if args.memory_upsample is None else ["--upsample", str(args.memory_upsample)]
    mem = job([str(repeated), "-o", str(work / "memory"), "--workers", "2", *extra])
    result["memory_manifest"] = {
        "entries": args.manifest,
        "upsample": "by size" if args.memory_upsample is None else args.memory_upsample,
        **_brief(mem),
        **memory_profile(mem["samples"]),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


def sorted_rows_subset(table: pa.Table, n: int) -> pa.Table:
    """Rows of the first ``n`` inputs (the index is the input's position)."""
    import pyarrow.compute as pc

    return table.filter(pc.less(table.column("index"), n))


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    s = run["summary"]
    return {"wall_s": round(run["wall_s"], 1), "files_per_s": round(run["files_per_s"], 2),
            "faces_per_s": round(s["faces"] / run["wall_s"], 2), "files": s["files"],
            "faces": s["faces"], "no_face": s["no_face"], "failed": s["failed"],
            "load_before": run["load_before"], "load_after": run["load_after"]}  # fmt: skip


def _ray_version() -> str:
    try:
        import ray

        return str(ray.__version__)
    except ImportError:
        return "not installed"


if __name__ == "__main__":
    main()
