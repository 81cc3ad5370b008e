"""Copy the committed benchmark results into the shipped models' cards (``metrics``).

Run after the benchmarks: ``python benchmarks/tools/update_cards.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import RESULTS
from tcnn.card import read_card, update_card
from tcnn.registry import WEIGHTS


def main() -> None:
    for key in ("5pt", "68pt"):
        path = RESULTS / f"{key}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for row in result["rows"]:
            onnx = WEIGHTS / f"{row['method']}.onnx"
            if not onnx.exists():
                continue
            metrics = {
                k: round(v, 5) if isinstance(v, float) else v
                for k, v in row.items()
                if k != "method"
            }
            headline = (
                f"{100 * row['mean']:.2f}% mean error, {100 * row['failure_10']:.1f}% "
                f"failures > 10% ({result['benchmark'].split(',')[0]})"
            )
            update_card(
                onnx,
                metrics={
                    "benchmark": result["benchmark"],
                    "protocol": result["protocol"],
                    "headline": headline,
                    **metrics,
                },
            )
            print(f"{onnx.name}: {headline}")
    add_protocols()
    add_aflw68()


def add_aflw68() -> None:
    """aflw68's held-out part (``aflw68.json``, both box protocols) in the 68-point cards; the
    headline of a model that learnt from aflw68-train becomes its held-out HOG figure."""
    path = RESULTS / "aflw68.json"
    if not path.exists():
        return
    result = json.loads(path.read_text())
    keep = ("mean", "median", "failure_8", "failure_10", "auc_10", "by_group", "faces")
    for onnx in sorted(WEIGHTS.glob("*.onnx")):
        card = read_card(onnx)
        rows = {
            key: next((r for r in result[key]["rows"] if r["method"] == card.name), None)
            for key in ("hog", "retinaface")
        }
        if card.points != 68 or None in rows.values():
            continue
        entry = {
            "benchmark": result["benchmark"],
            **{key: {k: r[k] for k in keep} for key, r in rows.items() if r is not None},
        }
        metrics = {**card.metrics, "aflw68_heldout": entry}
        if "aflw68-train" in str(card.training.get("data", "")):
            hog, retina = rows["hog"], rows["retinaface"]
            assert hog is not None and retina is not None
            metrics["headline"] = (
                f"{100 * hog['mean']:.2f}% mean error on aflw68's held-out human labels (HOG "
                f"boxes), {100 * retina['mean']:.2f}% (RetinaFace boxes)"
            )
        update_card(onnx, metrics=metrics)
        print(f"{onnx.name}: aflw68 held-out {100 * rows['hog']['mean']:.2f}% (HOG)")  # type: ignore[index]


def add_protocols() -> None:
    """Protocol (a) of ``protocols.json`` (RetinaFace boxes, all faces it finds) in the cards."""
    path = RESULTS / "protocols.json"
    if not path.exists():
        return
    result = json.loads(path.read_text())
    for row in result["a"]["rows"]:
        onnx = WEIGHTS / f"{row['method']}.onnx"
        if not onnx.exists():
            continue
        card = read_card(onnx)
        faces = f"{result['a']['faces']} of {result['a']['total']} faces"
        metrics = {
            **card.metrics,
            "retinaface_boxes": {
                "protocol": f"RetinaFace boxes (threshold 0.8): {faces} found",
                **{
                    k: round(v, 5)
                    for k, v in row.items()
                    if k in ("mean", "median", "failure_8", "failure_10", "auc_10")
                },
            },
        }
        update_card(onnx, metrics=metrics)
        print(f"{onnx.name}: protocol (a) {100 * row['mean']:.2f}% mean")


if __name__ == "__main__":
    main()
