"""Can the default's two members see two different crops, for refine's gain at no extra cost?

``refine`` places each face twice and averages, and its gain is the two crops' spread averaged
out (``refine_variants``), at twice the cost. The default is already two networks
(``tcnn68d`` and ``tcnn68v``, four passes with their mirrors); this study gives the second
member another crop than the first, so that the pair averages two crops for the cost of one:

- ``staggered``: the first member on the detector's box, the second on the box the first
  member's answer implies (the card's ``box_from_landmarks``, as ``refine`` places its second
  crop); one member after the other, the same four passes;
- ``v on a tighter box`` / ``v on a looser box``: the second member on the detector's box
  shrunk or grown by 5% about its centre.

The members are the default's float members before its shape calibration (``runs/``, see
docs/training.md for the recipe). Each method is a ``bench_aflw68`` teacher, scored beside
the plain pair and dlib on aflw68's held-out part.

Run: ``python -m benchmarks crop_views`` (``bench_aflw68 --out exp_crop_views`` with the pair and
these teachers; writes benchmarks/results/exp_crop_views.json; about 5 minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_aflw68 import Method, tcnn_method
from tcnn.card import read_card
from tcnn.predictor import implied_box
from tcnn.registry import resolve
from tcnn.types import Box

#: The default's float members (docs/training.md: steps 1 and 2 of its recipe).
D = "runs/tcnn68d-head.onnx"
V = "runs/tcnn68v-cal.onnx"


def scaled(box: Box, scale: float) -> Box:
    """``box`` grown (``scale`` > 1) or shrunk about its centre."""
    cx, cy = box.center
    w, h = box.width * scale / 2, box.height * scale / 2
    return Box(cx - w, cy - h, cx + w, cy + h)


def _staggered(first: str, second: str) -> Method:
    a, b = tcnn_method(first), tcnn_method(second)
    relation = read_card(resolve(first)).box_from_landmarks
    if relation is None:
        raise SystemExit(f"{first}: its card has no box_from_landmarks")

    def predict(images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        placed = a.predict(images, boxes)
        moved = [implied_box(p, box, relation) for p, box in zip(placed, boxes)]
        return (placed + b.predict(images, moved)) / 2

    name = f"staggered: {Path(first).stem}, then {Path(second).stem} on its box"
    return Method(name, a.convention, predict)


def _second_scaled(scale: float) -> Method:
    d, v = tcnn_method(D), tcnn_method(V)

    def predict(images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        return (d.predict(images, boxes) + v.predict(images, [scaled(b, scale) for b in boxes])) / 2

    word = "tighter" if scale < 1 else "looser"
    name = f"{Path(D).stem} + {Path(V).stem} on a {word} box (x{scale:g})"
    return Method(name, d.convention, predict)


def staggered_dv() -> Method:
    return _staggered(D, V)


def staggered_vd() -> Method:
    return _staggered(V, D)


def v_tighter() -> Method:
    return _second_scaled(0.95)


def v_looser() -> Method:
    return _second_scaled(1.05)


TEACHERS = ("staggered_dv", "staggered_vd", "v_tighter", "v_looser")


def main() -> None:
    """``bench_aflw68`` on the plain pair and :data:`TEACHERS` (extra arguments passed on)."""
    from benchmarks.bench import bench_aflw68

    teachers = [f"benchmarks.studies.crop_views:{t}" for t in TEACHERS]
    args = ["--out", "exp_crop_views", "--models", f"{D},{V}", "--teacher", *teachers]
    sys.argv = [sys.argv[0], *args, *sys.argv[1:]]
    bench_aflw68.main()


if __name__ == "__main__":
    main()
