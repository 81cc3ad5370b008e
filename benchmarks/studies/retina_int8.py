"""RetinaFace int8 (``tcnn.train.quantize.quantize_retinaface``) against its float network.

Same run, same images: recall on MTFL AFLW test (the 2,995 faces whose landmark centroid lies
in a detection, ``tcnn.train.data.datasets.match_box``; size rule, threshold 0.8), detections on the
face-free images of ``retina_threshold.py`` (scikit-image samples, crops of the shared photos
below the faces), faces found on the shared photos, and the detector's CPU time per photo
(``time.process_time``, both detectors alternating pass by pass).

Run: ``python benchmarks/studies/retina_int8.py`` (writes benchmarks/results/retina_int8.json;
quantizes into a temporary folder, calibrated on 64 MTFL training images).
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
        dets = {"float": RetinaFace(), "int8": RetinaFace(model=path)}
        result: dict[str, Any] = {"loadavg_before": os.getloadavg()[0]}
        photos = [load_image(p) for p in sorted(PHOTOS.glob("*")) if p.suffix in (".jpg", ".png")]
        cpu = dict.fromkeys(dets, 0.0)
        for d in dets.values():
            d(photos[0])
        for rep in range(10):
            for name in list(dets)[:: 1 if rep % 2 else -1]:
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
    print(result)
    print(write_result("retina_int8", {**result, "machine": machine()}))


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
    for k in ("float", "int8"):
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
    return "\n".join(lines)
