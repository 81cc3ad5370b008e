"""Small result types shared by the whole package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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

    @classmethod
    def from_dlib(cls, rect: Any) -> Box:
        """A dlib rectangle (inclusive pixel indices), or its ``(left, top, right, bottom)``.

        dlib's ``rectangle(l, t, r, b)`` covers pixels ``l..r``, so its box is
        ``(l, t, r + 1, b + 1)``.
        """
        if hasattr(rect, "left"):
            values = (rect.left(), rect.top(), rect.right(), rect.bottom())
        else:
            values = tuple(rect)
        left, top, right, bottom = (float(v) for v in values)
        return cls(left, top, right + 1.0, bottom + 1.0)

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """An OpenCV rectangle ``(x, y, w, h)``: pixels ``x .. x + w - 1`` across."""
        return cls(float(x), float(y), float(x) + float(w), float(y) + float(h))

    @classmethod
    def from_landmarks(cls, points: np.ndarray, relation: Sequence[float] | np.ndarray) -> Box:
        """The face box a detector would give for a face with these landmarks.

        Args:
            points: ``[K, 2]`` landmarks in continuous pixels (``NaN`` points, without a
                location, are left out).
            relation: ``(dx, dy, size)``: the box centre sits ``(dx, dy)`` times the landmarks'
                extent (the longer side of their bounding box) from the centre of that bounding
                box, and the box side is ``size`` times the extent. A model card's
                ``box_from_landmarks`` holds the median relation measured on its training faces.
        """
        dx, dy, size = (float(v) for v in relation)
        (x0, y0), (x1, y1) = _bounds(points)
        extent = float(max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2 + dx * extent, (y0 + y1) / 2 + dy * extent
        half = size * extent / 2
        return cls(float(cx - half), float(cy - half), float(cx + half), float(cy + half))

    def landmark_relation(self, points: np.ndarray) -> tuple[float, float, float]:
        """The ``(dx, dy, size)`` relation of this box to ``[K, 2]`` landmarks (see above)."""
        (x0, y0), (x1, y1) = _bounds(points)
        extent = float(max(x1 - x0, y1 - y0))
        bx, by = self.center
        return (
            (bx - (x0 + x1) / 2) / extent,
            (by - (y0 + y1) / 2) / extent,
            self.width / extent,
        )


def _bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x, y)`` minimum and maximum of ``[K, 2]`` points, ``NaN`` points left out (all
    ``NaN``: ``NaN`` bounds, without numpy's all-NaN warning)."""
    if not np.isfinite(points).any():
        nan = np.full(2, np.nan)
        return nan, nan
    return np.nanmin(points, 0), np.nanmax(points, 0)


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in an image.

    Attributes:
        box: the face box the landmarks were placed from.
        score: the face detector's confidence; ``nan`` when the box was given by the caller.
        landmarks: ``[K, 2]`` float32, ``(x, y)`` in continuous pixel coordinates: pixel ``i``
            covers ``[i, i + 1)``, so the centre of the top-left pixel is ``(0.5, 0.5)``.
            Subtract 0.5 for OpenCV/dlib pixel indices (``to_dict(pixel_centers=True)``).
    """

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False)

    def to_dict(self, pixel_centers: bool = False) -> dict[str, object]:
        """``box``, ``score`` and ``landmarks`` as JSON-ready lists (2 decimals).

        Args:
            pixel_centers: landmarks as OpenCV/dlib pixel indices (continuous value - 0.5);
                the box stays in continuous coordinates.
        """
        shift = 0.5 if pixel_centers else 0.0
        return {
            "box": [round(v, 2) for v in self.box.as_tuple()],
            "score": None if np.isnan(self.score) else round(float(self.score), 4),
            "landmarks": [
                [round(float(x) - shift, 2), round(float(y) - shift, 2)] for x, y in self.landmarks
            ],
        }
