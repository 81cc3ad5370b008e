"""Copy the committed benchmark results into the shipped models' cards (``metrics``).

Run after the benchmarks: ``python benchmarks/update_cards.py``.
"""

from __future__ import annotations

import json

from common import RESULTS
from tcnn.card import read_card, update_card
from tcnn.models.registry import WEIGHTS


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
