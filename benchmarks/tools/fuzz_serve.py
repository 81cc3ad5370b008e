"""Schema-driven fuzzing of ``tcnn serve`` with Schemathesis: no request may get a 5xx.

Starts ``tcnn serve`` on loopback, runs ``schemathesis run`` against its /openapi.json with a
bounded number of examples per operation, then reads the server's own /metrics to count every
answer by status (so a 5xx is caught even if a check missed it).

    nice -n 19 python -m benchmarks fuzz_serve  # results/serve_fuzz.json, about 5 minutes
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import RESULTS, command, machine
from benchmarks.tools.serve_common import get, loadavg, server


def statuses(metrics: str) -> dict[str, int]:
    """Answers by status from the Prometheus text (all routes, this worker)."""
    out: dict[str, int] = {}
    for m in re.finditer(r'^tcnn_http_requests_total\{.*status="(\d+)"\} (\d+)$', metrics, re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return dict(sorted(out.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-examples", type=int, default=60, help="per operation and phase (60)")
    ap.add_argument("--max-time", type=int, default=300, help="seconds for the whole run (300)")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_fuzz.json")
    ap.add_argument("--phases", default="examples,coverage,fuzzing")
    args = ap.parse_args()
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    record: dict[str, Any] = {
        "benchmark": "Schemathesis against tcnn serve's OpenAPI schema; a 5xx fails",
        "command": command(),
        "machine": machine(),
        "loadavg_before": loadavg(),
    }
    with server(1) as (port, _), tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            exe, "run", f"http://127.0.0.1:{port}/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", str(args.max_examples),
            "--max-time", str(args.max_time),
            "--seed", "11",
            "--phases", args.phases,
            "--workers", "2",
            "--request-timeout", "60",
            "--generation-database", "none",
            "--suppress-health-check", "all",
            "--no-color",
            "--report", "json", "--report-json-path", str(report),
        ]  # fmt: skip
        t0 = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_time + 300)
        record["seconds"] = round(time.perf_counter() - t0, 1)
        record["schemathesis_version"] = subprocess.run(
            [exe, "--version"], capture_output=True, text=True
        ).stdout.strip()
        record["schemathesis_exit_code"] = run.returncode
        lines = [ln for ln in run.stdout.splitlines() if ln.strip()]
        record["schemathesis_summary"] = lines[-25:]
        start = next((i for i, ln in enumerate(lines) if "ERRORS" in ln), None)
        if start is not None:  # what went wrong on the client's side, if anything
            record["schemathesis_errors"] = [ln[:300] for ln in lines[start : start + 40]]
        if report.is_file():
            record["schemathesis_report"] = json.loads(report.read_text())
        record["server_answers_by_status"] = statuses(get(port, "/metrics")[1].decode())
    answers = record["server_answers_by_status"]
    record["server_5xx"] = sum(n for s, n in answers.items() if s.startswith("5"))
    record["loadavg_after"] = loadavg()
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print("\n".join(record["schemathesis_summary"]))
    print(json.dumps({"answers": answers, "server_5xx": record["server_5xx"]}))


if __name__ == "__main__":
    main()
