"""Where the landmark stage's time goes: face box -> region, crop, network input, network, mapping.

On MTFL's AFLW test faces (dlib HOG boxes), at batch 1 (the first 1,000 faces one by one, as
``LandmarkDetector.landmarks`` runs them: the multi-threaded session) and at batch
256 (all faces, in chunks of ``tcnn.predictor.CHUNK`` on the single-threaded bulk session, as
one of ``landmarks_batch``'s workers runs them). The stages run one after the other on this
thread; each is timed as wall and as this thread's CPU time (the network's own threads are
not in the latter at batch 1). Then the whole stage as ``common.speed`` times it. A profile,
not a benchmark: on a loaded machine (the load is printed) read the CPU columns.

    PYTHONPATH=src python benchmarks/tools/profile_landmarks.py [--model vanilla5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tcnn.predictor

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import found_faces, speed
from tcnn.codec import from_crop
from tcnn.imaging import crop_batch
from tcnn.predictor import LandmarkDetector

STAGES = ("region", "crop", "input", "network", "map")


def stages(lm: LandmarkDetector, pairs: list[Any], batch: int) -> dict[str, list[float]]:
    """Seconds ``[wall, cpu]`` per stage, summed over ``pairs`` in batches of ``batch``."""
    m = lm.model
    rule = m.card.crop
    chunk = 1 if batch == 1 else tcnn.predictor.CHUNK
    session = m.session if batch == 1 else m.bulk_session
    name = session.get_inputs()[0].name
    total = {s: [0.0, 0.0] for s in STAGES}

    def tick(stage: str, since: tuple[float, float]) -> tuple[float, float]:
        now = (time.perf_counter(), time.thread_time())
        total[stage][0] += now[0] - since[0]
        total[stage][1] += now[1] - since[1]
        return now

    for i in range(0, len(pairs) - batch + 1, batch):
        items = pairs[i : i + batch]
        t = (time.perf_counter(), time.thread_time())
        regions = [rule.region(b) for _, b in items]
        t = tick("region", t)
        crops = crop_batch(
            [(img, r) for (img, _), r in zip(items, regions)], m.input_size, m.card.crop.antialias
        )
        t = tick("crop", t)
        x = m.network_input(crops)
        t = tick("input", t)
        outs = [session.run(None, {name: x[j : j + chunk]})[0] for j in range(0, len(x), chunk)]
        units = np.concatenate(outs).reshape(len(x), m.points, 2)
        t = tick("network", t)
        from_crop(units, regions)
        tick("map", t)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vanilla5")
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs per figure")
    ap.add_argument("--threads", type=int, help="LandmarkDetector(threads=...); default: all")
    args = ap.parse_args()

    faces = found_faces("mtfl-aflw")
    pairs = list(zip(faces.images, faces.boxes))
    lm = LandmarkDetector(args.model, threads=args.threads)
    print(
        f"{args.model}, CHUNK {tcnn.predictor.CHUNK}, {lm.model.bulk_workers} bulk workers, "
        f"load {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    for batch, faces_used in ((1, pairs[:1000]), (256, pairs[: len(pairs) // 256 * 256])):
        runs = [stages(lm, faces_used, batch) for _ in range(args.rounds)]
        n = len(faces_used)
        print(f"batch {batch}: us per face, best of {args.rounds} (wall / this thread's CPU)")
        for s in STAGES:
            wall = min(r[s][0] for r in runs) / n * 1e6
            cpu = min(r[s][1] for r in runs) / n * 1e6
            print(f"  {s:8s} {wall:7.1f} / {cpu:7.1f}")
        print(f"  {'sum':8s} {sum(min(r[s][0] for r in runs) for s in STAGES) / n * 1e6:7.1f}")
    rates = speed(lm, faces.images, faces.boxes)
    print(
        f"whole stage (common.speed): {rates['faces_per_s_batch1']:.0f} faces/s at batch 1 "
        f"({1e3 / rates['faces_per_s_batch1']:.3f} ms), {rates['faces_per_s_batch256']:.0f} at 256"
    )


if __name__ == "__main__":
    main()
