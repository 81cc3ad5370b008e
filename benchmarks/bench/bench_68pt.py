"""68-point benchmark on the ytf68 test set with dlib HOG boxes, next to dlib's 68-point model.

Mean inter-ocular error (points 36, 45), median, failures at 8% and 10%, AUC at 10%, the
inter-pupil error, CED curves of all methods on one plot, model file size, and the landmark
stage's faces/s at batch 1 and 256 (cropping included) in the same run as dlib's predictor.

Run: ``python benchmarks/bench/bench_68pt.py`` (writes benchmarks/results/68pt.json, ced_68pt.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import (
    RESULTS,
    DlibShapePredictor,
    found_faces,
    landmark_detector,
    machine,
    pct,
    predict_all,
    rate,
    speed,
    with_refined,
    write_result,
)
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.registry import list_models
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.evaluate import plot_ced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="models to compare (default: shipped 68-point)")
    args = ap.parse_args()

    faces = found_faces("ytf68-test")
    images, boxes, gt = faces.images, faces.boxes, faces.gt
    io = normalising_distance(gt, SIXTY_EIGHT, "inter-ocular")
    ip = normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")
    names = args.models or with_refined([m.name for m in list_models() if m.points == 68])

    rows, curves = [], {}

    def add(label: str, pred: np.ndarray, extra: dict) -> None:
        errors = nme(pred, gt, io)
        curves[label] = errors
        rows.append(
            {
                "method": label,
                **summarise(errors),
                "inter_pupil_mean": float(nme(pred, gt, ip).mean()),
                **extra,
            }
        )
        print(f"{label}: mean {pct(rows[-1]['mean'])}, fail10 {pct(rows[-1]['failure_10'])}")

    for name in names:
        lm, label = landmark_detector(name, points=68)
        pred = predict_all(lm, images, boxes)
        add(
            label,
            pred,
            {
                **speed(lm, images * 2, boxes * 2, n1=750),
                "file_kb": round(lm.model.path.stat().st_size / 1024),
            },
        )

    dl = DlibShapePredictor()
    pred = np.stack([dl(img, b) for img, b in zip(images, boxes)])
    pairs = list(zip(images, boxes))
    add(
        "dlib 68",
        pred,
        {
            "faces_per_s_batch1": rate(lambda: sum(1 for i, b in pairs if dl(i, b) is not None)),
            "file_kb": round(dl.path.stat().st_size / 1024),
        },
    )
    result = {
        "benchmark": "ytf68 test, 68 points, inter-ocular normalisation (36, 45)",
        "protocol": f"dlib HOG boxes (upsample 1): {len(gt)} of {faces.total} faces "
        f"found, {faces.total - len(gt)} missed and not scored; labels and "
        "predictions compared as given (both read as 0-based pixel positions), no offset "
        "removed for any method",
        "machine": machine(),
        "rows": rows,
    }
    print(write_result("68pt", result))
    plot_ced(
        curves,
        RESULTS / "ced_68pt.png",
        title="ytf68 test (68 points, dlib HOG boxes)",
        xlabel="mean error / outer-eye-corner distance (%)",
    )


if __name__ == "__main__":
    main()
