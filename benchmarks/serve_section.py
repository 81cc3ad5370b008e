"""The README's ``bench:serve`` section, from results/serve.json and results/serve_fuzz.json."""

from __future__ import annotations

from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _row(photo: str, workers: int, wait: str, clients: int, r: dict[str, Any]) -> str:
    return (
        f"| {photo} | {workers} | {wait} | {clients} | {r['req_per_s']:.1f} | "
        f"{r['ok_per_s']:.1f} | {r['refused_pct']:.0f}% | {_ms(r['p50_ms'])} / "
        f"{_ms(r['p99_ms'])} | {_ms(r['p50_ms_200'])} / {_ms(r['p99_ms_200'])} |"
    )


def _verdict(t: dict[str, Any]) -> str:
    """The p99 target for each worker count: met by every answer, by the served ones, or not."""
    parts = []
    for w in (1, 2):
        tag = f"single_640x480_workers{w}"
        p99, p99_ok = t[f"p99_ms_16_clients_{tag}"], t[f"p99_ms_200_16_clients_{tag}"]
        refused, free = (
            t[f"refused_pct_16_clients_{tag}"],
            t[f"p99_ms_16_clients_no_limit_workers{w}"],
        )
        if refused == 0 and p99 < 250:
            verdict = f"met, p99 {p99:.0f} ms with nothing refused"
        elif p99_ok is not None and p99_ok < 250:
            verdict = (
                f"met only for the served requests: p99 of the 200 answers {p99_ok:.0f} ms, "
                f"with {refused:.0f}% of the answers a 503"
            )
        else:
            verdict = f"missed, p99 of the 200 answers {_ms(p99_ok)} ms ({refused:.0f}% refused)"
        parts.append(f"workers {w}: {verdict}; without the limit p99 {free:.0f} ms")
    return "; ".join(parts)


def serve_section(rec: dict[str, Any], fz: dict[str, Any] | None) -> str:
    """The section's markdown."""
    lines = [
        "| photo | in-process img/s: `tcnn detect` (pipeline, default threads) | pipeline, "
        "1-thread sessions | pool of 1-thread detectors | best |",
        "|---|---|---|---|---|",
    ]
    for name, b in rec["in_process"].items():
        faces = f"{b['faces']} face{'s' if b['faces'] != 1 else ''}"
        lines.append(
            f"| {name} ({faces}) | {b['tcnn_detect']:.1f} | {b['pipeline_1_thread']:.1f} | "
            f"{b['pool_1_thread']:.1f} ({b['pool_threads']} threads) | {b['best_img_per_s']:.1f} |"
        )
    lines += [
        "",
        "| photo | workers | max wait | clients | answers/s | served (200)/s | refused (503) "
        "| p50 / p99 ms, all answers | p50 / p99 ms, 200 answers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    wait = f"{rec['server']['max_wait_ms']} ms"
    for row in rec["http"]:
        for c in (1, 4, 16):
            lines.append(_row(row["photo"], row["workers"], wait, c, row[f"clients_{c}"]))
    for row in rec["no_limit"]:
        lines.append(_row(row["photo"], row["workers"], "none", 16, row["clients_16"]))
    m, t = rec["machine"], rec["targets"]
    ratios = {k: v for k, v in t.items() if k.startswith("ratio_4")}
    lines += [
        "",
        f"Measured {m['date']} (commit {m['tcnn_commit']}) on {m['cpu']} ({m['cores']} cores; "
        f"load average {rec['loadavg_before'][0]:.1f} before, {rec['loadavg_after'][0]:.1f} "
        f"after), Python {m['python']}, ONNX Runtime {m['onnxruntime']}; `{rec['command']}`. "
        "Client and server share the cores. A client refused with 503 waits its `Retry-After` "
        "(whole seconds, at least 1) before its next request; a refused request is not a "
        "served one: it counts in the answers and the refused share, not in the served rate "
        "or the 200 latencies.",
        f"Targets: served answers/s at 4 clients >= 80% of the best in-process way: "
        f"{sum(v >= 0.8 for v in ratios.values())} of {len(ratios)} rows (lowest "
        f"{100 * min(ratios.values()):.0f}%). p99 < 250 ms for the 640x480 photo at 16 clients: "
        f"{_verdict(t)}.",
    ]
    lines += _memory_and_fuzz(rec, fz)
    return "\n".join(lines)


def _memory_and_fuzz(rec: dict[str, Any], fz: dict[str, Any] | None) -> list[str]:
    lines = []
    mem = rec.get("memory")
    if mem is not None:
        when = mem.get("machine", {}).get("date", "with the earlier results")
        lines.append(
            f"Memory of one worker ({when}, `--memory-only`): {mem['rss_mb_start']:.0f} MB at "
            f"start, {mem['rss_mb_after_warmup']:.0f} MB after {mem['warmup_requests']} "
            f"requests, {mem['rss_mb_after']:.0f} MB after {mem['requests']:,} more "
            f"({mem['growth_after_warmup_pct']:+.1f}%; statuses {mem['statuses']})."
        )
    if fz is not None:
        cases = fz.get("schemathesis_report", {}).get("test_cases", {})
        lines.append(
            f"Schemathesis ({fz['schemathesis_version']}, `benchmarks/fuzz_serve.py`): "
            f"{cases.get('generated', '?')} generated requests, server answers by status "
            f"{fz['server_answers_by_status']}: {fz['server_5xx']} with a 5xx."
            + (
                " Schemathesis stopped its coverage phase on one operation with an internal "
                "error of its own (Hypothesis, client side; in the result file)."
                if fz.get("schemathesis_errors")
                else ""
            )
        )
    return lines


def _level(r: dict[str, Any]) -> str:
    return f"{r['req_per_s']:.1f} ({r['p50_ms']:.0f} / {r['p99_ms']:.0f} ms)"
