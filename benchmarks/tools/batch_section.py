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
        f"place; default model {result.get('pipeline', '`vanilla5` with RetinaFace')}); "
        "each job a `python -m tcnn batch` "
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


def _main_ms(v: float | None) -> str:
    """The main process's per-file CPU less its fixed costs: a difference of two small
    measurements, shown as below resolution when noise makes it round to zero or less."""
    return "-" if v is None else "< 0.005" if v < 0.005 else f"{v:.3f}"


def batch_account_section(result: dict[str, Any]) -> str:
    """The body of the ``bench:batch_account`` section (docs/batch.md), from
    ``results/batch_account.json`` (``profile_batch.py --account``)."""
    m, p, fixed = result["machine"], result["predictions"], result["one_file_job"]
    before, after = result["load_before"][0], result["load_after"][0]
    load = f"load average {before:.2f} before, {after:.2f} after"
    lines = [
        f"Measured {m['date']} by `{result['command']}` on {m['cpu']} ({m['cores']} cores, shared: "
        f"{load}), tcnn {m['tcnn_commit']}; {result['files']:,} files in parts of "
        f"{result['part_size']}. CPU seconds (user + system) from `getrusage` of the main process "
        "and of its reaped workers; each worker's share and its main thread (landmarks, part "
        "writing) against its other threads (reading, face detection) sampled from `/proc`. The "
        "fixed costs are a one-file, one-worker job's; per-file costs are the rest over the files.",
        "",
        "| run | main process CPU s | workers CPU s | each worker CPU s | worker ms/file "
        "| main ms/file | bytes written | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in {"1 file, 1 worker": fixed, **result["runs"]}.items():
        pf = r.get("per_file", {})
        each = " / ".join(f"{w['cpu_s']:.2f}" for w in r["workers"])
        lines.append(
            f"| {name} | {r['main_cpu_s']:.2f} | {r['children_cpu_s']:.2f} | {each} "
            f"| {_num(pf.get('worker_ms'), '.2f')} | {_main_ms(pf.get('main_ms'))} "
            f"| {r['bytes_written']:,} | {r['wall_s']:.1f} |"
        )
    steps = result["main_steps_ms_per_file"]
    more = {k: v for k, v in p["worker_ms_over_1_worker"].items() if k != "1 worker"}
    host = result["host16"]
    implied = ", ".join(f"{n}: {s}" for n, s in host["amdahl"]["implied_by_each"].items())
    speedups = ", ".join(f"{n} workers {s}x" for n, s in host["steady_speedups"].items())
    lines += [
        "",
        f"- Main process: {p['main_fixed_cpu_s']:.2f} s fixed (of which "
        f"{fixed['main_import_cpu_s']:.2f} s importing, then the options check, which loads "
        "the landmark model, the pool and the summary); at most "
        f"{p['main_ms_per_file_at_most']:.3f} ms per file with that included. Listing and "
        f"cutting the inputs into parts: {steps['listing']:.4f} ms per file; pickling a part "
        f"for its worker: {steps['pickling']:.4f} ms per file (measured alone).",
        f"- Worker: {p['worker_startup_cpu_s']:.2f} s start-up (the work of "
        f"{p['worker_startup_in_files']:.0f} files), then {p['worker_ms_per_file']:.2f} ms per "
        "file with one worker; its main thread (landmarks, writing) takes "
        f"{100 * p['worker_main_thread_share']:.1f}% of that, the reading and detecting thread "
        "the rest. Worker CPU per file against one worker's: "
        + ", ".join(f"{k} {v:.3f}x" for k, v in more.items())
        + ".",
        "- Predicted (not measured on a larger machine): the main process saturates a core only "
        f"beyond {p['main_process_ceiling_workers_at_least']} workers; start-up is paid once per "
        "worker and is outside the steady files/s; one worker's two threads overlapping on an "
        "idle machine can make full-machine efficiency no lower than "
        f"{100 * p['overlap_worst_efficiency']:.1f}%. So the process structure predicts "
        "near-linear scaling; what a larger machine loses beyond that is left to workers "
        "slowing each other down (CPU per file rising with the worker count: shared caches, "
        "memory bandwidth, SMT siblings, clock speed) or to idle workers, which this account "
        "tells apart where it runs.",
        f"- Issue 25's 16-core host (steady speedups {speedups}; not rerun here): the Amdahl "
        f"serial fraction each implies is {implied}; a serial part would give one value (least "
        f"squares: {host['amdahl']['serial_fraction_fit']}), and this one falls as workers are "
        "added, which fits workers slowing each other down better than a serial part (a "
        "prediction to check with this account on such a host).",
    ]
    return "\n".join(lines)
