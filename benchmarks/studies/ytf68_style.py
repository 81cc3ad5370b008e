"""How much of a 68-point model's ytf68 error is ytf68's labelling style? Fitted on ytf68 train.

ytf68's labels follow their own style (where the jaw, brow and nose points sit), not 300-W's.
A model trained to 300-W-style points (``tcnn68``: mostly dlib's pseudo-labels and MTFL's
human points) pays for that style on ytf68 test. To measure it, each method's mean residual
per point (label - prediction, in units of the face box's width) is fitted on **ytf68 train**
(dlib HOG boxes, the faces HOG finds) and added to its predictions on ytf68 test. The
style-mapped error is then the method's precision with ytf68's style taken out; the plain
error is what the ytf68 table reports. The fit uses training faces only; ``vanilla68`` was
trained on those same faces, so its fit is the least informative.

Run: ``python benchmarks/studies/ytf68_style.py`` (writes benchmarks/results/ytf68_style.json).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import (
    DlibShapePredictor,
    Faces,
    found_faces,
    machine,
    predict_all,
    write_result,
)
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.registry import list_models
from tcnn.schemes import SIXTY_EIGHT


def widths(faces: Faces) -> np.ndarray:
    """``[N, 1, 1]`` face box widths, the unit of the style offset."""
    return np.array([b.width for b in faces.boxes], np.float64)[:, None, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="68-point models (default: the shipped ones)")
    args = ap.parse_args()
    train, test = found_faces("ytf68-train"), found_faces("ytf68-test")
    norm = normalising_distance(test.gt, SIXTY_EIGHT, "inter-ocular")
    methods: dict[str, Callable[[Faces], np.ndarray]] = {}
    for name in args.models or [m.name for m in list_models() if m.points == 68]:
        lm = LandmarkDetector(name, points=68)
        methods[lm.model.card.name] = lambda f, lm=lm: predict_all(lm, f.images, f.boxes)
    dl = DlibShapePredictor()
    methods["dlib 68"] = lambda f: np.stack([dl(i, b) for i, b in zip(f.images, f.boxes)])
    rows: list[dict[str, Any]] = []
    for name, predict in methods.items():
        style = ((train.gt - predict(train)) / widths(train)).mean(axis=0)  # [68, 2]
        pred = predict(test)
        plain = summarise(nme(pred, test.gt, norm))
        mapped = summarise(nme(pred + style * widths(test), test.gt, norm))
        size = float(np.linalg.norm(style, axis=1).mean())
        rows.append({"method": name, "plain": plain, "style_mapped": mapped, "style_size": size})
        print(f"{name}: {100 * plain['mean']:.2f}% plain, {100 * mapped['mean']:.2f}% mapped")
    result = {
        "benchmark": "ytf68 test, 68 points, inter-ocular normalisation (36, 45); dlib HOG boxes",
        "fit": f"per-point mean residual on ytf68 train ({len(train.gt)} faces HOG finds), in "
        "face-box widths",
        "faces": len(test.gt),
        "rows": rows,
        "machine": machine(),
    }
    print(write_result("ytf68_style", result))


def ytf68_style_section(result: dict[str, Any]) -> str:
    """README table: each method plain and with ytf68's style fitted on ytf68 train."""
    from benchmarks.tools.render_docs import measured

    lines = [
        "| method | ytf68 test, plain | style-mapped | fail > 10%, plain | style-mapped "
        "| style offset (box widths) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        p, m = r["plain"], r["style_mapped"]
        lines.append(
            f"| {r['method']} | {100 * p['mean']:.2f}% | {100 * m['mean']:.2f}% "
            f"| {100 * p['failure_10']:.1f}% | {100 * m['failure_10']:.1f}% "
            f"| {r['style_size']:.3f} |"
        )
    lines += [
        "",
        f"{result['benchmark']}, {result['faces']} faces; style: the {result['fit']}, added "
        "to each method's test predictions (training faces only). " + measured(result["machine"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
