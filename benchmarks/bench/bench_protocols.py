"""MTFL AFLW test under two face-box protocols, side by side, and end to end on photos.

(a) RetinaFace boxes (``tcnn.retina``, threshold 0.8): every AFLW test face RetinaFace finds
    (2,992 of 2,995). (b) The seed's protocol: dlib HOG boxes (upsample 2), the 2,665 faces HOG
    finds. In each protocol every method is scored on the same faces. A model gets the
    protocol's boxes mapped onto the boxes it was trained on (``LandmarkDetector.model_box``,
    the measured ``tcnn.detect.RETINA_TO_HOG`` mapping). dlib 68 -> 5 uses HOG boxes where HOG
    finds the face and the mapped RetinaFace box where it does not; RetinaFace's own 5 points
    come from its detection of the face (in (b): the faces both detectors find).

End to end: the shared photos, several copies, one after another: tcnn (``LandmarkDetector()``:
RetinaFace + the default model) against dlib (HOG, upsample by size, threshold 0.3, + its
68-point predictor), photos/s and faces found, in the same run.

Run: ``python benchmarks/bench/bench_protocols.py [--models vanilla5 ...] [--seed-model seed.onnx]``
(writes benchmarks/results/protocols.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_5pt import speed
from benchmarks.tools.common import (
    DATA,
    RESULTS,
    DlibShapePredictor,
    landmark_detector,
    load_images,
    machine,
    pct,
    predict_all,
    with_refined,
    write_result,
)
from tcnn.detect import RETINA_TO_HOG, make_detector
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.registry import list_models
from tcnn.retina import RetinaFace
from tcnn.schemes import FIVE, to_five
from tcnn.train.data.datasets import load_dataset, match_box

PHOTOS = DATA / "photos"


def retina_points(paths: list[Path], landmarks: np.ndarray) -> list[np.ndarray | None]:
    """RetinaFace's own 5 points for each face (``None`` where it finds no box holding it)."""
    det = RetinaFace()
    out: list[np.ndarray | None] = []
    for path, lms in tqdm(list(zip(paths, landmarks)), desc="RetinaFace points", unit="face"):
        found = det.detect(load_image(path))
        box, _ = match_box(lms, [(d.box, d.score) for d in found])
        out.append(next((d.points for d in found if d.box is box), None))
    return out


def score(name: str, pred: np.ndarray, gt: np.ndarray) -> dict:
    errors = nme(pred, gt, normalising_distance(gt, FIVE))
    row = {"method": name, **summarise(errors)}
    print(f"  {name}: mean {pct(row['mean'])}, fail10 {pct(row['failure_10'])}")
    return row


def protocol(which: str, models: list[str], dl: DlibShapePredictor, own: list) -> dict:
    """Rows of one protocol (``"a"``: RetinaFace boxes; ``"b"``: HOG boxes).

    Args:
        own: RetinaFace's own points per AFLW test face (:func:`retina_points`).
    """
    retina = load_dataset("mtfl-aflw", face_detector="retinaface")
    hog = load_dataset("mtfl-aflw", face_detector="dlib")
    keep = [i for i in range(len(retina)) if (retina if which == "a" else hog)[i].box]
    boxes = [(retina if which == "a" else hog)[i].box for i in keep]
    detector = "retinaface" if which == "a" else "dlib"
    samples = [retina[i] for i in keep]
    images, gt = load_images(samples), np.stack([s.landmarks for s in samples])
    print(f"protocol ({which}): {len(keep)} faces")
    rows = []
    for name in models:
        lm, label = landmark_detector(name, face_detector=detector)
        pred = predict_all(lm, images, boxes, detector)
        rows.append(score(label, pred, gt))
        rows[-1]["model_detector"] = lm.model.card.detector
        if which == "a" and name == models[0]:
            rows[-1].update(speed(lm, images, [lm.model_box(b) for b in boxes]))
    dlib_boxes = [hog[i].box or RETINA_TO_HOG(retina[i].box) for i in keep]  # type: ignore[arg-type]
    pred = np.stack([to_five(dl(img, b)) for img, b in zip(images, dlib_boxes)])
    rows.append(score("dlib 68 -> 5", pred, gt))
    mapped = sum(hog[i].box is None for i in keep)
    rows[-1]["retina_boxes_mapped"] = mapped
    both = [j for j, i in enumerate(keep) if own[i] is not None]
    pts = np.stack([own[keep[j]] for j in both])  # type: ignore[misc]
    rows.append(score("RetinaFace 5 points", pts, gt[both]))
    rows[-1]["faces"] = len(both)
    total = len(retina)
    return {"faces": len(keep), "total": total, "detector": detector, "rows": rows}


def end_to_end(copies: int, dl: DlibShapePredictor) -> dict:
    """Photos/s and faces found: tcnn's default pipeline against dlib's, same photos.

    The two pipelines alternate photo by photo, so that both see the same machine load.
    """
    photos = [p for p in sorted(PHOTOS.glob("*")) if p.suffix in (".jpg", ".png")] * copies
    lm = LandmarkDetector()
    hog = make_detector("dlib", threshold=0.3)
    lm.detect(photos[0])  # build the sessions first

    def dlib_run(path: Path) -> int:
        rgb = load_image(path)
        return len([dl(rgb, b) for b, _ in hog(rgb)])

    seconds = {"tcnn": 0.0, "dlib": 0.0}
    faces = {"tcnn": 0, "dlib": 0}
    for path in photos:
        for name, fn in (("tcnn", lambda p: len(lm.detect(p))), ("dlib", dlib_run)):
            t0 = time.perf_counter()
            faces[name] += fn(path)
            seconds[name] += time.perf_counter() - t0
    out: dict = {"photos": len(photos), "distinct_photos": len(photos) // copies}
    for name in seconds:
        out[f"{name}_photos_per_s"] = len(photos) / seconds[name]
        out[f"{name}_faces"] = faces[name]
    out["loadavg_1min"] = os.getloadavg()[0]
    out["tcnn_model"] = lm.model.card.name
    print(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="5-point models (default: the shipped ones)")
    ap.add_argument("--seed-model", help="the seed's model converted by tcnn convert-caffe")
    ap.add_argument("--copies", type=int, default=5, help="copies of the photo folder")
    ap.add_argument("--end-to-end-only", action="store_true", help="re-measure only the photo run")
    args = ap.parse_args()
    if args.end_to_end_only:
        path = RESULTS / "protocols.json"
        result = json.loads(path.read_text())
        result["end_to_end"] = end_to_end(args.copies, DlibShapePredictor())
        result["machine"] = machine()
        print(write_result("protocols", result))
        return
    models = args.models or with_refined([m.name for m in list_models() if m.points == 5])
    if args.seed_model:
        models.append(args.seed_model)
    dl = DlibShapePredictor()
    faces = load_dataset("mtfl-aflw", face_detector="retinaface")
    own = retina_points([s.path for s in faces], np.stack([s.landmarks for s in faces]))
    result = {
        "benchmark": "MTFL AFLW test, 5 points, eye-centre normalisation",
        "coordinates": "continuous pixel coordinates (MTFL 1-based test labels - 0.5, dlib "
        "0-based predictions + 0.5, RetinaFace's points as decoded)",
        "machine": machine(),
        "a": protocol("a", models, dl, own),
        "b": protocol("b", models, dl, own),
        "end_to_end": end_to_end(args.copies, dl),
    }
    print(write_result("protocols", result))


if __name__ == "__main__":
    main()
