"""Teachers against people: each 68-point teacher's error on aflw68's held-out human labels,
before and after its calibration to people, fitted on aflw68's training part only.

A teacher's style is where it puts the points against MERL-RAV's human 300-W-style labels: the
mean per-point offset (human - teacher) in landmark extents
(``tcnn.train.convention.style_offsets``), measured on ``aflw68-train`` faces. Calibrating a
teacher adds that offset back to its answers;
``tcnn68h``'s pseudo-labels were moved by it (``configs/styles/*-human.json``).

Teachers, each on the face box it expects for the same faces:

- dlib: the pseudo-labels' teacher (``tcnn.train.data.teacher.Teacher``: dlib's predictor on
  the image upscaled 2x, direct and mirrored answers averaged, on HOG boxes; RetinaFace's box mapped
  onto HOG's where HOG misses). Its offsets are the committed ``configs/styles/aflw68-train.json``
  (``label_style.py --human``: training faces where it agrees with itself under the mirror).
- tcnn68 (the shipped model, mirror-averaged inside its graph), on the dlib teacher's boxes:
  its offsets are fitted here on every aflw68-train face the teacher found.

Scored on ``aflw68-test`` as ``bench_aflw68`` scores (scored points: visible and externally
occluded; normaliser: the labels' eye-centre distance), on the faces the teacher found.

Run: ``python benchmarks/studies/teacher_calibration.py`` (writes
benchmarks/results/teacher_calibration.json); about a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import ROOT, write_result
from benchmarks.tools.render_docs import measured
from tcnn import LandmarkDetector
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, region_errors
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.convention import extent, style_offsets
from tcnn.train.data.datasets import AFLW68_SPLIT, load_dataset
from tcnn.train.data.teacher import Label, Source, label_source
from tcnn.types import Box

STYLE = ROOT / "configs" / "styles" / "aflw68-train.json"


def teacher_answers(part: str) -> tuple[np.ndarray, np.ndarray, list[Box], list[Path]]:
    """The dlib teacher on ``aflw68-<part>``: human labels ``[N, 68, 2]``, its answers, its
    boxes and the image paths, for the faces it found."""
    samples = load_dataset(f"aflw68-{part}", face_detector="dlib", progress=False)
    source = Source(f"aflw68-{part}", 2, [(s.path, s.landmarks) for s in samples])
    labels: list[Label] = label_source(source)
    keep = [i for i, lab in enumerate(labels) if lab.points is not None and lab.box is not None]
    human = np.stack([samples[i].landmarks for i in keep])
    answers = np.stack([labels[i].points for i in keep])  # type: ignore[misc]
    boxes = [labels[i].box for i in keep]
    return human, answers, boxes, [samples[i].path for i in keep]  # type: ignore[return-value]


def tcnn68_answers(paths: list[Path], boxes: list[Box]) -> np.ndarray:
    """The shipped tcnn68 on the teacher's HOG-convention boxes, ``[N, 68, 2]``."""
    lm = LandmarkDetector(model="tcnn68", face_detector="dlib")
    pairs = [(load_image(p), b) for p, b in zip(paths, boxes)]
    batches = [pairs[i : i + 256] for i in range(0, len(pairs), 256)]
    return np.concatenate([lm.landmarks_batch(b) for b in batches])


def calibrated(answers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Answers moved by the per-point offsets (``[68, 2]`` extents of each face's answers)."""
    return answers + offsets * extent(answers)[:, None, None]


def row(pred: np.ndarray, human: np.ndarray) -> dict[str, Any]:
    norm = normalising_distance(human, SIXTY_EIGHT, "inter-pupil")
    parts = region_errors(pred, human, norm, SIXTY_EIGHT.regions)
    return {
        "mean": float(nme(pred, human, norm).mean()),
        "by_region": {k: float(np.nanmean(v)) for k, v in parts.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    train_h, _, train_b, train_p = teacher_answers("train")
    test_h, test_t, test_b, test_p = teacher_answers("test")
    dlib_offsets = np.asarray(json.loads(STYLE.read_text())["offsets"])
    tcnn_train = tcnn68_answers(train_p, train_b)
    tcnn_offsets = style_offsets(train_h, tcnn_train)
    tcnn_test = tcnn68_answers(test_p, test_b)
    teachers = {
        "dlib (pseudo-label teacher)": (test_t, dlib_offsets, STYLE.name),
        "tcnn68": (tcnn_test, tcnn_offsets, f"fitted on {len(train_h)} aflw68-train faces"),
    }
    result: dict[str, Any] = {
        "benchmark": "68-point teachers against aflw68's held-out human labels, before and "
        "after calibration fitted on aflw68-train",
        "split": AFLW68_SPLIT,
        "faces": len(test_h),
        "train_faces": len(train_h),
        "teachers": {},
    }
    for name, (answers, offsets, fitted) in teachers.items():
        result["teachers"][name] = {
            "offsets": fitted,
            "mean_offset_size": float(np.linalg.norm(offsets, axis=1).mean()),
            "before": row(answers, test_h),
            "after": row(calibrated(answers, offsets), test_h),
        }
        before, after = (result["teachers"][name][k]["mean"] for k in ("before", "after"))
        print(f"{name}: {100 * before:.2f}% -> {100 * after:.2f}% on {len(test_h)} faces")
    print(write_result("teacher_calibration", result))


def teacher_calibration_section(result: dict[str, Any]) -> str:
    """README table: each teacher before and after its calibration, overall and per part."""
    parts = ("jaw", "brows", "nose", "eyes", "mouth")
    lines = [
        "| teacher | calibration | mean | " + " | ".join(parts) + " |",
        "|---|---|---|" + "---|" * len(parts),
    ]
    for name, t in result["teachers"].items():
        for when in ("before", "after"):
            r = t[when]
            cells = " | ".join(f"{100 * r['by_region'][p]:.2f}%" for p in parts)
            label = "none" if when == "before" else f"per-point offsets ({t['offsets']})"
            lines.append(f"| {name} | {label} | {100 * r['mean']:.2f}% | {cells} |")
    lines += [
        "",
        f"aflw68's held-out part ({result['split']}): the {result['faces']} faces the dlib "
        f"teacher found, scored as in the aflw68 table; offsets fitted on aflw68-train "
        f"({result['train_faces']} faces found there). " + measured(result["machine"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
