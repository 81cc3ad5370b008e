"""Record the shipped models' accuracy on fixed slices of real faces, for the CI check.

``tests/test_accuracy_slices.py`` re-measures each slice and fails when the mean error moves by
more than 0.01 percentage points: any change of coordinate convention (a half-pixel slip in
cropping, mapping back, face boxes or labels) moves it far more than that. Each slice is the
first ``faces`` faces that the model card's detector finds in the first ``read`` annotations of
a test set (the faces the benchmarks use, in file order).

Regenerate after retraining or replacing a shipped model (and only then; say so in the commit):

    PYTHONPATH=src python benchmarks/bench/accuracy_slices.py

It writes ``benchmarks/results/accuracy_slices.json`` and reads ``../shared/data`` (or
``$TCNN_DATA``); about ten seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import machine, write_result
from tcnn.card import graph_digest
from tcnn.registry import resolve
from tcnn.train.evaluate import evaluate

#: (dataset, model, annotations read, found faces scored).
SLICES = (
    ("mtfl-aflw", "vanilla5", 240, 200),
    ("mtfl-aflw", "vanilla5-fast", 240, 200),
    ("mtfl-aflw", "vanilla5-hog", 240, 200),
    ("ytf68-test", "vanilla68", 110, 100),
    ("ytf68-test", "tcnn68", 110, 100),
    ("aflw68-test", "tcnn68h", 110, 100),
    ("aflw68-test", "tcnn68st-int8", 110, 100),
    ("aflw68-test", "tcnn68hid-int8", 110, 100),
)


def model_digest(model: str) -> str:
    """SHA-256 (first 16 hex digits) of a model's graph and weights, card left out."""
    return graph_digest(resolve(model))


def measure(data: str, model: str, read: int, faces: int) -> dict[str, Any]:
    """Mean and median error (percent) of ``model`` on one slice, with what defines it."""
    result = evaluate(model, data, limit=read, progress=False)
    if len(result.errors) < faces:
        raise SystemExit(f"{data}: only {len(result.errors)} of {read} faces found, need {faces}")
    errors = result.errors[:faces]
    return {
        "data": data,
        "model": model,
        "model_sha256": model_digest(model),
        "read": read,
        "faces": faces,
        "normaliser": result.normaliser,
        "mean_pct": round(100 * float(np.mean(errors)), 5),
        "median_pct": round(100 * float(np.median(errors)), 5),
    }


def main() -> None:
    rows = [measure(*s) for s in SLICES]
    for r in rows:
        print(f"{r['data']} {r['model']}: {r['faces']} faces, mean {r['mean_pct']:.4f}%")
    print(
        write_result(
            "accuracy_slices",
            {
                "what": "shipped models on fixed slices of real faces; checked by "
                "tests/test_accuracy_slices.py to 0.01 points",
                "regenerate": "PYTHONPATH=src python benchmarks/bench/accuracy_slices.py",
                "slices": rows,
                "machine": machine(),
            },
        )
    )


if __name__ == "__main__":
    main()
