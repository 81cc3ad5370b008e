"""The load test's summaries, targets and README section on hand-built answers (no server)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> tuple[ModuleType, ModuleType, ModuleType]:
    sys.path.insert(0, str(ROOT))  # the benchmarks package sits at the repository root
    try:
        from benchmarks.bench import bench_serve
        from benchmarks.tools import serve_common, serve_section
    finally:
        sys.path.remove(str(ROOT))
    return bench_serve, serve_common, serve_section


def _load(
    common: ModuleType, ok_ms: list[float], refused: int, seconds: float, **extra: Any
) -> Any:
    """A level's measurements: requests served in ``ok_ms``, ``refused`` ended by a 503."""
    res = common.Load(seconds=seconds, **extra)
    res.latencies = [v / 1e3 for v in ok_ms] + [0.002] * refused
    res.codes = [200] * len(ok_ms) + [503] * refused
    res.statuses = {200: len(ok_ms), **({503: refused} if refused else {})}
    return res


def test_summary_separates_served_from_refused(bench) -> None:  # type: ignore[no-untyped-def]
    bench_serve, common, _ = bench
    s = bench_serve.summary(_load(common, [100.0] * 90 + [300.0] * 10, 100, 10.0))
    assert (s["requests"], s["answers"], s["ok_per_s"], s["served_pct"]) == (200, 200, 10.0, 50)
    assert s["refused_pct"] == 50 and s["answers_per_s"] == 20.0
    assert s["p50_ms_200"] == 100.0 and s["p99_ms_200"] == 300.0
    assert s["p50_ms"] == pytest.approx(51.0)  # the fast 503s pull the all-requests median down
    none = bench_serve.summary(_load(common, [], 5, 1.0))
    assert none["p99_ms_200"] is None and none["served_pct"] == 0 and none["refused_pct"] == 100


def test_a_retrying_clients_requests_count_once(bench) -> None:  # type: ignore[no-untyped-def]
    """Retried answers count among the answers, not the requests; a request given up at the
    deadline is a request not served."""
    bench_serve, common, _ = bench
    res = _load(common, [1500.0] * 9, 0, 5.0, unfinished=1)
    res.statuses = {200: 9, 503: 6}  # 6 refusals before those 9 were served
    s = bench_serve.summary(res)
    assert (s["requests"], s["answers"], s["served_pct"], s["refused_pct"]) == (10, 15, 90, 40)
    assert s["p50_ms_200"] == 1500.0 and s["unfinished"] == 1


def _record(bench_serve: ModuleType, common: ModuleType, p99_200: float, naive8: int) -> Any:
    served = bench_serve.summary(_load(common, [50.0] * 90 + [p99_200] * 10, 0, 5.0))
    naive = bench_serve.summary(_load(common, [50.0] * naive8, 100 - naive8, 5.0))
    beyond = bench_serve.summary(_load(common, [900.0] * 50, 50, 5.0))
    base = {"faces": 1, "tcnn_detect": 20.0, "pipeline_1_thread": 22.0, "pool_1_thread": 25.0}
    base |= {"pool_threads": 2, "best_img_per_s": 25.0}
    photos = ("single_640x480", "group_multi_face")
    clients = (1, 4, 8, 16, 32)
    rec = {
        "version": 3,
        "command": "python benchmarks/bench/bench_serve.py",
        "machine": {"date": "d", "tcnn_commit": "c", "cpu": "X", "cores": 2, "python": "3"}
        | {"onnxruntime": "1"},
        "loadavg_before": [0.1],
        "loadavg_after": [0.2],
        "server": {"max_wait_ms": 0, "old_max_wait_ms": 150},
        "in_process": {p: base for p in photos},
        "http": [
            {
                "workers": w,
                "photo": p,
                "client": kind,
                **{f"clients_{c}": naive if kind == "naive" else served for c in clients},
            }
            for w in (1, 2)
            for p in photos
            for kind in ("naive", "retrying")
        ],
        "beyond": [
            {"workers": 1, "photo": photos[0], "client": kind, "clients_100": beyond}
            | {"rss_mb_workers": [250.0]}
            for kind in ("naive", "retrying")
        ],
        "old_default": [
            {"workers": 1, "photo": p, "client": "naive", "clients_8": naive, "clients_32": naive}
            for p in photos
        ],
    }
    rec["targets"] = bench_serve.targets(rec)
    return rec


def test_section_reports_each_target_from_the_rows(bench) -> None:  # type: ignore[no-untyped-def]
    bench_serve, common, section = bench
    rec = _record(bench_serve, common, 240.0, 100)
    assert rec["targets"]["ratio_4_clients_single_640x480_workers1"] == 0.8  # 20 served/s / 25
    assert rec["targets"]["naive_8_served_pct_group_multi_face_workers2"] == 100
    text = section.serve_section(rec, None)
    assert "| single_640x480 | 1 | defaults | 8 | 100% | 20.0 | 50 / 50 | 100% |" in text
    assert "| single_640x480 | 1 | defaults | 100 | 50% | 10.0 | 900 / 900 | 50% |" in text
    assert "| group_multi_face | 1 | --max-wait-ms 150 | 32 | 100% | 20.0 | 50 / 50 | - |" in text
    assert "8 naive clients at once all served: 4 of 4 rows (lowest 100%" in text
    assert "`--max-wait-ms 150`, 8 naive clients: 100%, 100% served, 32: 100%, 100%)" in text
    assert "4 of 4 rows (lowest 80%)" in text
    assert "workers 1: 240 ms, met (0% of the answers 503); workers 2: 240 ms, met" in text
    assert "resident memory 250 MB after" in text
    missed = section.serve_section(_record(bench_serve, common, 260.0, 30), None)
    assert "all served: 0 of 4 rows (lowest 30%" in missed
    assert "workers 1: 260 ms, missed" in missed
