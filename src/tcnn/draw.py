"""Landmarks drawn on an image.

Landmarks and boxes are continuous pixel coordinates (pixel ``i`` covers ``[i, i + 1)``); PIL
draws whole pixels at indices (its ``(i, j)`` is the pixel whose centre is
``(i + 0.5, j + 0.5)``). So a point is drawn centred on the pixel that holds it
(``floor(x), floor(y)``: a landmark at ``(i + 0.5, j + 0.5)`` is drawn centred on pixel
``(i, j)``, at most half a pixel from its true place and never biased), and a box on the pixels
that lie mostly inside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tcnn.schemes import scheme_for
from tcnn.types import Box, Face

_COLOURS_5 = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#bf5af2")


def pil_box(box: Box) -> tuple[int, int, int, int]:
    """A continuous-pixel box as PIL's inclusive pixel indices ``(x0, y0, x1, y1)``.

    ``Box(l, t, r, b)`` with whole-pixel edges covers pixels ``l .. r - 1`` across and
    ``t .. b - 1`` down; fractional edges round to the pixels mostly inside.
    """
    return (round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)


def pil_point(x: float, y: float) -> tuple[int, int]:
    """The PIL pixel index that holds the continuous point ``(x, y)``."""
    return math.floor(x), math.floor(y)


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> Image.Image:
    """An RGB copy of ``image`` with each face's box, points and (68 points) part outlines."""
    out = Image.fromarray(image).convert("RGB")
    pen = ImageDraw.Draw(out)
    for face in faces:
        size = max(face.box.width, face.box.height)
        r = max(1, round(size / 60))  # dots are 2r + 1 pixels across, centred on a pixel
        line = max(1, round(size / 120))
        pen.rectangle(pil_box(face.box), outline="#00e5ff", width=line)
        pts = [pil_point(float(x), float(y)) for x, y in face.landmarks]
        scheme = scheme_for(len(pts))
        for run, closed in scheme.parts:
            seq = [pts[i] for i in run] + ([pts[run[0]]] if closed else [])
            pen.line(seq, fill="#ffffff", width=line)
        for i, (x, y) in enumerate(pts):
            colour = _COLOURS_5[i] if len(pts) == 5 else "#ff3b30"
            pen.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline="#000000")
    return out
