"""5-point benchmark on MTFL's AFLW test set with dlib HOG boxes (METHOD.md protocol).

Side by side on the same faces: every shipped 5-point model, optionally the seed's converted
Caffe model (``--seed-model seed.onnx``), and dlib's 68-point model with 5 points derived.
Speed: the landmark stage (cropping included) at batch 1 and 256 next to dlib's shape
predictor in the same run, and end-to-end photos/s (face detection + landmarks).

Run: ``python benchmarks/bench/bench_5pt.py`` (writes benchmarks/results/5pt.json and ced_5pt.png).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import (
    DATA,
    RESULTS,
    DlibShapePredictor,
    found_faces,
    machine,
    pct,
    predict_all,
    rate,
    speed,
    write_result,
)
from tcnn.detect import make_detector
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.registry import list_models
from tcnn.schemes import FIVE, to_five
from tcnn.train.evaluate import plot_ced

PHOTOS = DATA / "photos"


def end_to_end(fn, photos: list[np.ndarray], reps: int = 5) -> float:
    def run() -> int:
        for _ in range(reps):
            for p in photos:
                fn(p)
        return reps * len(photos)

    return rate(run, repeats=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed-model", help="the seed's model converted by tcnn convert-caffe")
    ap.add_argument(
        "--seed-caffe",
        nargs=3,
        metavar=("CAFFEMODEL", "MEAN_PNG", "STD_PNG"),
        help="the seed's released files, converted here (nothing is downloaded)",
    )
    ap.add_argument("--models", nargs="*", help="models to compare (default: shipped 5-point)")
    args = ap.parse_args()

    faces = found_faces("mtfl-aflw")
    images, boxes, gt = faces.images, faces.boxes, faces.gt
    norm = normalising_distance(gt, FIVE)
    names = args.models or [m.name for m in list_models() if m.points == 5]
    if args.seed_model:
        names.append(args.seed_model)
    if args.seed_caffe:
        from tcnn.train.caffe import convert_caffe

        out = Path(tempfile.mkdtemp()) / "seed.onnx"
        names.append(str(convert_caffe(*args.seed_caffe, out)))

    rows, curves = [], {}
    for name in names:
        lm = LandmarkDetector(name)
        pred = predict_all(lm, images, boxes)
        errors = nme(pred, gt, norm)
        label = lm.model.card.name
        curves[label] = errors
        rows.append(
            {
                "method": label,
                **summarise(errors),
                **speed(lm, images, boxes),
                "file_kb": round(lm.model.path.stat().st_size / 1024),
            }
        )
        print(
            f"{label}: mean {pct(rows[-1]['mean'])}, fail10 {pct(rows[-1]['failure_10'])}, "
            f"{rows[-1]['faces_per_s_batch256']:.0f} faces/s at 256"
        )

    dl = DlibShapePredictor()
    pred = np.stack([to_five(dl(img, b)) for img, b in zip(images, boxes)])
    errors = nme(pred, gt, norm)
    curves["dlib 68 -> 5"] = errors
    pairs = list(zip(images, boxes))[:1000]
    dlib_rate = rate(lambda: sum(1 for img, b in pairs if dl(img, b) is not None))
    rows.append(
        {
            "method": "dlib 68 -> 5",
            **summarise(errors),
            "faces_per_s_batch1": dlib_rate,
            "file_kb": round(dl.path.stat().st_size / 1024),
        }
    )
    print(f"dlib: mean {pct(rows[-1]['mean'])}, {dlib_rate:.0f} faces/s")

    photos = [load_image(p) for p in sorted(PHOTOS.glob("*")) if p.suffix in (".jpg", ".png")]
    det = make_detector("dlib", threshold=0.3)  # as LandmarkDetector
    lm = LandmarkDetector(names[0], face_detector="dlib")  # both pipelines on HOG boxes
    e2e = {
        "photos": len(photos),
        "tcnn_photos_per_s": end_to_end(lambda p: lm.detect(p), photos),
        "dlib_photos_per_s": end_to_end(lambda p: [dl(p, b) for b, _ in det(p)], photos),
    }
    result = {
        "benchmark": "MTFL AFLW test, 5 points, eye-centre normalisation",
        "protocol": f"dlib HOG boxes (upsample 2): {len(gt)} of {faces.total} faces "
        f"found, {faces.total - len(gt)} missed and not scored; "
        "every method compared in continuous pixel coordinates (MTFL 1-based test labels - 0.5, "
        "dlib 0-based predictions + 0.5)",
        "machine": machine(),
        "rows": rows,
        "end_to_end": e2e,
    }
    print(write_result("5pt", result))
    plot_ced(
        curves,
        RESULTS / "ced_5pt.png",
        title="MTFL AFLW test (5 points, dlib HOG boxes)",
        xlabel="mean error / eye-centre distance (%)",
    )


if __name__ == "__main__":
    main()
