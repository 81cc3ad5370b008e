"""aflw68: 68 points on MTFL's AFLW test faces with MERL-RAV's human labels, tcnn against dlib.

Scored on aflw68's held-out part only (``aflw68-test``: the AFLW image ids that the fixed split
``tcnn.train.data.datasets.AFLW68_SPLIT`` holds out), since ``tcnn68h`` learnt from the other part.

The README protocol of ``../shared/data/aflw68``: the mean distance over the scored points
(visible and externally occluded; self-occluded points have no location and are skipped)
divided by the labels' eye-centre distance (mean of points 36-41 to mean of 42-47). Every
method is scored on the same faces with the same boxes, under two box protocols:

- ``hog``: dlib's HOG detector (upsample 2), the faces it finds;
- ``retinaface``: RetinaFace (threshold 0.8, upsample 2: the 80x80 images at 320), every face it
  finds (the count of the faces it misses is recorded).

Each method gets the protocol's boxes mapped onto the boxes it expects (``tcnn.detect.box_map``:
a tcnn model the boxes its card names, dlib's predictor HOG's), so dlib runs on HOG boxes in
``hog`` and on RetinaFace boxes mapped by ``RETINA_TO_HOG`` in ``retinaface``. dlib's points are
0-based pixel indices, + 0.5 into continuous pixel coordinates (``common.DlibShapePredictor``).

Reported per method: mean, median, failures over 8% and 10%, AUC at 10%, the mean error of
each part (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67), of each pose group
(MERL-RAV's frontal, lefthalf, righthalf), the mean point error over the visible and over
the externally occluded points, and the share of faces on which it beats dlib.

Methods: ``--models`` (shipped 68-point names or ``.onnx`` paths, ``+refine`` appended for
``LandmarkDetector(refine=True)``, models joined by commas for the mean of their answers;
default the shipped ones, plain and refined),
dlib's 68-point predictor, and ``--teacher MODULE:FUNCTION`` for any other method: the function
takes no argument and returns a :class:`Method` (see ``dlib_method`` for an example).

Run: ``python benchmarks/bench/bench_aflw68.py [--models vanilla68 runs/x/model.onnx]`` (writes
benchmarks/results/aflw68.json, ced_aflw68.png, ced_aflw68_retina.png); ``--limit N`` and
``--out NAME`` for a quick run that leaves the committed results alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import (
    REFINE,
    RESULTS,
    DlibShapePredictor,
    landmark_detector,
    load_images,
    machine,
    pct,
    with_refined,
    write_result,
)
from tcnn.detect import box_map
from tcnn.metrics import nme, normalising_distance, point_errors, region_errors, summarise
from tcnn.registry import list_models
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.data.datasets import DATASETS, load_dataset
from tcnn.train.data.formats import OCCLUDED, VISIBLE
from tcnn.train.evaluate import normaliser_points, plot_ced
from tcnn.types import Box

#: The held-out part of aflw68 (``tcnn.train.data.datasets.AFLW68_SPLIT``): models that learnt from
#: aflw68-train are scored only here, and every method on the same faces.
DATA = "aflw68-test"
DLIB = "dlib 68"
PROTOCOLS = {"hog": "dlib", "retinaface": "retinaface"}


@dataclass
class Method:
    """A 68-point method under test.

    Attributes:
        convention: the detector whose boxes it expects (``"dlib"`` or ``"retinaface"``).
        predict: ``(images, boxes) -> [N, 68, 2]`` continuous pixel coordinates, the boxes
            already in its convention.
        file_kb: its model file's size, when it has one.
    """

    name: str
    convention: str
    predict: Callable[[list[np.ndarray], list[Box]], np.ndarray]
    file_kb: int | None = None


def tcnn_method(model: str) -> Method:
    """A tcnn model by shipped name or ``.onnx`` path (``+refine``: refined), 256 faces a batch."""
    lm, label = landmark_detector(model, points=68)
    if lm.model.points != 68:
        raise SystemExit(f"{model}: has {lm.model.points} points, aflw68 needs 68")

    def predict(images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        pairs = list(zip(images, boxes))
        return np.concatenate(
            [lm.landmarks_batch(pairs[i : i + 256]) for i in range(0, len(pairs), 256)]
        )

    name = label if Path(model.removesuffix(REFINE)).suffix != ".onnx" else f"{label} ({model})"
    size = round(lm.model.path.stat().st_size / 1024)
    return Method(name, lm.model.card.detector, predict, size)


def ensemble_method(spec: str) -> Method:
    """Models separated by commas (``tcnn68h,runs/x/model.onnx``): the mean of their answers,
    each model on the boxes its card names (a measurement of averaging, not a shipped model)."""
    members = [tcnn_method(m) for m in spec.split(",")]

    def predict(images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        return np.mean([m.predict(images, boxes) for m in members], axis=0)

    conventions = {m.convention for m in members}
    if len(conventions) != 1:
        raise SystemExit(f"{spec}: the models expect different boxes ({', '.join(conventions)})")
    name = "mean of " + " + ".join(m.name for m in members)
    return Method(name, conventions.pop(), predict, sum(m.file_kb or 0 for m in members))


def dlib_method() -> Method:
    """dlib's 68-point shape predictor (face-recognition-models), one face at a time."""
    dl = DlibShapePredictor()

    def predict(images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        return np.stack([dl(img, b) for img, b in tqdm(list(zip(images, boxes)), DLIB)])

    return Method(DLIB, "dlib", predict, round(dl.path.stat().st_size / 1024))


def teacher_method(spec: str) -> Method:
    """``MODULE:FUNCTION``: import ``MODULE`` (benchmarks/ is on the path) and call FUNCTION()."""
    module, _, function = spec.partition(":")
    if not function:
        raise SystemExit(f"--teacher {spec!r}: expected MODULE:FUNCTION")
    method = getattr(importlib.import_module(module), function)()
    # duck-typed: run as a script, this module is __main__, not the teachers' bench_aflw68
    if not all(hasattr(method, a) for a in ("name", "convention", "predict", "file_kb")):
        raise SystemExit(f"--teacher {spec!r}: {function}() must return a bench_aflw68.Method")
    return Method(method.name, method.convention, method.predict, method.file_kb)


def score(
    pred: np.ndarray, gt: np.ndarray, flags: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-face errors and the row of one method on one protocol's faces.

    Args:
        pred, gt: ``[N, 68, 2]`` continuous pixels (``gt`` ``NaN`` where self-occluded).
        flags: ``[N, 68]`` occlusion flags; groups: ``[N]`` pose groups.
    """
    norm = normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")
    errors = nme(pred, gt, norm)
    points = point_errors(pred, gt, norm)
    row: dict[str, Any] = {"faces": len(errors), **summarise(errors)}
    row["by_region"] = {
        k: float(np.nanmean(v))
        for k, v in region_errors(pred, gt, norm, SIXTY_EIGHT.regions).items()
    }
    row["by_group"] = {
        g: {
            "faces": int((groups == g).sum()),
            "mean": float(errors[groups == g].mean()),
            "median": float(np.median(errors[groups == g])),
        }
        for g in ("frontal", "lefthalf", "righthalf")
        if (groups == g).any()
    }
    for key, flag in (("points_visible", VISIBLE), ("points_occluded", OCCLUDED)):
        mask = flags == flag
        row[key] = float(points[mask].mean())
        row[f"{key}_count"] = int(mask.sum())
    return errors, row


def protocol(name: str, methods: list[Method], limit: int) -> tuple[dict[str, Any], dict]:
    """One box protocol: its rows (every method on the same faces) and the CED curves."""
    detector = PROTOCOLS[name]
    samples = load_dataset(DATA, face_detector=detector, limit=limit)
    found = [s for s in samples if s.box is not None]
    boxes = [s.box for s in found if s.box is not None]
    images = load_images(found)
    gt = np.stack([s.landmarks for s in found])
    flags = np.stack([s.flags for s in found if s.flags is not None])
    groups = np.array([s.group for s in found])
    print(f"protocol {name}: {len(found)} of {len(samples)} faces found by {detector}")
    rows, curves = [], {}
    for m in methods:
        mapping = box_map(detector, m.convention)
        pred = m.predict(images, [mapping(b) for b in boxes] if mapping else boxes)
        errors, row = score(pred, gt, flags, groups)
        rows.append(
            {"method": m.name, "boxes": detector if mapping is None else f"{detector} mapped "
             f"to {m.convention}", **row, "file_kb": m.file_kb}
        )  # fmt: skip
        curves[m.name] = errors
        print(f"  {m.name}: mean {pct(row['mean'])}, median {pct(row['median'])}")
    for row in rows:
        if row["method"] != DLIB:
            row["beats_dlib"] = float(np.mean(curves[row["method"]] < curves[DLIB]))
    upsample = DATASETS[DATA].upsample
    out = {"detector": detector, "upsample": upsample, "faces": len(found),
           "total": len(samples), "missed": len(samples) - len(found), "rows": rows}  # fmt: skip
    return out, curves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="tcnn 68-point models: names or .onnx paths")
    ap.add_argument("--teacher", nargs="*", default=[], help="MODULE:FUNCTION returning a Method")
    ap.add_argument("--limit", type=int, default=0, help="only the first N faces (0: all)")
    ap.add_argument("--out", default="aflw68", help="result name under benchmarks/results")
    args = ap.parse_args()
    if not args.out or any(c in args.out for c in "/\\."):
        ap.error(f"--out {args.out!r}: give a plain name (no folder, no extension)")

    names = args.models or with_refined([m.name for m in list_models() if m.points == 68])
    methods = [ensemble_method(n) if "," in n else tcnn_method(n) for n in names]
    methods.append(dlib_method())
    methods += [teacher_method(t) for t in args.teacher]
    names_seen = [m.name for m in methods]
    if len(set(names_seen)) != len(names_seen):
        raise SystemExit(f"two methods share a name: {', '.join(names_seen)}")
    spec = DATASETS[DATA]
    result: dict[str, Any] = {
        "benchmark": f"aflw68 ({spec.description}), 68 points",
        "scoring": f"{spec.scoring}; normalised by the labels' eye-centre distance "
        f"({normaliser_points(SIXTY_EIGHT, 'inter-pupil')})",
        "coordinates": "continuous pixel coordinates (labels as given; dlib's 0-based "
        "predictions + 0.5)",
        "machine": machine(),
        "limit": args.limit,
    }
    titles = {"hog": "dlib HOG boxes", "retinaface": "RetinaFace boxes"}
    for name in PROTOCOLS:
        result[name], curves = protocol(name, methods, args.limit)
        png = f"ced_{args.out}.png" if name == "hog" else f"ced_{args.out}_retina.png"
        plot_ced(
            curves,
            RESULTS / png,
            title=f"aflw68 held-out ({titles[name]}, {result[name]['faces']} faces; AUC to 20%)",
            xlabel="mean error / eye-centre distance (%)",
            limit=0.20,
        )
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
