"""One-off A/B: the landmark stage of commit e9c1c57 (copied below) against the working tree's.

Both run in this process on MTFL's AFLW test faces (dlib HOG boxes), alternating round by
round, at batch 1 (``landmarks``, 600 faces) and batch 256 (``landmarks_batch``, all faces),
as ``common.speed`` times them; the working tree's code once per ``--chunks`` value of
``tcnn.predictor.CHUNK``. First it checks that both give the same landmarks (``array_equal``)
on every face at batch 256 and on 1,000 faces at batch 1. Prints faces/s per round, the
per-round ratios new / old, and the process CPU time per face at batch 256 (all threads).
On a loaded machine only the ratios mean much; drop this script once the idle figures are in
``results/5pt.json``.

    PYTHONPATH=src python benchmarks/speed_ab.py --rounds 8 --chunks 8,16,32
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

import tcnn.predictor
from common import found_faces
from tcnn.codec import CropRule
from tcnn.models.registry import Model, _session
from tcnn.predictor import LandmarkDetector
from tcnn.types import Box


# ---- commit e9c1c57's landmark stage, as it was -------------------------------------------
def old_crop_resize(image: np.ndarray, region: Box, size: int, antialias: bool) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = int(np.floor(region.left)), int(np.floor(region.top))
    x1, y1 = int(np.ceil(region.right)), int(np.ceil(region.bottom))
    patch = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        padded = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        padded[
            max(-y0, 0) : max(-y0, 0) + patch.shape[0], max(-x0, 0) : max(-x0, 0) + patch.shape[1]
        ] = patch
        patch = padded
    rel = (region.left - x0, region.top - y0, region.right - x0, region.bottom - y0)
    if not antialias:
        sx, sy = region.width / size, region.height / size
        affine = (sx, 0.0, rel[0], 0.0, sy, rel[1])
        sampled = Image.fromarray(np.ascontiguousarray(patch)).transform(
            (size, size), Image.Transform.AFFINE, affine, Image.Resampling.BILINEAR
        )
        return np.asarray(sampled)
    out = Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR, box=rel)
    return np.asarray(out)


def old_from_crop(units: np.ndarray, regions: Sequence[Box]) -> np.ndarray:
    origin = np.array([[r.left, r.top] for r in regions], np.float32).reshape(-1, 1, 2)
    size = np.array([[r.width, r.height] for r in regions], np.float32).reshape(-1, 1, 2)
    return np.asarray(units * size + origin, dtype=np.float32)


class OldSessions:
    """The old ``Model.run``: a spinning session, and a non-spinning one for bulk."""

    def __init__(self, m: Model) -> None:
        self.m = m
        self.bulk: Any = None

    def run(self, crops: np.ndarray, bulk: bool = False) -> np.ndarray:
        m = self.m
        x = crops.astype(np.float32).transpose(0, 3, 1, 2)
        if m.card.channel_order == "BGR":
            x = x[:, ::-1]
        x = np.ascontiguousarray(x)
        if bulk and self.bulk is None:
            self.bulk = _session(m.path, m.threads, spinning=False)
        session = self.bulk if bulk else m.session
        out: np.ndarray = session.run(None, {session.get_inputs()[0].name: x})[0]
        return out.reshape(len(crops), m.points, 2)


class OldDetector(LandmarkDetector):
    """``LandmarkDetector`` with e9c1c57's ``landmarks_batch`` (CHUNK 32, one pool thread)."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.sessions = OldSessions(self.model)

    def landmarks_batch(self, items: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        m, chunk = self.model, 32
        rule = CropRule(m.crop_scale, m.crop_shift_y)
        regions = [rule.region(b) for _, b in items]
        crops = [(img, r) for (img, _), r in zip(items, regions)]
        if len(items) <= chunk:
            units = self.sessions.run(self._old_crops(crops))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="tcnn")
            runs = [
                self._pool.submit(self.sessions.run, self._old_crops(crops[i : i + chunk]), True)
                for i in range(0, len(crops), chunk)
            ]
            units = np.concatenate([r.result() for r in runs])
        points = old_from_crop(units, regions)
        if m.pixel_offset != (0.0, 0.0):
            points = points + np.array(m.pixel_offset, np.float32)
        return points

    def _old_crops(self, pairs: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        size, smooth = self.model.input_size, self.model.crop_antialias
        return np.stack([old_crop_resize(img, r, size, smooth) for img, r in pairs])


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vanilla5")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--chunks", default="8", help="CHUNK values for the new code, comma-separated")
    args = ap.parse_args()

    faces = found_faces("mtfl-aflw")
    pairs = list(zip(faces.images, faces.boxes))
    old, new = OldDetector(args.model), LandmarkDetector(args.model)
    chunks = [int(c) for c in args.chunks.split(",")]

    def batched(lm: LandmarkDetector) -> np.ndarray:
        return np.concatenate(
            [lm.landmarks_batch(pairs[i : i + 256]) for i in range(0, len(pairs), 256)]
        )

    def single(lm: LandmarkDetector) -> np.ndarray:
        return np.concatenate([lm.landmarks(img, [b]) for img, b in pairs[:1000]])

    for c in chunks:
        tcnn.predictor.CHUNK = c
        same = np.array_equal(batched(old), batched(new))
        print(f"CHUNK {c}: identical to e9c1c57 at batch 256 ({len(pairs)} faces): {same}")
    print(f"identical at batch 1 (1,000 faces): {np.array_equal(single(old), single(new))}")

    def batch1(lm: LandmarkDetector, n: int = 600) -> float:
        t = time.perf_counter()
        for img, b in pairs[:n]:
            lm.landmarks(img, [b])
        return n / (time.perf_counter() - t)

    def batch256(lm: LandmarkDetector) -> tuple[float, float]:
        t, cpu, n = time.perf_counter(), time.process_time(), (len(pairs) // 256) * 256
        for i in range(0, n, 256):
            lm.landmarks_batch(pairs[i : i + 256])
        return n / (time.perf_counter() - t), (time.process_time() - cpu) / n * 1e6

    names = ["old"] + [f"new{c}" for c in chunks]
    res: dict[str, dict[str, list[float]]] = {k: {"b1": [], "b256": [], "cpu": []} for k in names}
    for r in range(args.rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            lm = old if k == "old" else new
            tcnn.predictor.CHUNK = int(k[3:]) if k != "old" else 32
            res[k]["b1"].append(batch1(lm))
            rate, cpu = batch256(lm)
            res[k]["b256"].append(rate)
            res[k]["cpu"].append(cpu)
        line = "  ".join(f"{k} {res[k]['b1'][-1]:.0f} / {res[k]['b256'][-1]:.0f}" for k in names)
        print(f"round {r} (load {os.getloadavg()[0]:.1f}), faces/s batch 1 / 256: {line}")
    for k in names[1:]:
        for key, what in (("b1", "batch 1"), ("b256", "batch 256")):
            ratios = [n / o for n, o in zip(res[k][key], res["old"][key])]
            print(
                f"{k} {what}: new/old faces/s per round "
                f"{' '.join(f'{x:.2f}' for x in ratios)}, median {np.median(ratios):.3f}; "
                f"best old {max(res['old'][key]):.0f}, new {max(res[k][key]):.0f}"
            )
        cr = [o / n for n, o in zip(res[k]["cpu"], res["old"]["cpu"])]
        print(
            f"{k} batch 256 process CPU per face: old {np.median(res['old']['cpu']):.0f} us, "
            f"new {np.median(res[k]['cpu']):.0f} us; old/new median {np.median(cr):.3f}"
        )


if __name__ == "__main__":
    main()
