"""68-point models on the held-out training faces, scored against human labels only.

Models trained on pseudo-labels cannot be compared by their validation loss when their
pseudo-labels differ: each is scored against its own teacher. This script scores them on the
faces that a config's run held out (``tcnn.train.data.samples.split``, training data, never a test
set), against what people labelled there:

- MTFL faces: the model's 68 points reduced to 5 (``tcnn.schemes.to_five``) against MTFL's
  human 5 points (moved by the label-convention rule, ``tcnn.train.data.pseudo.MTFL_SHIFT``), over
  their eye distance;
- ytf68 faces: all 68 points against ytf68's labels (moved by the config's ``label_shift``),
  over the inter-ocular distance (36, 45).

UTKFace faces have no human labels and are left out. Every model gets the config's boxes.

Run: ``python benchmarks/studies/heldout_human.py --models tcnn68 runs/X/model.onnx``
(writes benchmarks/results/heldout_human.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import load_images, machine, write_result
from tcnn.metrics import nme, normalising_distance
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.config import load_config
from tcnn.train.data.datasets import default_root
from tcnn.train.data.filters import human_error
from tcnn.train.data.formats import read_mtfl
from tcnn.train.data.pseudo import MTFL_SHIFT
from tcnn.train.data.samples import fill_missing_boxes, split, training_samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tcnn68"], help="names or .onnx paths")
    ap.add_argument("--config", default="configs/tcnn68.toml", help="the split to hold out")
    args = ap.parse_args()
    cfg = load_config(args.config)
    _, val = split(fill_missing_boxes(training_samples(cfg), cfg.missed), cfg)
    root = Path(cfg.data_root) if cfg.data_root else default_root()
    human = {a.path: a.landmarks for a in read_mtfl(root / "mtfl/train_landmarks5_bbox.txt")}
    mtfl = [s for s in val if s.path in human]
    ytf = [s for s in val if "ytf68" in Path(s.path).parts]
    gt5 = np.stack([human[s.path] for s in mtfl]) - MTFL_SHIFT
    gt68 = np.stack([s.landmarks for s in ytf])
    norm68 = normalising_distance(gt68, SIXTY_EIGHT)
    groups = {"mtfl": (mtfl, load_images(mtfl)), "ytf68": (ytf, load_images(ytf))}
    rows: dict[str, Any] = {}
    for spec in args.models:
        lm = LandmarkDetector(spec, points=68)
        pred = {
            k: lm.landmarks_batch(list(zip(imgs, [s.box for s in faces])))
            for k, (faces, imgs) in groups.items()
        }
        row = {
            "mtfl_5pt": round(100 * float(human_error(pred["mtfl"], gt5).mean()), 3),
            "ytf68": round(100 * float(nme(pred["ytf68"], gt68, norm68).mean()), 3),
        }
        rows[spec] = {"card": lm.model.card.name, **row}
        print(f"{spec}: MTFL 5 points {row['mtfl_5pt']:.2f}%, ytf68 {row['ytf68']:.2f}%")
    write_result(
        "heldout_human",
        {
            "benchmark": "68-point models on held-out training faces, human labels only",
            "config": args.config,
            "faces": {"mtfl": len(mtfl), "ytf68": len(ytf)},
            "rows": rows,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
