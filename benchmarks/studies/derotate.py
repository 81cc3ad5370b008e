"""Is de-rotating the face by RetinaFace's own eye points worth it? Measured, not shipped.

On MTFL AFLW test with RetinaFace boxes (protocol (a) of ``bench_protocols.py``): each image is
turned about the face box's centre so that RetinaFace's two eye points lie level, the model
places its points on the upright face (same box), and the points are turned back. Mean error
with and without, on all faces and on the faces rolled by more than 15 degrees.

Run: ``python benchmarks/studies/derotate.py [--model vanilla5]`` (writes
benchmarks/results/derotate.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import machine, write_result
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.retina import RetinaFace
from tcnn.schemes import FIVE
from tcnn.train.data.datasets import load_dataset, match_box


def turned(rgb: np.ndarray, centre: tuple[float, float], angle: float) -> np.ndarray:
    """``rgb`` rotated by ``angle`` radians about ``centre`` (continuous pixels), same size.

    Output point ``p`` shows input point ``R(angle) (p - c) + c``.
    """
    cos, sin = np.cos(angle), np.sin(angle)
    cx, cy = centre
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f).
    coeffs = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    img = Image.fromarray(rgb).transform(
        (rgb.shape[1], rgb.shape[0]), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
    )
    return np.asarray(img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vanilla5")
    ap.add_argument("--limit", type=int, default=0, help="first N test faces only (0: all)")
    args = ap.parse_args()
    lm = LandmarkDetector(args.model, face_detector="retinaface")
    det = RetinaFace()
    plain, upright, gts, rolls = [], [], [], []
    samples = load_dataset("mtfl-aflw", face_detector="retinaface")
    for s in tqdm(samples[: args.limit or None], unit="face"):
        if s.box is None:
            continue
        rgb = load_image(s.path)
        found = det.detect(rgb)
        box, _ = match_box(s.landmarks, [(d.box, d.score) for d in found])
        d = next(d for d in found if d.box is box)
        (lx, ly), (rx, ry) = d.points[0], d.points[1]
        angle = float(np.arctan2(ry - ly, rx - lx))
        mbox = lm.model_box(d.box)
        c = mbox.center
        plain.append(lm.landmarks(rgb, [mbox])[0])
        q = lm.landmarks(turned(rgb, c, angle), [mbox])[0]
        cos, sin = np.cos(angle), np.sin(angle)
        rel = q - np.array(c)
        back = np.stack([cos * rel[:, 0] - sin * rel[:, 1], sin * rel[:, 0] + cos * rel[:, 1]], 1)
        upright.append(back + np.array(c))
        gts.append(s.landmarks)
        rolls.append(abs(np.degrees(angle)))
    gt, roll = np.stack(gts), np.array(rolls)
    norm = normalising_distance(gt, FIVE)
    rows = {}
    for name, pred in (("as detected", np.stack(plain)), ("de-rotated", np.stack(upright))):
        errors = nme(pred, gt, norm)
        rows[name] = {
            "all": summarise(errors),
            "rolled_over_15deg": summarise(errors[roll > 15]),
        }
        print(name, rows[name])
    write_result(
        "derotate",
        {
            "model": lm.model.card.name,
            "faces": len(gt),
            "rolled_over_15deg": int((roll > 15).sum()),
            "rows": rows,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
