"""Does tcnn68h fit its own training labels: its error on the faces it trained on against the
faces its config held out for validation, both scored on the labels it learnt from.

The labels are those the run of ``configs/tcnn68h.toml`` trained on
(``tcnn.train.data.samples.training_samples``: dlib's pseudo-labels and ytf68's, shifted and
moved into the human style, and aflw68-train's human labels), its training and validation
faces its own split (``samples.split``), each face on its training box (the dlib detector's, or
one placed from the landmarks where it missed). The network is the run's, before calibration
(``runs/tcnn68h/model.onnx``; ``--model`` for another).

``tcnn68h`` started from ``tcnn68``'s weights, which trained on the same pseudo-labelled faces
with a split of its own (``configs/tcnn68.toml``, 70 epochs in all), so most of ``tcnn68h``'s
validation faces were training faces of its starting point. The column ``never trained on``
keeps the validation faces outside ``tcnn68``'s training faces too.

Error: mean point distance over the label's eye-centre distance (as the aflw68 table scores;
aflw68's self-occluded points left out), per source. Equal training and validation error says
the network cannot fit its labels any better (capacity); training error well below validation
error says it learnt faces rather than the labelling (overfitting).

Run: ``python benchmarks/studies/student_fit.py`` (writes benchmarks/results/student_fit.json);
about 1.5 minutes here (1 min 38 s; 23,000 faces read once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import ROOT, landmark_detector, predict_all, write_result
from benchmarks.tools.render_docs import measured
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.config import TrainConfig, load_config
from tcnn.train.data.datasets import Sample, dataset_names
from tcnn.train.data.samples import fill_missing_boxes, split, training_samples

CONFIG = ROOT / "configs" / "tcnn68h.toml"
INIT_CONFIG = ROOT / "configs" / "tcnn68.toml"
MODEL = ROOT / "runs" / "tcnn68h" / "model.onnx"
CHUNK = 512


def faces(cfg: TrainConfig, init: TrainConfig) -> tuple[list[Sample], dict[int, str]]:
    """The run's faces (boxes filled as it filled them) and each one's role by position:
    ``"train"``, ``"val"`` (held out by the run) or ``"unseen"`` (held out by the run and by
    its starting point's)."""
    samples = fill_missing_boxes(training_samples(cfg, progress=False), cfg.missed)
    train, val = split(samples, cfg)
    init_names = set(dataset_names(init.data))
    shared = [s for s in samples if s.source in init_names]  # its sources' faces, same order
    _, init_val = split(shared, init)
    never = {id(s) for s in init_val} | {id(s) for s in samples if s.source not in init_names}
    role = {id(s): "train" for s in train}
    role.update({id(s): "unseen" if id(s) in never else "val" for s in val})
    return samples, {i: role[id(s)] for i, s in enumerate(samples)}


def errors(model: str, samples: list[Sample]) -> np.ndarray:
    """``[N]`` the model's error on each face against its label, ``CHUNK`` faces read at a time."""
    lm, _ = landmark_detector(model)
    out = []
    for start in range(0, len(samples), CHUNK):
        chunk = samples[start : start + CHUNK]
        images = [load_image(s.path) for s in chunk]
        pred = predict_all(lm, images, [s.box for s in chunk if s.box is not None], "dlib")
        gt = np.stack([s.landmarks for s in chunk]).astype(np.float64)
        out.append(nme(pred, gt, normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")))
    return np.concatenate(out)


def cell(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"faces": 0}
    return {"faces": len(values), "mean": float(values.mean()), "median": float(np.median(values))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODEL.relative_to(ROOT)), help="an .onnx path or name")
    args = ap.parse_args()
    cfg = load_config(CONFIG)
    init = load_config(INIT_CONFIG)
    assert isinstance(cfg, TrainConfig) and isinstance(init, TrainConfig)
    samples, role = faces(cfg, init)
    err = errors(args.model, samples)
    roles = np.array([role[i] for i in range(len(samples))])
    sources = np.array([s.source for s in samples])
    table: dict[str, dict[str, Any]] = {}
    for name in [*dataset_names(cfg.data), "all"]:
        here = sources == name if name != "all" else np.ones(len(samples), bool)
        table[name] = {
            "train": cell(err[here & (roles == "train")]),
            "held_out": cell(err[here & (roles != "train")]),
            "never_trained_on": cell(err[here & (roles == "unseen")]),
        }
        row = table[name]
        print(
            name, {k: (v["faces"], round(100 * v.get("mean", np.nan), 2)) for k, v in row.items()}
        )
    result = {
        "benchmark": "tcnn68h against its own training labels: faces it trained on vs faces its "
        "config held out",
        "model": args.model,
        "config": str(CONFIG.relative_to(ROOT)),
        "init_config": str(INIT_CONFIG.relative_to(ROOT)),
        "normaliser": "the label's eye-centre distance",
        "sources": table,
    }
    print(write_result("student_fit", result))


def student_fit_section(result: dict[str, Any]) -> str:
    """docs/training.md table: per source, training vs held-out error on the run's own labels."""
    cols = (
        ("train", "trained on"),
        ("held_out", "held out"),
        ("never_trained_on", "never trained on"),
    )
    lines = [
        "| labels (tcnn68h's own) | " + " | ".join(f"{c}: faces, mean" for _, c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in result["sources"].items():
        cells = " | ".join(
            f"{row[k]['faces']}, {100 * row[k]['mean']:.2f}%" if row[k]["faces"] else "0, -"
            for k, _ in cols
        )
        lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        f"`{result['model']}` (the run of `{result['config']}`, before calibration) against the "
        f"labels it learnt from, {result['normaliser']}; held out: its config's validation "
        f"faces; never trained on: those that were not training faces of its starting point "
        f"(`{result['init_config']}`) either. " + measured(result["machine"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
