"""Load test of ``tcnn serve`` on loopback against in-process ``tcnn detect`` on the same photos.

Two photos: a 640x480 one-face photo (made from ../shared/data/photos/single_face.jpg) and the
group photo multi_face.jpg. In-process first: images/s of ``tcnn detect``'s pipeline as the CLI
runs it, the pipeline with one-thread sessions, and a pool of one thread per core each calling
``LandmarkDetector.detect`` (what the server's pool does, without HTTP). Then ``tcnn serve``
with its defaults, ``--workers 1`` and ``2``, at 1, 4, 8, 16 and 32 concurrent keep-alive
clients of two kinds: naive ones (any answer ends a request, a 503 included) and retrying ones
(a 503 is retried after its ``Retry-After``). Per level: the share of requests served (200),
served requests/s, p50/p99 latency of the served requests (first send to the 200, waits for
``Retry-After`` included) and the share of HTTP answers that were 503. Then far beyond: 100
clients of each kind on one worker (the 503s keep its memory bounded: its resident memory is
recorded after the level); and naive clients at 8 and 32 against the former default bound by
waiting time (``--max-wait-ms 150``). Every level is bounded by ``--count`` requests and
``--max-seconds``; the default run takes about seven minutes on 2 cores.

    PYTHONPATH=src nice -n 19 python benchmarks/bench/bench_serve.py   # writes results/serve.json
    PYTHONPATH=src nice -n 19 python benchmarks/bench/bench_serve.py --memory-only  # 10,000 req.

The memory run (resident memory of a one-worker server before and after 10,000 requests) is
kept from the existing results file unless ``--memory-only`` redoes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import DATA, RESULTS, command, machine
from benchmarks.tools.serve_common import (
    Load,
    load,
    loadavg,
    multipart,
    rss_mb,
    server,
    worker_pids,
)
from tcnn.pipeline import Pipeline
from tcnn.predictor import LandmarkDetector

PHOTOS = DATA / "photos"
CLIENTS = (1, 4, 8, 16, 32)
KINDS = ("naive", "retrying")
#: Clients far beyond what the defaults queue (2 threads + 32 waiting on 2 cores).
BEYOND = 100
#: The former default ``--max-wait-ms`` (a bound by waiting time), measured for comparison.
OLD_MAX_WAIT_MS = 150


def photos(folder: Path) -> dict[str, Path]:
    """The 640x480 one-face JPEG (resized and centre-cropped) and the group photo."""
    src = Image.open(PHOTOS / "single_face.jpg").convert("RGB")
    h = round(src.height * 640 / src.width)
    small = src.resize((640, h), Image.Resampling.LANCZOS)
    top = (h - 480) // 2
    path = folder / "single_640x480.jpg"
    small.crop((0, top, 640, top + 480)).save(path, quality=92)
    return {"single_640x480": path, "group_multi_face": PHOTOS / "multi_face.jpg"}


def in_process(path: Path, count: int, max_s: float) -> dict[str, Any]:
    """Images/s of the in-process ways on one file (read + decode included), each bounded by
    ``count`` images and ``max_s`` seconds."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"faces": len(LandmarkDetector().detect(path))}
    for tag, threads in (("tcnn_detect", None), ("pipeline_1_thread", 1)):
        pipe = Pipeline(LandmarkDetector(threads=threads))
        list(pipe.run([path] * 2))  # build each worker's face detector
        t0, n = time.perf_counter(), 0
        for r in pipe.run([path] * count):
            n += r.ok
            if time.perf_counter() - t0 > max_s:
                break
        out[tag] = round(n / (time.perf_counter() - t0), 1)
    out["pipeline_workers"] = pipe.workers
    det = LandmarkDetector(threads=1)
    left, lock = [count], threading.Lock()
    deadline = time.monotonic() + max_s

    def worker() -> None:
        det.detect(path)  # this thread's face detector
        barrier.wait()
        while time.monotonic() < deadline:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            det.detect(path)

    barrier = threading.Barrier(cores + 1)
    pool = [threading.Thread(target=worker) for _ in range(cores)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    out["pool_1_thread"] = round((count - max(0, left[0])) / (time.perf_counter() - t0), 1)
    out["pool_threads"] = cores
    out["best_img_per_s"] = max(out["tcnn_detect"], out["pipeline_1_thread"], out["pool_1_thread"])
    return out


def summary(res: Load) -> dict[str, Any]:
    """Requests, the share served (200), served/s, p50/p99 of the served requests' latency and
    of all requests', the share of HTTP answers that were 503."""
    lat = np.array(res.latencies) * 1e3
    ok = lat[np.array(res.codes) == 200]
    requests = len(lat) + res.unfinished
    answers = sum(res.statuses.values())

    def pct(a: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(a, q)), 1) if len(a) else None

    return {
        "requests": requests,
        "answers": answers,
        "seconds": round(res.seconds, 2),
        "served_pct": round(100 * len(ok) / max(1, requests), 1),
        "ok_per_s": round(len(ok) / res.seconds, 1),
        "answers_per_s": round(answers / res.seconds, 1),
        "p50_ms_200": pct(ok, 50),
        "p99_ms_200": pct(ok, 99),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "refused_pct": round(100 * res.statuses.get(503, 0) / max(1, answers), 1),
        "statuses": {str(k): v for k, v in sorted(res.statuses.items())},
        "unfinished": res.unfinished,
        "backed_off_s": round(res.backed_off_s, 1),
    }


