"""Write the benchmark tables into README.md from the committed results (between markers).

Run: ``python benchmarks/render_readme.py`` after a benchmark script.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from common import RESULTS

README = Path(__file__).resolve().parent.parent / "README.md"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def table(result: dict) -> str:
    lines = [
        "| method | mean | median | fail > 8% | fail > 10% | AUC@10% | faces/s batch 1 "
        "| faces/s batch 256 | file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | {100 * r['mean']:.2f}% | {100 * r['median']:.2f}% "
            f"| {100 * r['failure_8']:.1f}% | {100 * r['failure_10']:.1f}% "
            f"| {100 * r['auc_10']:.1f} | {_rate(r.get('faces_per_s_batch1'))} "
            f"| {_rate(r.get('faces_per_s_batch256'))} | {r['file_kb'] / 1024:.1f} MB |"
        )
    m = result["machine"]
    lines.append("")
    lines.append(
        f"{result['benchmark']}; {result['protocol']}. Measured {m['date']} on "
        f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, ONNX Runtime "
        f"{m['onnxruntime']}, dlib {m['dlib']}. Landmark stage: crop + network + "
        "mapping back to pixels; dlib's predictor runs one face at a time."
    )
    if "end_to_end" in result:
        e = result["end_to_end"]
        lines.append(
            f"End to end (dlib HOG face detection + landmarks) on {e['photos']} photos: "
            f"tcnn {e['tcnn_photos_per_s']:.1f} photos/s, dlib "
            f"{e['dlib_photos_per_s']:.1f} photos/s; face detection dominates both."
        )
    return "\n".join(lines)


def tweak_table(result: dict) -> str:
    lines = [
        "| model | K | routing | mean | fail > 10% | faces/s batch 256 |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        k = "-" if r["k"] == 0 else str(r["k"])
        lines.append(
            f"| {r['method']} | {k} | {r['routing']} | {100 * r['mean']:.2f}% "
            f"| {100 * r['failure_10']:.1f}% | {r['faces_per_s_batch256']:,.0f} |"
        )
    pc = result.get("per_cluster") or {}
    if pc:
        lines += [
            "",
            f"Per cluster ({pc['run']}, clusters by its router):",
            "",
            "| cluster | test faces | base mean | tweaked mean |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['cluster']} | {c['faces']} | {100 * c['base_mean']:.2f}% "
            f"| {100 * c['tweaked_mean']:.2f}% |"
            for c in pc["clusters"]
        ]
    m = result["machine"]
    lines += [
        "",
        f"{result['benchmark']}; {result['protocol']}. Measured {m['date']} on "
        f"{m['cpu']} ({m['cores']} cores), ONNX Runtime {m['onnxruntime']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    text = README.read_text()
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem == "label_offsets":
            continue
        key = path.stem
        pattern = re.compile(rf"(<!-- bench:{key} -->\n)(?:.*?\n)?(<!-- /bench:{key} -->)", re.S)
        if pattern.search(text):
            result = json.loads(path.read_text())
            body = tweak_table(result) if key.startswith("tweak") else table(result)
            text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
    README.write_text(text)


if __name__ == "__main__":
    main()
