"""The label-convention rule (``tcnn.train.convention``) measured on a model's own training faces.

A shipped mirror-trained model is run on its training faces, with the boxes of the detector it
was trained on; the mean label offset its export added back (the card's ``offset``, in crop
units) is taken off first, so the predictions are the mirror-trained network's own. Its mean
horizontal residual (label - prediction), in training-image pixels, is the labels' offset
``d`` that the rule removes from both axes of the training labels (``label_shift = d`` in a
training config). Training faces only; no test face is read.

Run: ``python benchmarks/studies/label_rule.py [vanilla5 ...]`` (writes
benchmarks/results/label_rule.json; naming models re-measures those rows and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import RESULTS, load_images, machine, predict_all, write_result
from tcnn.predictor import LandmarkDetector
from tcnn.train.convention import measure_offset
from tcnn.train.data.datasets import load_dataset

RUNS = (("vanilla5", "mtfl-train"), ("vanilla68", "ytf68-train"))


def measure(model: str, data: str) -> dict[str, object]:
    """The rule's offset for ``model`` on its training set ``data``."""
    lm = LandmarkDetector(model, face_detector=None)
    card = lm.model.card
    samples = [s for s in load_dataset(data, face_detector=card.detector) if s.box]
    boxes = [s.box for s in samples if s.box]
    pred = predict_all(lm, load_images(samples), boxes, card.detector)
    regions = [lm.model.card.crop.region(b) for b in boxes]
    size = np.array([[r.width, r.height] for r in regions], np.float32)[:, None]
    added = np.asarray(card.offset, np.float32)
    raw = pred - added * size  # the network's own prediction, nothing added back
    labels = np.stack([s.landmarks for s in samples])
    found = measure_offset(labels, raw)
    row = {
        "model": model,
        "data": data,
        "detector": card.detector,
        "faces": found.faces,
        "label_shift_px": round(found.shift, 4),
        "vertical_residual_px": round(found.vertical, 4),
        "card_offset_crop_units": [float(v) for v in added],
        "mean_crop_width_px": round(float(size[:, 0, 0].mean()), 2),
    }
    print(row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="models to measure (default: all of RUNS)")
    names = ap.parse_args().models
    rows = [measure(m, d) for m, d in RUNS if not names or m in names]
    kept = [r for r in previous_rows() if r["model"] not in {r["model"] for r in rows}]
    write_result("label_rule", {"machine": machine(), "rows": kept + rows})


def previous_rows() -> list[dict[str, object]]:
    """The committed rows (a run naming some models keeps the others' rows)."""
    path = RESULTS / "label_rule.json"
    return list(json.loads(path.read_text())["rows"]) if path.exists() else []


if __name__ == "__main__":
    main()
