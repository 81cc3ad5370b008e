"""Copy the committed benchmark results into the shipped models' cards (``metrics``).

Run after the benchmarks: ``python benchmarks/update_cards.py``.
"""

from __future__ import annotations

import json

from common import RESULTS
from tcnn.card import update_card
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


if __name__ == "__main__":
    main()
