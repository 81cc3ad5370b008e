"""docs/batch.md's numbers, from ``results/batch.json`` (written by ``bench_batch.py``)."""

from __future__ import annotations

from typing import Any

#: Issue 13's target: 2 workers at least this many times one worker's files/s.
TARGET = 1.7


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _load(run: dict[str, Any]) -> str:
    return _num(run["load_before"][0], ".2f")


def _speedup(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, s in result["speedup_over_1_worker"].items():
        wall, steady = s["wall"] >= TARGET, (s["steady"] or 0.0) >= TARGET
        verdict = "met" if wall else "met in steady state only" if steady else "not met"
        steady = f", steady {_num(s['steady'], '.2f')}x" if s["steady"] is not None else ""
        lines.append(
            f"- {name} over 1 worker: **{_num(s['wall'], '.2f')}x** in wall-time files/s{steady} "
            f"(target {TARGET}x: {verdict})."
        )
    return lines


def _memory(m: dict[str, Any] | str) -> str:
    if isinstance(m, str):
        return f"- Memory over a long manifest: {m}."
    fifths = ", ".join(f"{v:.1f}" for v in m["peak_mb_by_fifth"])
    first, last = m["peak_mb_by_fifth"][0], m["peak_mb_by_fifth"][-1]
    growth = f"{100 * (last / first - 1):+.1f}%" if first else "-"
    workers = f"{m['workers']} workers" if "workers" in m else "2 workers"
    return (
        f"- Memory over a {m['entries']:,}-entry manifest (the files repeated, {workers}, face "
        f"detector upsample {m['upsample']}, load average {_load(m)} before; "
        f"{m['files_per_s']:.1f} files/s): the resident memory of the whole process tree peaked "
        f"at {fifths} MB in the five fifths of the run (last against first: "
        f"{growth})."
    )


def batch_section(result: dict[str, Any]) -> str:
    """The body of the ``bench:batch`` section (docs/batch.md)."""
    m = result["machine"]
    lines = [
        f"Measured {m['date']} by "
        f"`{result.get('command', 'python benchmarks/bench/bench_batch.py')}` "
        f"on {m['cpu']} ({m['cores']} cores), Python {m['python']}, ONNX Runtime "
        f"{m['onnxruntime']}, pyarrow {m['pyarrow']}, Ray {m['ray']}, tcnn {m['tcnn_commit']}. "
        f"{result['files']:,} real files (the shared photos, ytf68 and UTKFace images, read in "
        "place; default model `vanilla5` with RetinaFace); each job a `python -m tcnn batch` "
        "subprocess. Wall files/s include start-up (spawning workers, loading the models, "
        "Ray's runtime); steady files/s count the parts finished after each worker's first one, "
        "from their files' completion times.",
        "",
    ]
    if result.get("threads_per_worker") is None:
        lines += [
            "These figures predate one-core workers: each worker then read and detected on two "
            "threads with ONNX Runtime's default threads (both cores), so one worker already "
            "used the whole machine. Rerun `benchmarks/bench/bench_batch.py` for the current code.",
            "",
        ]
    else:
        lines += [f"A worker: {result['worker']}.", ""]
    lines += [
        "| run | wall s | files/s | steady files/s | faces/s | load before |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["runs"].items():
        lines.append(
            f"| {name[0].upper() + name[1:]} | {r['wall_s']:.1f} | {r['files_per_s']:.1f} "
            f"| {_num(r.get('steady_files_per_s'))} | {r['faces_per_s']:.1f} | {_load(r)} |"
        )
    same = result["identical_rows"]
    lines += [
        "",
        f"- Rows (sorted by `index`, `face`) identical from {' / '.join(same['runs'])}: "
        f"**{'yes' if same['same'] else 'no'}**.",
        *_speedup(result),
    ]
    if "ray_relative_time" in result:
        lines.append(
            f"- Ray against the same number of local workers on the same job: "
            f"{result['ray_relative_time']:.1f}x the time ({result['ray_overhead_s']:+.1f} s; "
            "Ray's runtime start and scheduling)."
        )
    if "ray_cluster_loopback" in result:
        c = result["ray_cluster_loopback"]
        lines.append(
            f"- The multi-node recipe with a head on loopback (`ray {c['command']}`, stopped "
            f"afterwards): {c['files']} files, rows "
            f"{'identical to' if c['same_rows'] else 'different from'} the local run's."
        )
    lines.append(_memory(result["memory_manifest"]))
    if "memory_note" in result:
        lines.append(f"  ({result['memory_note']}.)")
    return "\n".join(lines)
