"""The README picture: 5 and 68 landmarks on scikit-image's astronaut (NASA, public domain).

Run: ``python benchmarks/figures/figure_astronaut.py`` (writes docs/astronaut.png).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

from tcnn import LandmarkDetector
from tcnn.draw import draw_faces

OUT = Path(__file__).resolve().parents[2] / "docs" / "astronaut.png"


def main() -> None:
    photo = data.astronaut()
    panels = []
    for points in (5, 68):
        faces = LandmarkDetector(points=points).detect(photo)
        drawn = draw_faces(photo, faces).crop((110, 30, 330, 250))
        panels.append(drawn.resize((400, 400), Image.Resampling.LANCZOS))
    sheet = Image.new("RGB", (800, 400))
    for i, panel in enumerate(panels):
        sheet.paste(panel, (400 * i, 0))
    sheet.save(OUT)
    print(OUT)


if __name__ == "__main__":
    main()
