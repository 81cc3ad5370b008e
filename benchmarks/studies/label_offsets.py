"""Diagnostic: the mean landmark offset (ground truth - prediction) per method and split.

MTFL's AFLW test labels sit to the right of and below where its training labels' convention
puts them (../shared/data/mtfl/README.md, "Known quirk"). This measures the mean offset, in
pixels of the 80x80 images, of dlib and of a tcnn model on both splits; nothing here feeds
training or any model. Also the error each method would have with its own mean test offset
removed: an oracle for reading the benchmark, never a result.

Run: ``python benchmarks/studies/label_offsets.py`` (writes benchmarks/results/label_offsets.json).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import DlibShapePredictor, found_faces, predict_all, write_result
from tcnn.metrics import nme, normalising_distance
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import FIVE, to_five


def main(limit: int = 2000) -> None:
    dl = DlibShapePredictor()
    lm = LandmarkDetector("vanilla5")
    rows = []
    for split in ("mtfl-train", "mtfl-aflw"):
        faces = found_faces(split, limit)
        images, boxes, gt = faces.images, faces.boxes, faces.gt
        norm = normalising_distance(gt, FIVE)
        preds = {
            "dlib 68 -> 5": np.stack([to_five(dl(i, b)) for i, b in zip(images, boxes)]),
            "vanilla5": predict_all(lm, images, boxes),
        }
        for name, pred in preds.items():
            offset = (gt - pred).mean(axis=(0, 1))
            rows.append(
                {
                    "split": split,
                    "method": name,
                    "faces": len(gt),
                    "offset_x_px": float(offset[0]),
                    "offset_y_px": float(offset[1]),
                    "mean": float(nme(pred, gt, norm).mean()),
                    "mean_without_own_offset": float(nme(pred + offset, gt, norm).mean()),
                }
            )
            print(rows[-1])
    write_result("label_offsets", {"rows": rows})


if __name__ == "__main__":
    main()
