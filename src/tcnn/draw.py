"""Landmarks drawn on an image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tcnn.schemes import scheme_for
from tcnn.types import Face

_COLOURS_5 = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#bf5af2")


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> Image.Image:
    """An RGB copy of ``image`` with each face's box, points and (68 points) part outlines."""
    out = Image.fromarray(image).convert("RGB")
    pen = ImageDraw.Draw(out)
    for face in faces:
        size = max(face.box.width, face.box.height)
        r = max(1.5, size / 60)
        line = max(1, round(size / 120))
        pen.rectangle(face.box.as_tuple(), outline="#00e5ff", width=line)
        pts = [(float(x), float(y)) for x, y in face.landmarks]
        scheme = scheme_for(len(pts))
        for run, closed in scheme.parts:
            seq = [pts[i] for i in run] + ([pts[run[0]]] if closed else [])
            pen.line(seq, fill="#ffffff", width=line)
        for i, (x, y) in enumerate(pts):
            colour = _COLOURS_5[i] if len(pts) == 5 else "#ff3b30"
            pen.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline="#000000")
    return out
