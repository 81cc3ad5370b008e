"""The README's video frame strip: two faces crossing, tracked, ids drawn (docs/video_strip.jpg).

PYTHONPATH=src python benchmarks/figures/figure_video.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_video import CROSSING, NOISE, ON_SCREEN, SOURCES
from benchmarks.tools.synth_video import FPS, crossing_clip, make_sprite
from tcnn.apps.video import LandmarkTracker
from tcnn.draw import draw_faces
from tcnn.predictor import LandmarkDetector

OUT = Path(__file__).resolve().parents[2] / "docs" / "video_strip.jpg"


def main() -> None:
    det = LandmarkDetector(points=68)
    heads = [make_sprite(str(SOURCES[n]), {68: det}, margin=1.7) for n in CROSSING]
    clip = crossing_clip("crossing", heads[0], heads[1], 60, ON_SCREEN, 0.6, NOISE)
    tracker = LandmarkTracker(det)
    picks = {0, 15, 22, 30, 45}
    tiles = []
    for t, rgb in enumerate(clip.frames):
        faces = tracker.update(rgb, t / FPS)
        if t not in picks:
            continue
        img = draw_faces(rgb, faces)
        pen = ImageDraw.Draw(img)
        for f in faces:
            how = "detected" if f.detected else "tracked"
            pen.text((f.box.left + 4, f.box.top + 4), f"id {f.track_id} {how}", fill="#ffff00")
        pen.text((8, 8), f"frame {t}", fill="#ffffff")
        tiles.append(np.asarray(img.resize((320, 240), Image.Resampling.LANCZOS)))
    Image.fromarray(np.hstack(tiles)).save(OUT, quality=85)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
