"""RetinaFace int8 against its float network: tcnn's own (``RetinaFace(int8=True)``, the
default detector's, made in memory from the float weights and
``weights/detectors/retinaface-int8.json`` by ``tcnn.retina_int8``), and ONNX Runtime's
quantizer's (``tcnn.train.quantize.quantize_retinaface``), for comparison.

Same run, same images: recall on MTFL AFLW test (the 2,995 faces whose landmark centroid lies
in a detection, ``tcnn.train.data.datasets.match_box``; size rule, threshold 0.8), detections on the
face-free images of ``retina_threshold.py`` (scikit-image samples, crops of the shared photos
below the faces), faces found on the shared photos, and the detector's CPU time per photo
(``time.process_time``, both detectors alternating pass by pass).

Run: ``python benchmarks/studies/retina_int8.py`` (writes benchmarks/results/retina_int8.json;
ONNX Runtime's form is quantized into a temporary folder, calibrated on the same 64 MTFL
training images as tcnn's).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

import tcnn.train.data.datasets as datasets

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_5pt import PHOTOS
from benchmarks.studies.retina_threshold import faceless_images
from benchmarks.tools.common import machine, write_result
from tcnn.imaging import load_image
from tcnn.retina import RetinaFace
from tcnn.train.quantize import quantize_retinaface


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = quantize_retinaface(Path(tmp) / "retinaface-int8.onnx")
        dets = {
            "float": RetinaFace(),
            "int8": RetinaFace(int8=True),
            "int8 (ONNX Runtime's quantizer)": RetinaFace(model=path),
        }
        result: dict[str, Any] = {"loadavg_before": os.getloadavg()[0]}
        photos = [load_image(p) for p in sorted(PHOTOS.glob("*")) if p.suffix in (".jpg", ".png")]
        cpu = dict.fromkeys(dets, 0.0)
        for d in dets.values():
            d(photos[0])
        for rep in range(10):
            for name in list(dets)[rep % len(dets) :] + list(dets)[: rep % len(dets)]:
                for img in photos:
                    c0 = time.process_time()
                    dets[name](img)
                    cpu[name] += time.process_time() - c0
        result["cpu_ms_per_photo"] = {
            k: round(1000 * v / (10 * len(photos)), 1) for k, v in cpu.items()
        }
        result["loadavg_after"] = os.getloadavg()[0]
        result["photo_faces"] = {k: [len(d(p)) for p in photos] for k, d in dets.items()}
        faceless = faceless_images()
        result["faceless_images"] = len(faceless)
        result["false_detections"] = {
            k: sum(len(d(img)) for img in faceless.values()) for k, d in dets.items()
        }
        anns = datasets.DATASETS["mtfl-aflw"].read(datasets.default_root())
        found = dict.fromkeys(dets, 0)
        for a in tqdm(anns, desc="AFLW test", unit="img"):
            img = load_image(a.path)
            for k, d in dets.items():
                found[k] += datasets.match_box(a.landmarks, d(img))[0] is not None
        result["aflw_faces"] = len(anns)
        result["aflw_found"] = found
        result["aflw_recall"] = {k: round(v / len(anns), 5) for k, v in found.items()}
        result["int8_file_kb"] = round(path.stat().st_size / 1024)
    result["landmarks"] = landmark_effect()
    print(result)
    print(write_result("retina_int8", {**result, "machine": machine()}))


def landmark_effect() -> dict[str, Any]:
    """The default models' mean error on the faces both detectors find, on the float and on
    the int8 detector's boxes, and how many faces each finds: MTFL AFLW test (5 points, eye
    centres) and aflw68's held-out part (68 points, inter-pupil, located points). The boxes are
    mapped onto those each model was trained on, as ``LandmarkDetector.detect`` maps them."""
    import numpy as np

    from benchmarks.bench.bench_aflw68 import DATA as AFLW68
    from tcnn.detect import box_map
    from tcnn.metrics import nme, normalising_distance
    from tcnn.predictor import LandmarkDetector
    from tcnn.registry import DEFAULTS
    from tcnn.schemes import FIVE, SIXTY_EIGHT

    out: dict[str, Any] = {}
    for data, points in (("mtfl-aflw", 5), (AFLW68, 68)):
        runs = {
            d: datasets.load_dataset(data, face_detector=d)
            for d in ("retinaface", "retinaface-int8")
        }
        both = [
            i for i, pair in enumerate(zip(*runs.values())) if all(s.box is not None for s in pair)
        ]
        lm = LandmarkDetector(DEFAULTS[points])
        mapping = box_map("retinaface", lm.model.card.detector)  # both detectors' convention
        row: dict[str, Any] = {"model": DEFAULTS[points], "faces": len(runs["retinaface"])}
        for d, samples in runs.items():
            row[f"found {d}"] = sum(s.box is not None for s in samples)
            picked = [samples[i] for i in both]
            boxes = [mapping(s.box) if mapping else s.box for s in picked]
            pred = np.stack(
                [lm.landmarks(load_image(s.path), [b])[0] for s, b in zip(picked, boxes)]
            )
            gt = np.stack([s.landmarks for s in picked])
            if points == 5:
                err = nme(pred, gt, normalising_distance(gt, FIVE))
            else:
                err = nme(pred, gt, normalising_distance(gt, SIXTY_EIGHT, "inter-pupil"))
            row[f"nme {d}"] = float(np.mean(err))
        row["both"] = len(both)
        out[data] = row
    return out


if __name__ == "__main__":
    main()


def retina_int8_section(result: dict[str, Any]) -> str:
    """The README's ``bench:retina_int8`` section: one table, float against int8."""
    from benchmarks.tools.render_docs import measured

    n = result["aflw_faces"]
    lines = [
        "| RetinaFace | AFLW test found | face-free images: detections | shared photos: faces "
        "| detector CPU ms/photo |",
        "|---|---|---|---|---|",
    ]
    for k in result["aflw_found"]:
        lines.append(
            f"| {k} | {result['aflw_found'][k]:,} of {n:,} ({100 * result['aflw_recall'][k]:.2f}%)"
            f" | {result['false_detections'][k]} on {result['faceless_images']} "
            f"| {sum(result['photo_faces'][k])} | {result['cpu_ms_per_photo'][k]:.1f} |"
        )
    lines.append("")
    lines.append(
        f"Load average {result['loadavg_before']:.1f} before the timed passes and "
        f"{result['loadavg_after']:.1f} after. {measured(result['machine'])}"
    )
    if "landmarks" in result:
        lines += [
            "",
            "| default model | test faces | found: float | found: int8 | found by both "
            "| mean error, float boxes | mean error, int8 boxes |",
            "|---|---|---|---|---|---|---|",
        ]
        names = {"mtfl-aflw": "MTFL AFLW test", "aflw68-test": "aflw68 held-out part"}
        for data, r in result["landmarks"].items():
            lines.append(
                f"| {r['model']} on {names.get(data, data)} | {r['faces']:,} "
                f"| {r['found retinaface']:,} | {r['found retinaface-int8']:,} | {r['both']:,} "
                f"| {100 * r['nme retinaface']:.2f}% | {100 * r['nme retinaface-int8']:.2f}% |"
            )
    return "\n".join(lines)
