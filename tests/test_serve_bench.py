"""The load test's summaries, targets and README section on hand-built answers (no server)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> tuple[ModuleType, ModuleType, ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_serve
        import serve_common
        import serve_section
    finally:
        sys.path.remove(str(BENCH))
    return bench_serve, serve_common, serve_section


def _load(common: ModuleType, ok_ms: list[float], refused: int, seconds: float) -> Any:
    res = common.Load(seconds=seconds)
    res.latencies = [v / 1e3 for v in ok_ms] + [0.002] * refused
    res.codes = [200] * len(ok_ms) + [503] * refused
    res.statuses = {200: len(ok_ms), **({503: refused} if refused else {})}
    return res


def test_summary_separates_served_from_refused(bench) -> None:  # type: ignore[no-untyped-def]
    bench_serve, common, _ = bench
    s = bench_serve.summary(_load(common, [100.0] * 90 + [300.0] * 10, 100, 10.0))
    assert (s["answers"], s["req_per_s"], s["ok_per_s"], s["refused_pct"]) == (200, 20.0, 10.0, 50)
    assert s["p50_ms_200"] == 100.0 and s["p99_ms_200"] == 300.0
    assert s["p50_ms"] == pytest.approx(51.0)  # the fast 503s pull the all-answers median down
    none = bench_serve.summary(_load(common, [], 5, 1.0))
    assert none["p99_ms_200"] is None and none["refused_pct"] == 100


def _record(bench_serve: ModuleType, common: ModuleType, p99_200: float, p99_free: float) -> Any:
    level = bench_serve.summary(_load(common, [50.0] * 90 + [p99_200] * 10, 25, 5.0))
    free = bench_serve.summary(_load(common, [100.0] * 90 + [p99_free] * 10, 0, 5.0))
    base = {"faces": 1, "tcnn_detect": 20.0, "pipeline_1_thread": 22.0, "pool_1_thread": 25.0}
    base |= {"pool_threads": 2, "best_img_per_s": 25.0}
    photos = ("single_640x480", "group_multi_face")
    rec = {
        "version": 2,
        "command": "python benchmarks/bench_serve.py",
        "machine": {"date": "d", "tcnn_commit": "c", "cpu": "X", "cores": 2, "python": "3"}
        | {"onnxruntime": "1"},
        "loadavg_before": [0.1],
        "loadavg_after": [0.2],
        "server": {"max_wait_ms": 150},
        "in_process": {p: base for p in photos},
        "http": [
            {"workers": w, "photo": p, **{f"clients_{c}": level for c in (1, 4, 16)}}
            for w in (1, 2)
            for p in photos
        ],
        "no_limit": [{"workers": w, "photo": photos[0], "clients_16": free} for w in (1, 2)],
    }
    rec["targets"] = bench_serve.targets(rec)
    return rec


def test_section_says_the_target_is_met_only_for_the_served(bench) -> None:  # type: ignore[no-untyped-def]
    bench_serve, common, section = bench
    rec = _record(bench_serve, common, 240.0, 400.0)
    assert rec["targets"]["ratio_4_clients_single_640x480_workers1"] == 0.8  # 20 served/s / 25
    text = section.serve_section(rec, None)
    assert "| single_640x480 | 1 | none | 16 |" in text
    assert "4 of 4 rows (lowest 80%)" in text
    assert "met only for the served requests: p99 of the 200 answers 240 ms, with 20%" in text
    assert "without the limit p99 400 ms" in text
    missed = section.serve_section(_record(bench_serve, common, 260.0, 400.0), None)
    assert "missed, p99 of the 200 answers 260 ms (20% refused)" in missed
