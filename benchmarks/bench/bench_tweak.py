"""Tweaked CNN ablation on MTFL's AFLW test set (dlib HOG boxes, same protocol as bench_5pt).

For the Vanilla base and each tweak run: mean error, failures at 10%, and the landmark stage's
faces/s at batch 256, with hard routing (the exported model) and soft routing (the same
weights exported with posterior-weighted heads). The K = 1 run is the control: one head
fine-tuned exactly like the tweaked heads. Also the per-cluster error of the base and of the
tweaked model, clusters from the tweaked model's router.

Run: ``python benchmarks/bench/bench_tweak.py --base runs/vanilla5 runs/vanilla5-k1
runs/vanilla5-k8`` (needs torch; writes benchmarks/results/tweak.json).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import found_faces, machine, pct, predict_all, speed, write_result
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import scheme_for
from tcnn.train.data.augment import make_crops
from tcnn.train.export import export_run
from tcnn.train.runs import load_checkpoint
from tcnn.train.tweak import clusters_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the Vanilla run the tweaks start from")
    ap.add_argument("runs", nargs="+", help="tweak run folders (include the K = 1 control)")
    ap.add_argument("--no-soft", action="store_true", help="skip the soft-routing exports")
    ap.add_argument("--data", default="mtfl-aflw", choices=("mtfl-aflw", "ytf68-test"))
    args = ap.parse_args()

    faces = found_faces(args.data)
    samples, images, boxes, gt = faces.samples, faces.images, faces.boxes, faces.gt
    norm = normalising_distance(gt, scheme_for(gt.shape[1]))

    def measure(onnx: Path, label: str, extra: dict) -> dict:
        lm = LandmarkDetector(onnx)
        errors = nme(predict_all(lm, images, boxes), gt, norm)
        s = summarise(errors)
        rate = speed(lm, images, boxes, n1=200)["faces_per_s_batch256"]
        print(f"{label}: mean {pct(s['mean'])}, fail10 {pct(s['failure_10'])}, {rate:.0f}/s")
        return {
            "method": label,
            **extra,
            "mean": s["mean"],
            "failure_10": s["failure_10"],
            "faces_per_s_batch256": rate,
            "errors": errors,
        }

    base = measure(Path(args.base) / "model.onnx", "vanilla (base)", {"k": 0, "routing": "-"})
    rows = [base]
    tmp = Path(tempfile.mkdtemp())
    for run in map(Path, args.runs):
        net, state = load_checkpoint(run)
        k, tc = net.tweak.k, state["tweak_config"]
        extra = {
            "k": k,
            "tweak_conv4": tc["tweak_conv4"],
            "train_trunk": tc["train_trunk"],
            "epochs": tc["epochs"],
            "run": run.name,
        }
        rows.append(measure(run / "model.onnx", f"{run.name} hard", {**extra, "routing": "hard"}))
        if not args.no_soft and k > 1:
            soft = export_run(run, progress=False, out=tmp / f"{run.name}-soft.onnx", soft=True)
            rows.append(measure(soft, f"{run.name} soft", {**extra, "routing": "soft"}))

    # Per-cluster error of the base and of the best hard-routed tweak (k > 1).
    tweaked = [r for r in rows if r.get("routing") == "hard" and r["k"] > 1]
    per_cluster = {}
    if tweaked:
        best = min(tweaked, key=lambda r: r["mean"])
        net, state = load_checkpoint(Path(args.runs[0]).parent / best["run"])
        cfg = state["config"]
        crops = make_crops(samples, cfg["input_size"], cfg["crop_scale"], cfg["crop_shift_y"])
        cl = clusters_of(net, crops)
        per_cluster = {
            "run": best["run"],
            "clusters": [
                {
                    "cluster": c,
                    "faces": int((cl == c).sum()),
                    "base_mean": float(base["errors"][cl == c].mean()),
                    "tweaked_mean": float(best["errors"][cl == c].mean()),
                }
                for c in range(net.tweak.k)
                if (cl == c).any()
            ],
        }
    for r in rows:
        r.pop("errors")
    write_result(
        "tweak" if args.data == "mtfl-aflw" else "tweak68",
        {
            "benchmark": f"Tweaked CNN ablation on {args.data}, {gt.shape[1]} points, "
            + ("eye-centre" if gt.shape[1] == 5 else "inter-ocular")
            + " normalisation",
            "protocol": f"dlib HOG boxes, {len(samples)} of {faces.total} faces found",
            "machine": machine(),
            "rows": rows,
            "per_cluster": per_cluster,
        },
    )


if __name__ == "__main__":
    main()
