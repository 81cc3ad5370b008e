"""The box mapping from RetinaFace's boxes to dlib HOG's, measured on training faces.

On the training faces that both detectors find (mtfl-train), the median centre
shift (in RetinaFace box widths) and the median size ratio (HOG width / RetinaFace width) are
measured on every other face and checked on the rest: on those held-out faces, the mapped
boxes' median IoU with HOG's and the median centre error (in HOG box widths), against the
unmapped boxes. ``tcnn.detect.RETINA_TO_HOG`` holds the fit on all of them.

Run: ``python benchmarks/studies/box_mapping.py`` (writes benchmarks/results/box_mapping.json).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import machine, write_result
from tcnn.detect import BoxMap
from tcnn.train.data.datasets import load_dataset
from tcnn.types import Box

#: ytf68-train is not measured yet (its detections were not run here for want of CPU time).
SETS = ("mtfl-train",)


def pairs(data: str) -> list[tuple[Box, Box]]:
    """``(retinaface box, HOG box)`` of each face of ``data`` that both detectors found."""
    retina = load_dataset(data, face_detector="retinaface")
    hog = load_dataset(data, face_detector="dlib")
    return [(r.box, h.box) for r, h in zip(retina, hog) if r.box and h.box]


def fit(found: list[tuple[Box, Box]]) -> BoxMap:
    """Median shift (RetinaFace widths) and size ratios from ``(retinaface, hog)`` boxes."""
    w = np.array([r.width for r, _ in found])
    dc = np.array([np.subtract(h.center, r.center) for r, h in found]) / w[:, None]
    grow = np.array([(h.width / r.width, h.height / r.height) for r, h in found])
    shift, g = np.median(dc, 0), np.median(grow, 0)
    return BoxMap(
        (round(float(shift[0]), 4), round(float(shift[1]), 4)),
        (round(float(g[0]), 4), round(float(g[1]), 4)),
    )


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    iy = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = ix * iy
    return inter / (a.width * a.height + b.width * b.height - inter)


def check(mapping: BoxMap, held: list[tuple[Box, Box]]) -> dict[str, float]:
    """Median IoU and centre error (HOG widths) of raw and mapped boxes against HOG's."""
    out = {}
    for name, fn in (("raw", lambda b: b), ("mapped", mapping)):
        ious = [iou(fn(r), h) for r, h in held]
        err = [np.hypot(*np.subtract(fn(r).center, h.center)) / h.width for r, h in held]
        out[f"{name}_median_iou"] = round(float(np.median(ious)), 4)
        out[f"{name}_median_centre_error"] = round(float(np.median(err)), 4)
    return out


def main() -> None:
    rows, everything = [], []
    for data in SETS:
        found = pairs(data)
        everything += found
        mapping = fit(found[::2])
        row = {"data": data, "faces_both_found": len(found), "fit_on": len(found[::2]),
               "shift": mapping.shift, "grow": mapping.grow, "held_out": len(found[1::2]),
               **check(mapping, found[1::2])}  # fmt: skip
        rows.append(row)
        print(row)
    final = fit(everything)
    print("both sets", final)
    write_result(
        "box_mapping",
        {"machine": machine(), "rows": rows, "both": {"shift": final.shift, "grow": final.grow,
                                                      "faces": len(everything)}},
    )  # fmt: skip


if __name__ == "__main__":
    main()
