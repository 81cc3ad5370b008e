"""Small result types shared by the whole package."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face box in image pixels, edges in continuous coordinates.

    Pixel ``i`` covers ``[i, i + 1)``, so a box around the whole of a ``W x H`` image is
    ``Box(0, 0, W, H)``.
    """

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in an image.

    Attributes:
        box: the face box the landmarks were placed from.
        score: the face detector's confidence; ``nan`` when the box was given by the caller.
        landmarks: ``[K, 2]`` float32, ``(x, y)`` in image pixels.
    """

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "box": [round(v, 2) for v in self.box.as_tuple()],
            "score": None if np.isnan(self.score) else round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }
