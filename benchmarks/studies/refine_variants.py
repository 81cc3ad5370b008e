"""Which second crop should ``refine`` use? Measured on held-out training faces, not a test set.

The faces: the 5% of its training faces that a model's run held out for validation (its
config's split, ``tcnn.train.data.samples.split``), with the boxes it was trained on. Each variant
places every face once more (or several times more) and averages the answers with the first:

- ``first``: the detector's box alone (the plain model);
- ``second alone``: only the box the first answer implies (the card's ``box_from_landmarks``);
- ``first + second``: their mean: what ``LandmarkDetector(refine=True)`` ships;
- ``first + second upright``: the second crop also turned upright by the first answer's eyes
  (68 points: the means of 36-41 and 42-47; 5 points: points 0 and 1), its answer turned back;
- ``first + 4 shifted``: four more crops, the box moved by 4% of its size left, right, up
  and down (five passes instead of two).

Errors: mean point distance over the labels' eye-centre distance, in percent.

Run: ``python benchmarks/studies/refine_variants.py [--model tcnn68 --config configs/tcnn68.toml]``
(writes benchmarks/results/refine_variants.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.studies.derotate import turned
from benchmarks.tools.common import load_images, machine, write_result
from tcnn.metrics import nme, normalising_distance
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import scheme_for
from tcnn.train.config import load_config
from tcnn.train.data.samples import fill_missing_boxes, split, training_samples
from tcnn.types import Box


def moved(box: Box, dx: float, dy: float) -> Box:
    """``box`` moved by ``(dx, dy)`` times its width and height."""
    x, y = dx * box.width, dy * box.height
    return Box(box.left + x, box.top + y, box.right + x, box.bottom + y)


def eye_angle(points: np.ndarray) -> float:
    """The roll of the line from the image-left eye to the image-right eye, in radians."""
    if len(points) == 68:
        left, right = points[36:42].mean(0), points[42:48].mean(0)
    else:
        left, right = points[0], points[1]
    return float(np.arctan2(right[1] - left[1], right[0] - left[0]))


def upright_pass(lm: LandmarkDetector, rgb: np.ndarray, box: Box, angle: float) -> np.ndarray:
    """The face in ``box`` placed on the image turned by ``-angle`` about the box centre, and
    the answer turned back onto ``rgb``."""
    cx, cy = box.center
    cos, sin = np.cos(angle), np.sin(angle)
    p = lm.landmarks(turned(rgb, (cx, cy), angle), [box])[0]
    dx, dy = p[:, 0] - cx, p[:, 1] - cy
    return np.stack([cos * dx - sin * dy + cx, sin * dx + cos * dy + cy], axis=1).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tcnn68", help="model name or .onnx path")
    ap.add_argument("--config", default="configs/tcnn68.toml", help="the config it was trained by")
    args = ap.parse_args()
    lm = LandmarkDetector(args.model, points=68)
    relation = lm.model.card.box_from_landmarks
    if relation is None:
        raise SystemExit(f"{args.model}: its card has no box_from_landmarks")
    cfg = load_config(args.config)
    _, val = split(fill_missing_boxes(training_samples(cfg), cfg.missed), cfg)
    boxes = [s.box for s in val if s.box is not None]
    images = load_images(val)
    gt = np.stack([s.landmarks for s in val])
    norm = normalising_distance(gt, scheme_for(gt.shape[1]), "inter-pupil")

    def run(bxs: list[Box]) -> np.ndarray:
        return lm.landmarks_batch(list(zip(images, bxs)))

    def error(pred: np.ndarray) -> float:
        return round(100 * float(nme(pred, gt, norm).mean()), 3)

    first = run(boxes)
    implied = [Box.from_landmarks(p, relation) for p in first]
    second = run(implied)
    upright = np.stack(
        [
            upright_pass(lm, img, b, eye_angle(p))
            for img, b, p in tqdm(list(zip(images, implied, first)), "upright", unit="face")
        ]
    )
    steps = ((0.04, 0.0), (-0.04, 0.0), (0.0, 0.04), (0.0, -0.04))
    shifted = [run([moved(b, dx, dy) for b in boxes]) for dx, dy in steps]
    rows: dict[str, Any] = {
        "first": {"passes": 1, "mean": error(first)},
        "second alone": {"passes": 1, "mean": error(second)},
        "first + second": {"passes": 2, "mean": error((first + second) / 2)},
        "first + second upright": {"passes": 2, "mean": error((first + upright) / 2)},
        "first + 4 shifted": {"passes": 5, "mean": error((first + sum(shifted)) / 5)},
    }
    for name, row in rows.items():
        print(f"{name}: {row['mean']:.2f}%")
    result = {
        "benchmark": f"refine variants on {args.model}'s held-out training faces",
        "model": lm.model.card.name,
        "config": args.config,
        "faces": len(val),
        "data": cfg.data,
        "normaliser": "eye-centre distance of the labels (inter-pupil), percent",
        "rows": rows,
        "machine": machine(),
    }
    print(write_result("refine_variants", result))


if __name__ == "__main__":
    main()


def refine_variants_section(result: dict[str, Any]) -> str:
    """README prose: the variants' errors on the held-out training faces."""
    from benchmarks.tools.render_docs import measured

    r = {k: v["mean"] for k, v in result["rows"].items()}
    return (
        f"Why these two crops: on {result['model']}'s {result['faces']:,} held-out training "
        "faces (`python benchmarks/studies/refine_variants.py`; eye-centre normalisation), "
        "the second "
        f"answer alone scores {r['second alone']:.2f}% against {r['first']:.2f}% for the "
        f"first, and their mean {r['first + second']:.2f}%: the gain is two crops' spread "
        "averaged out, as mirror averaging averages two views. Turning the second crop upright "
        f"by the first answer's eyes gives {r['first + second upright']:.2f}%; four more "
        f"crops, the box shifted by 4% each way, give {r['first + 4 shifted']:.2f}% for five "
        "passes instead of two. " + measured(result["machine"])
    )
