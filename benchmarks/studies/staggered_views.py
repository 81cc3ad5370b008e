"""Where should a mirror average's two views look? The default's staggered views, measured.

A mirror-averaging model sees each face twice on one crop: as it is and mirrored. ``refine``
places the face twice (the detector's box, then the box the first answer implies) at twice the
cost. The staggered form (``tcnn stagger``) spends the mirror average's two passes on two
places: the plain view on the detector's box, the mirrored view on the box that answer implies.
Each row is one way of using the default's three networks, with its cost in network passes a
face (each of the three networks on one crop is one pass each, so three a view):

- ``both views, one place``: the mirror average on the detector's box (``tcnn68t3s-int8``,
  the default before it was staggered); 2 views;
- ``plain view, one place``: the crop as it is alone; 1 view;
- ``staggered (the default)``: plain on the detector's box, mirrored on the implied box; 2;
- ``plain view at both places``: the same two places, both plain (refine without the mirror:
  how much the mirror adds to the second place); 2;
- ``both views at both places``: ``refine=True``; 4.

Scored on aflw68's held-out part (human labels) with both box protocols, and, as checks the
choice did not come from that test set alone, on ytf68's test set (its own labelling style:
compare rows, not with aflw68) and on aflw68-train (the faces the default's shape calibration
was fitted on with HOG boxes, which flatters the row it was fitted for, ``both views, one
place``, with HOG boxes there).

Run: ``python benchmarks/studies/staggered_views.py`` (writes
benchmarks/results/staggered_views.json; about a minute once the face boxes are cached).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import load_images, machine, write_result
from tcnn.codec import from_crop
from tcnn.detect import box_map
from tcnn.metrics import nme, normalising_distance
from tcnn.predictor import LandmarkDetector, implied_box
from tcnn.registry import DEFAULTS
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.data.datasets import load_dataset
from tcnn.types import Box

#: (dataset, what its figures are) in the order of the table's columns.
SETS = (
    ("aflw68-test", "aflw68 held-out"),
    ("ytf68-test", "ytf68 test"),
    ("aflw68-train", "aflw68-train (calibration faces)"),
)
DETECTORS = ("dlib", "retinaface")

#: Row -> (the views at the detector's box, the views at the implied box, passes a face).
PLANS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "both views, one place": (("both",), (), 2),
    "plain view, one place": (("plain",), (), 1),
    "staggered (the default)": (("plain",), ("mirrored",), 2),
    "plain view at both places": (("plain",), ("plain",), 2),
    "both views at both places (refine)": (("both",), ("both",), 4),
}


def placer(model: str) -> Callable[[list[np.ndarray], list[Box], str], np.ndarray]:
    """``(images, boxes, view) -> [N, 68, 2]`` image pixels: one view of ``model`` placed on
    ``boxes`` (a staggered model's :meth:`Model.predict` views)."""
    lm = LandmarkDetector(model, face_detector="dlib")
    m = lm.model
    if not m.card.staggered_mirror:
        raise SystemExit(f"{model}: not a staggered model")

    def place(images: list[np.ndarray], boxes: list[Box], view: str) -> np.ndarray:
        regions = [m.card.crop.region(b, img.shape) for img, b in zip(images, boxes)]
        out = []
        for i in range(0, len(images), 256):
            crops = lm._crops(list(zip(images[i : i + 256], regions[i : i + 256])))
            out.append(m.predict(crops, view=view))
        return from_crop(np.concatenate(out), regions, m.card.pixel_offset)

    return place


def plan_answer(
    place: Callable[[list[np.ndarray], list[Box], str], np.ndarray],
    images: list[np.ndarray],
    boxes: list[Box],
    relation: tuple[float, float, float],
    plan: tuple[tuple[str, ...], tuple[str, ...], int],
) -> np.ndarray:
    """The mean answer of ``plan``'s views: the first place's, then (from their mean) the
    implied box's."""
    first, second, _ = plan
    answers = [place(images, boxes, v) for v in first]
    if second:
        placed = np.mean(answers, axis=0)
        moved = [implied_box(p, b, relation) for p, b in zip(placed, boxes)]
        answers += [place(images, moved, v) for v in second]
    return np.asarray(np.mean(answers, axis=0))


def main() -> None:
    model = DEFAULTS[68]
    place = placer(model)
    card = LandmarkDetector(model, face_detector="dlib").model.card
    relation = card.box_from_landmarks
    assert relation is not None  # a staggered card has one
    rows: dict[str, dict[str, Any]] = {n: {"passes": p[2] * 3} for n, p in PLANS.items()}
    faces: dict[str, int] = {}
    for data, _ in SETS:
        for detector in DETECTORS:
            samples = [s for s in load_dataset(data, face_detector=detector) if s.box]
            images = load_images(samples)
            gt = np.stack([s.landmarks for s in samples])
            mapping = box_map(detector, card.detector)
            boxes = [mapping(s.box) if mapping else s.box for s in samples if s.box]
            norm = normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")
            key = f"{data} {detector}"
            faces[key] = len(samples)
            for name, plan in PLANS.items():
                pred = plan_answer(place, images, boxes, relation, plan)
                rows[name][key] = float(np.mean(nme(pred, gt, norm)))
                print(f"{key}: {name}: {100 * rows[name][key]:.3f}%")
    result = {
        "what": "the default's three networks, their two views placed five ways; mean error "
        "over the labels' eye-centre distance (inter-pupil normalisation, all sets)",
        "model": model,
        "faces": faces,
        "rows": rows,
        "machine": machine(),
    }
    print(write_result("staggered_views", result))


def staggered_views_section(result: dict[str, Any]) -> str:
    """docs/training.md's table: each plan's errors by set and box protocol."""
    from benchmarks.tools.render_docs import measured

    keys = [f"{d} {det}" for d, _ in SETS for det in DETECTORS]
    heads = [
        f"{label}, {'HOG' if det == 'dlib' else 'RetinaFace'}"
        for _, label in SETS
        for det in DETECTORS
    ]
    lines = [
        "| views (`"
        + result["model"]
        + "`'s networks) | passes a face | "
        + " | ".join(heads)
        + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for name, row in result["rows"].items():
        cells = [f"{100 * row[k]:.2f}%" for k in keys]
        lines.append(f"| {name} | {row['passes']} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{k}: {n}" for k, n in result["faces"].items())
    lines += [
        "",
        f"Mean error over the labels' eye-centre distance; faces found: {counts}. "
        "`python benchmarks/studies/staggered_views.py`. " + measured(result["machine"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
