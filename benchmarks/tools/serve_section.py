"""docs/serve.md's ``bench:serve`` section, from results/serve.json and serve_fuzz.json."""

from __future__ import annotations

from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _pair(r: dict[str, Any]) -> str:
    """Served share, served/s and p50 / p99 ms of the served requests of one level."""
    return (
        f"{r['served_pct']:.0f}% | {r['ok_per_s']:.1f} | {_ms(r['p50_ms_200'])} / "
        f"{_ms(r['p99_ms_200'])}"
    )


def _rows(rec: dict[str, Any]) -> list[str]:
    """One line per photo, workers, server settings and clients: naive beside retrying."""
    groups: dict[tuple[str, str, int, str], dict[str, dict[str, Any]]] = {}
    old = f"--max-wait-ms {rec['server']['old_max_wait_ms']}"
    for part, label in (("http", "defaults"), ("beyond", "defaults"), ("old_default", old)):
        for row in rec[part]:
            key = (part, row["photo"], row["workers"], label)
            groups.setdefault(key, {})[row["client"]] = row
    lines = []
    for (_, photo, workers, label), kinds in groups.items():
        counts = sorted(
            {
                int(k.split("_")[1])
                for row in kinds.values()
                for k in row
                if k.startswith("clients_")
            }
        )
        for c in counts:
            naive = kinds.get("naive", {}).get(f"clients_{c}")
            retry = kinds.get("retrying", {}).get(f"clients_{c}")
            cells = [_pair(naive) if naive else "- | - | -"]
            cells.append(
                f"{_pair(retry)} | {retry['refused_pct']:.0f}%" if retry else "- | - | - | -"
            )
            lines.append(f"| {photo} | {workers} | {label} | {c} | " + " | ".join(cells) + " |")
    return lines


def _targets(rec: dict[str, Any]) -> str:
    t = rec["targets"]
    naive8 = {k: v for k, v in t.items() if k.startswith("naive_8_served_pct_") and "old" not in k}
    ratios = {k: v for k, v in t.items() if k.startswith("ratio_4")}
    p99 = []
    for w in (1, 2):
        v = t[f"p99_ms_200_16_clients_single_640x480_workers{w}"]
        verdict = "met" if v is not None and v < 250 else "missed"
        refused = next(
            r["clients_16"]["refused_pct"]
            for r in rec["http"]
            if (r["photo"], r["workers"], r["client"]) == ("single_640x480", w, "retrying")
        )
        p99.append(f"workers {w}: {_ms(v)} ms, {verdict} ({refused:.0f}% of the answers 503)")
    beyond = rec["beyond"]
    rss = max(max(row["rss_mb_workers"]) for row in beyond)
    naive = next(r for r in beyond if r["client"] == "naive")[f"clients_{_beyond(rec)}"]
    retry = next(r for r in beyond if r["client"] == "retrying")[f"clients_{_beyond(rec)}"]
    old = {
        c: ", ".join(
            f"{v:.0f}%"
            for k, v in t.items()
            if k.startswith(f"naive_{c}_served_pct_") and k.endswith("_old_max_wait")
        )
        for c in (8, 32)
    }
    return (
        f"8 naive clients at once all served: {sum(v == 100 for v in naive8.values())} of "
        f"{len(naive8)} rows (lowest {min(naive8.values()):.0f}%; with the former bound by "
        f"waiting time, `--max-wait-ms 150`, 8 naive clients: {old[8]} served, 32: "
        f"{old[32]}). Served "
        f"requests/s at 4 clients >= 80% of the best in-process way: "
        f"{sum(v >= 0.8 for v in ratios.values())} of {len(ratios)} rows (lowest "
        f"{100 * min(ratios.values()):.0f}%). p99 of the served < 250 ms for the 640x480 photo "
        f"at 16 retrying clients: {'; '.join(p99)}. Far beyond the queue "
        f"({_beyond(rec)} clients, 1 worker): {naive['refused_pct']:.0f}% of the naive "
        f"clients' answers and {retry['refused_pct']:.0f}% of the retrying clients' answers "
        f"were 503 (retrying: {retry['served_pct']:.0f}% served, p99 "
        f"{_ms(retry['p99_ms_200'])} ms), the worker's resident memory {rss:.0f} MB after."
    )


def _beyond(rec: dict[str, Any]) -> int:
    return int(next(k for k in rec["beyond"][0] if k.startswith("clients_")).split("_")[1])


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
        "| photo | workers | server | clients | naive: served | naive: served/s | naive: "
        "p50 / p99 ms | retrying: served | retrying: served/s | retrying: p50 / p99 ms | "
        "retrying: answers 503 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *_rows(rec),
    ]
    m = rec["machine"]
    lines += [
        "",
        f"Measured {m['date']} (commit {m['tcnn_commit']}) on {m['cpu']} ({m['cores']} cores; "
        f"load average {rec['loadavg_before'][0]:.1f} before, {rec['loadavg_after'][0]:.1f} "
        f"after), Python {m['python']}, ONNX Runtime {m['onnxruntime']}; `{rec['command']}`. "
        "Client and server share the cores. Each client sends its next request when the last "
        "one ends. A naive client takes any answer, a 503 too, as the end of its request; a "
        "retrying one sends a refused request again after its `Retry-After` (whole seconds, at "
        "least 1). Served: the share of requests answered 200 (a retrying client's request "
        "still waiting to retry at the level's end is not served); p50 / p99: latency of the "
        "served requests, from the first send to the 200 (waits included); answers 503: the "
        "share of HTTP answers, retries included.",
        f"Targets: {_targets(rec)}",
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
            f"Schemathesis ({fz['schemathesis_version']}, `benchmarks/tools/fuzz_serve.py`): "
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
