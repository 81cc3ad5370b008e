"""Which training data moved the 68-point model on human labels: the tcnn68 data ablation.

Scores trained 68-point runs (``--runs``, folders made by ``tcnn train``; default the four
tcnn68 variants below), the shipped ``vanilla68`` (ytf68 only) and dlib's predictor on the same
faces: aflw68 with dlib HOG boxes and with RetinaFace boxes (``bench_aflw68.protocol``:
MERL-RAV's human labels, occlusion-aware, eye-centre normalisation) and ytf68 test with HOG
boxes (inter-ocular). Each run's training data and label shifts are read from its config.

The variants (``configs/tcnn68.toml`` with ``--set data=...``, 22 epochs each): all three
sources; without ytf68 train; without UTKFace's dlib pseudo-labels; without MTFL's fused
pseudo-labels. Nothing here is trained or tuned on a test set.

Run: ``PYTHONPATH=src python benchmarks/studies/ablation68.py [--runs runs/tcnn68 ...]`` (writes
benchmarks/results/ablation68.json; then ``python benchmarks/tools/render_docs.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_aflw68 import DLIB, dlib_method, protocol, tcnn_method
from benchmarks.tools.common import found_faces, machine, predict_all, write_result
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import scheme_for
from tcnn.train.runs import config_of, load_checkpoint

RUNS = ("runs/tcnn68-e22", "runs/tcnn68-noytf", "runs/tcnn68-nomtfl", "runs/tcnn68-nout")


def ytf68_means(models: dict[str, str]) -> dict[str, float]:
    """Mean error on ytf68 test (HOG boxes, inter-ocular) of each model path or name, and
    of dlib's predictor."""
    faces = found_faces("ytf68-test")
    norm = normalising_distance(faces.gt, scheme_for(68))
    out = {}
    for name, model in models.items():
        pred = predict_all(LandmarkDetector(model, points=68), faces.images, faces.boxes)
        out[name] = summarise(nme(pred, faces.gt, norm))["mean"]
    pred = dlib_method().predict(faces.images, faces.boxes)
    out[DLIB] = summarise(nme(pred, faces.gt, norm))["mean"]
    return out


def describe(run: Path) -> dict[str, Any]:
    """What a run was trained on, from its checkpoint's config."""
    cfg = config_of(load_checkpoint(run)[1])
    sources = cfg.data.split("+")
    each = (
        cfg.label_shift if len(cfg.label_shift) == len(sources) else cfg.label_shift * len(sources)
    )
    shifts = dict(zip(sources, each))
    return {"data": cfg.data, "label_shift": shifts, "epochs": cfg.optim.epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=list(RUNS), help="tcnn train run folders")
    args = ap.parse_args()
    runs = [Path(r) for r in args.runs]
    models = {"vanilla68": "vanilla68"} | {r.name: str(r / "model.onnx") for r in runs}
    methods = [tcnn_method(m) for m in models.values()] + [dlib_method()]
    for m, name in zip(methods, models):
        m.name = name
    result: dict[str, Any] = {
        "benchmark": "tcnn68 data ablation: aflw68 (human 300-W-style labels) and ytf68 test",
        "runs": {"vanilla68": {"data": "ytf68-train", "epochs": 160, "shipped": True}}
        | {r.name: describe(r) for r in runs},
    }
    for key in ("hog", "retinaface"):
        rows, _ = protocol(key, methods, 0)
        result[key] = {
            "faces": rows["faces"],
            "mean": {r["method"]: r["mean"] for r in rows["rows"]},
            "median": {r["method"]: r["median"] for r in rows["rows"]},
            "jaw": {r["method"]: r["by_region"]["jaw"] for r in rows["rows"]},
        }
    result["ytf68"] = ytf68_means(models)
    result["machine"] = machine()
    print(write_result("ablation68", result))


def ablation68_section(result: dict[str, Any]) -> str:
    """The README table: one row per run, its data and its errors, dlib last."""
    hog, retina, ytf = result["hog"], result["retinaface"], result["ytf68"]
    lines = [
        "| model | training data | aflw68, HOG boxes | aflw68, RetinaFace boxes "
        "| jaw (HOG) | ytf68 test |",
        "|---|---|---|---|---|---|",
    ]
    order = sorted(result["runs"], key=lambda n: -hog["mean"][n])
    for name in order:
        run = result["runs"][name]
        data = " + ".join(run["data"].split("+"))
        lines.append(
            f"| {name} | {data} ({run['epochs']} epochs) | {100 * hog['mean'][name]:.2f}% "
            f"| {100 * retina['mean'][name]:.2f}% | {100 * hog['jaw'][name]:.2f}% "
            f"| {100 * ytf[name]:.2f}% |"
        )
    lines.append(
        f"| {DLIB} (teacher) | iBUG 300-W | {100 * hog['mean'][DLIB]:.2f}% "
        f"| {100 * retina['mean'][DLIB]:.2f}% | {100 * hog['jaw'][DLIB]:.2f}% "
        f"| {100 * ytf[DLIB]:.2f}% |"
    )
    full = min(result["runs"], key=lambda n: hog["mean"][n])
    drops = {
        n: hog["mean"][n] - hog["mean"][full]
        for n in result["runs"]
        if n not in (full, "vanilla68")
    }
    m = result["machine"]
    lines += [
        "",
        f"aflw68: {hog['faces']} faces found by HOG, {retina['faces']} by RetinaFace; ytf68 "
        "test: HOG boxes, inter-ocular. Leaving a source out of the best mix costs "
        + ", ".join(f"{100 * d:+.2f} points ({n})" for n, d in sorted(drops.items()))
        + f" on aflw68 with HOG boxes. Measured {m.get('date', '')} on {m.get('cpu', '?')}, "
        f"tcnn {m.get('tcnn_commit', '?')}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
