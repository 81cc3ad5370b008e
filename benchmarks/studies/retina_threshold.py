"""Choose RetinaFace's score threshold: recall on MTFL AFLW test, false detections without faces.

Recall: the share of the 2,995 AFLW test faces whose landmark centroid lies in a detection
(the matching rule of ``tcnn.train.data.datasets.match_box``), for each threshold and for two sizes
of the 80x80 images (upscaled to 160 and to 320 px, the size rule's ``min_side``). False
detections: every detection at each threshold on images without a human face: scikit-image's
bundled sample images (textures, objects, a cat) and crops of the shared photos below the faces
(clothing, background).

Run: ``python benchmarks/studies/retina_threshold.py`` (writes
benchmarks/results/retina_threshold.json).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import machine, write_result
from tcnn.imaging import load_image
from tcnn.retina import RetinaFace
from tcnn.train.data.datasets import DATASETS, default_root, match_box

THRESHOLDS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: scikit-image sample images bundled with the package, none with a human face.
SKIMAGE = (
    "brick", "grass", "gravel", "coffee", "coins", "rocket", "chelsea", "horse", "moon",
    "page", "text", "hubble_deep_field", "immunohistochemistry", "cell", "colorwheel",
    "logo", "clock", "retina", "microaneurysms",
)  # fmt: skip
#: Crops (left, top, right, bottom) of the shared photos that hold no face.
CROPS = {
    "multi_face.jpg": [(0, 450, 1000, 667), (820, 0, 1000, 667)],
    "single_face.jpg": [(0, 420, 572, 562), (0, 0, 190, 562)],
    "45-m7-di-ph.jpg": [(300, 0, 512, 512)],
}


def faceless_images() -> dict[str, np.ndarray]:
    """Named ``[H, W, 3]`` uint8 images with no human face."""
    from skimage import data

    out = {}
    for name in SKIMAGE:
        arr = getattr(data, name)()
        out[name] = load_image(arr.astype(np.uint8) * 255 if arr.dtype == bool else arr)
    photos = default_root() / "photos"
    for file, boxes in CROPS.items():
        img = load_image(photos / file)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            out[f"{file}[{i}]"] = np.ascontiguousarray(img[y0:y1, x0:x1])
    return out


def aflw_recall(min_side: int) -> tuple[dict[str, float], float]:
    """Recall per threshold on MTFL AFLW test with the given ``min_side``; ms per image."""
    anns = DATASETS["mtfl-aflw"].read(default_root())
    det = RetinaFace(threshold=min(THRESHOLDS), min_side=min_side, threads=1)
    best: list[float] = []
    t0 = time.perf_counter()
    for a in tqdm(anns, desc=f"AFLW test at {min_side} px", unit="img"):
        found = det(load_image(a.path))
        box, score = match_box(a.landmarks, found)
        best.append(score if box is not None else 0.0)
    ms = (time.perf_counter() - t0) / len(anns) * 1000
    scores = np.array(best)
    return {str(t): float((scores >= t).mean()) for t in THRESHOLDS}, ms


def main() -> None:
    recall = {}
    for side in (160, 320):
        r, ms = aflw_recall(side)
        recall[str(side)] = {"recall": r, "ms_per_image": round(ms, 2)}
        print(side, recall[str(side)])
    det = RetinaFace(threshold=min(THRESHOLDS), threads=1)
    false: dict[str, dict[str, float]] = {}
    for name, img in faceless_images().items():
        scores = [s for _, s in det(img)]
        false[name] = {str(t): sum(s >= t for s in scores) for t in THRESHOLDS}
        print(name, img.shape, [round(s, 3) for s in scores])
    totals = {str(t): sum(v[str(t)] for v in false.values()) for t in THRESHOLDS}
    write_result(
        "retina_threshold",
        {
            "machine": machine(),
            "aflw_faces": 2995,
            "aflw_recall": recall,
            "faceless_images": len(false),
            "false_detections": false,
            "false_detections_total": totals,
        },
    )


if __name__ == "__main__":
    main()
