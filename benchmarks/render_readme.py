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


def protocols_table(result: dict) -> str:
    """Both AFLW test protocols side by side, then the end-to-end photo run."""
    a = {r["method"]: r for r in result["a"]["rows"]}
    b = {r["method"]: r for r in result["b"]["rows"]}
    pa, pb = result["a"], result["b"]
    lines = [
        "| method | (a) RetinaFace boxes: mean | fail > 10% | (b) HOG boxes: mean | fail > 10% |",
        "|---|---|---|---|---|",
    ]
    for name in a:
        ra, rb = a[name], b.get(name)
        cells = f"{100 * ra['mean']:.2f}% | {100 * ra['failure_10']:.1f}%"
        other = f"{100 * rb['mean']:.2f}% | {100 * rb['failure_10']:.1f}%" if rb else "- | -"
        lines.append(f"| {name} | {cells} | {other} |")
    m, e = result["machine"], result["end_to_end"]
    own_a, own_b = a["RetinaFace 5 points"]["faces"], b["RetinaFace 5 points"]["faces"]
    first = result["a"]["rows"][0]
    lines += [
        "",
        f"{result['benchmark']}; {result['coordinates']}. (a): the {pa['faces']} of "
        f"{pa['total']} faces RetinaFace finds (threshold 0.8); (b): the {pb['faces']} faces "
        f"dlib's HOG detector finds (upsample 2). Models get the protocol's boxes mapped onto "
        "the boxes they were trained on; dlib 68 -> 5 uses HOG boxes, and a mapped RetinaFace "
        f"box for the {a['dlib 68 -> 5']['retina_boxes_mapped']} faces of (a) HOG misses; "
        f"RetinaFace's own points are scored on {own_a} (a) and {own_b} (b) of the faces. "
        f"Landmark stage of {first['method']}: {first['faces_per_s_batch256']:,.0f} faces/s "
        f"at batch 256, {1000 / first['faces_per_s_batch1']:.2f} ms per face at batch 1. "
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), ONNX Runtime "
        f"{m['onnxruntime']}, dlib {m['dlib']}.",
        f"End to end on {e['photos']} photos ({e['distinct_photos']} shared photos, "
        f"{e['photos'] // e['distinct_photos']} copies), same run, load average "
        f"{e['loadavg_1min']:.1f}: tcnn (RetinaFace + {e['tcnn_model']}) "
        f"{e['tcnn_photos_per_s']:.1f} photos/s, {e['tcnn_faces']} faces; dlib (HOG + its "
        f"68-point predictor) {e['dlib_photos_per_s']:.1f} photos/s, {e['dlib_faces']} faces "
        f"({e['tcnn_photos_per_s'] / e['dlib_photos_per_s']:.1f}x).",
    ]
    return "\n".join(lines)


def main() -> None:
    text = README.read_text()
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem in ("label_offsets", "label_rule", "box_mapping", "retina_threshold"):
            continue
        key = path.stem
        pattern = re.compile(rf"(<!-- bench:{key} -->\n)(?:.*?\n)?(<!-- /bench:{key} -->)", re.S)
        if pattern.search(text):
            result = json.loads(path.read_text())
            if key == "protocols":
                body = protocols_table(result)
            else:
                body = tweak_table(result) if key.startswith("tweak") else table(result)
            text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
    README.write_text(text)


if __name__ == "__main__":
    main()