def levels(
    workers: int,
    files: dict[str, Path],
    clients: tuple[int, ...],
    kinds: tuple[str, ...],
    count: int,
    max_s: float,
    *extra: str,
) -> list[dict[str, Any]]:
    """One server; for each photo and kind of client, each number of clients in turn. A row
    also records the resident memory of the server's workers after its last level."""
    rows = []
    with server(workers, *extra) as (port, proc):
        for name, path in files.items():
            body, ctype = multipart(path.read_bytes(), path.name)
            load(port, body, ctype, 4, 20, 30)  # every pool thread warm, service time timed
            for kind in kinds:
                row: dict[str, Any] = {"workers": workers, "photo": name, "client": kind}
                for c in clients:
                    res = load(port, body, ctype, c, count, max_s, retry=kind == "retrying")
                    row[f"clients_{c}"] = summary(res)
                row["rss_mb_workers"] = [round(rss_mb(p), 1) for p in worker_pids(proc.pid)]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def memory(path: Path, requests: int, clients: int, max_s: float) -> dict[str, Any]:
    """Resident memory of a one-worker server: at start, after a warm-up, after ``requests``."""
    body, ctype = multipart(path.read_bytes(), path.name)
    with server(1) as (port, proc):
        pid = worker_pids(proc.pid)[0]
        start = rss_mb(pid)
        load(port, body, ctype, clients, 200, 60)
        warm = rss_mb(pid)
        res = load(port, body, ctype, clients, requests, max_s)
        end = rss_mb(pid)
    return {
        "photo": path.name,
        "clients": clients,
        "warmup_requests": 200,
        "requests": len(res.latencies),
        **summary(res),
        "rss_mb_start": round(start, 1),
        "rss_mb_after_warmup": round(warm, 1),
        "rss_mb_after": round(end, 1),
        "growth_after_warmup_pct": round((end - warm) / warm * 100, 2),
        "machine": machine(1),
    }


def targets(record: dict[str, Any]) -> dict[str, Any]:
    """What the issues ask, by row: 8 naive clients at once all served (issue 22); served
    requests/s at 4 clients >= 80% of the best in-process way, p99 of the served < 250 ms for
    the 640x480 photo at 16 clients (issue 11); far beyond, a share refused (503)."""
    out: dict[str, Any] = {}
    for row in record["http"]:
        tag = f"{row['photo']}_workers{row['workers']}"
        if row["client"] == "naive":
            out[f"naive_8_served_pct_{tag}"] = row["clients_8"]["served_pct"]
            out[f"naive_32_served_pct_{tag}"] = row["clients_32"]["served_pct"]
        else:
            best = record["in_process"][row["photo"]]["best_img_per_s"]
            out[f"ratio_4_clients_{tag}"] = round(row["clients_4"]["ok_per_s"] / best, 3)
            if row["photo"] == "single_640x480":
                out[f"p99_ms_200_16_clients_{tag}"] = row["clients_16"]["p99_ms_200"]
    for row in record["beyond"]:
        level = row[f"clients_{BEYOND}"]
        out[f"refused_pct_{BEYOND}_{row['client']}_clients"] = level["refused_pct"]
        out[f"served_pct_{BEYOND}_{row['client']}_clients"] = level["served_pct"]
    for row in record["old_default"]:
        for c in (8, 32):
            out[f"naive_{c}_served_pct_{row['photo']}_old_max_wait"] = row[f"clients_{c}"][
                "served_pct"
            ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="requests per level, at most (1000)")
    ap.add_argument("--max-seconds", type=float, default=6, help="seconds per level, at most (6)")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    ap.add_argument("--readme", action="store_true", help="only render the README from --out")
    ap.add_argument("--memory-only", action="store_true", help="only redo the memory run in --out")
    ap.add_argument("--memory-requests", type=int, default=10_000)
    ap.add_argument("--memory-seconds", type=float, default=600, help="its time bound (600)")
    args = ap.parse_args()
    if args.readme:
        from benchmarks.tools import render_docs

        render_docs.main([])
        return
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        files = photos(Path(tmp))
        if args.memory_only:
            old["memory"] = memory(
                files["single_640x480"], args.memory_requests, 4, args.memory_seconds
            )
            args.out.write_text(json.dumps(old, indent=1) + "\n")
            print(json.dumps(old["memory"], indent=1))
            return
        record: dict[str, Any] = {
            "benchmark": "tcnn serve on loopback vs in-process tcnn detect, same photos, same run",
            "version": 3,
            "command": command(),
            "machine": machine(1),
            "loadavg_before": loadavg(),
            "client": "Python http.client keep-alive threads on the same machine (they share "
            "its cores with the server); multipart upload of the JPEG file; POST "
            "/v1/landmarks. naive: any answer ends a request; retrying: a 503 is sent again "
            "after its Retry-After (a request's latency runs from its first send to its 200)",
            "server": {
                "queue": "default: 16 per core, per worker",
                "max_wait_ms": 0,
                "old_max_wait_ms": OLD_MAX_WAIT_MS,
                "threads": "cores / workers, one-thread ONNX Runtime sessions",
            },
        }
        record["in_process"] = {
            name: in_process(path, args.count, args.max_seconds / 2) for name, path in files.items()
        }
        print(json.dumps(record["in_process"]), flush=True)
        record["http"] = [
            row
            for w in (1, 2)
            for row in levels(w, files, CLIENTS, KINDS, args.count, args.max_seconds)
        ]
        single = {"single_640x480": files["single_640x480"]}
        record["beyond"] = levels(1, single, (BEYOND,), KINDS, args.count, args.max_seconds)
        record["old_default"] = levels(
            1,
            files,
            (8, 32),
            ("naive",),
            args.count,
            args.max_seconds,
            "--max-wait-ms",
            str(OLD_MAX_WAIT_MS),
        )
    record["loadavg_after"] = loadavg()
    if "memory" in old:
        record["memory"] = old["memory"]
    record["targets"] = targets(record)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["targets"], indent=1))


if __name__ == "__main__":
    main()
