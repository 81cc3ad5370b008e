"""Face box -> crop region, and points between image pixels and crop units: the one place.

Training (:func:`tcnn.train.data.augment.make_crops`), inference
(:meth:`tcnn.predictor.LandmarkDetector.landmarks_batch`) and evaluation (which predicts through
the latter) all convert with these functions, so they cannot disagree.

Conventions:
    * Image points are continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)``, so the
      centre of the top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib indices.
    * A crop region is a :class:`~tcnn.types.Box` in the same coordinates; the model sees it
      resized to ``S x S`` (:func:`tcnn.imaging.crop_resize`, which samples in the same
      convention: output pixel ``j`` covers ``[j, j + 1) * width / S`` of the region).
    * Crop units run from 0 to 1 across the region: ``(0, 0)`` is the region's top-left corner,
      ``(1, 1)`` its bottom-right corner, and crop pixel ``j``'s centre is ``(j + 0.5) / S``.
      The networks output crop units; training targets are crop units minus 0.5 (centred).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcnn.types import Box


@dataclass(frozen=True)
class Crop:
    """How a model's input crop is cut from a face box: a model card's ``crop`` entry.

    Attributes:
        scale: the crop's side over the box's side (the box is scaled about its centre).
        shift_y: the crop centre's downward shift, in box heights.
        rule: the rule in words.
        antialias: resize with an antialiasing filter (PIL's bilinear); ``False``: sample each
            crop pixel bilinearly and round, as OpenCV's ``cv2.resize`` does (the seed's
            pipeline).
        clip: cut the crop region to the image first (the seed's pipeline): a box that crosses
            the image's edge gives a crop of its part inside the image, stretched to S x S, and
            the points map back through that part (:func:`clip_region`). ``False``: the parts
            outside are black. A card holds the key only when it is set.
    """

    scale: float
    shift_y: float = 0.0
    rule: str = "face box scaled about its centre, resized to S x S"
    antialias: bool = True
    clip: bool = False

    def region(self, box: Box, image_size: tuple[int, ...] | None = None) -> Box:
        """The image region the model sees for ``box``, in continuous pixels.

        Args:
            image_size: the image's ``(height, width, ...)``; a crop with ``clip`` cuts the
                region to it (without it, the region is not cut).
        """
        region = crop_region(box, self.scale, self.shift_y)
        if self.clip and image_size is not None:
            region = clip_region(region, image_size[0], image_size[1])
        return region


def crop_region(box: Box, scale: float = 1.0, shift_y: float = 0.0) -> Box:
    """The image region a model sees for a face box.

    Args:
        box: the face box in continuous pixels.
        scale: region size relative to the box (1.0 = the box itself).
        shift_y: downward shift of the region centre, as a fraction of the box height.
    """
    cx, cy = box.center
    cy += shift_y * box.height
    hw, hh = box.width * scale / 2, box.height * scale / 2
    return Box(cx - hw, cy - hh, cx + hw, cy + hh)


def clip_region(region: Box, height: int, width: int) -> Box:
    """The part of ``region`` inside a ``height x width`` image (the seed's crop rule).

    The seed's pipeline crops a dlib box's pixels that lie in the image and stretches them to
    the model's input, so points also map back through this part (:func:`from_crop`).
    """
    return Box(
        max(region.left, 0.0),
        max(region.top, 0.0),
        min(region.right, float(width)),
        min(region.bottom, float(height)),
    )


def _origin_size(regions: Box | Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
    """Regions' top-left corners and sizes, float32, shaped to broadcast over points."""
    if isinstance(regions, Box):
        return (
            np.array([regions.left, regions.top], np.float32),
            np.array([regions.width, regions.height], np.float32),
        )
    rows = np.array([(r.left, r.top, r.width, r.height) for r in regions], np.float32)
    rows = rows.reshape(-1, 1, 4)
    return rows[..., :2], rows[..., 2:]


def to_crop(points: np.ndarray, regions: Box | Sequence[Box]) -> np.ndarray:
    """Image points to crop units of their regions.

    Args:
        points: ``[K, 2]`` continuous pixels with one region, or ``[N, K, 2]`` with N regions.
        regions: a :class:`Box`, or one per face.

    Returns:
        Crop units (0-1 across each region), the shape of ``points``.
    """
    origin, size = _origin_size(regions)
    out: np.ndarray = (points - origin) / size
    return out


def from_crop(
    units: np.ndarray,
    regions: Box | Sequence[Box],
    pixel_offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Crop units back to image points: the inverse of :func:`to_crop`.

    Args:
        units: ``[K, 2]`` crop units with one region, or ``[N, K, 2]`` with N regions.
        regions: a :class:`Box`, or one per face.
        pixel_offset: ``(dx, dy)`` pixels added to every point afterwards: a model card's
            ``pixel_offset`` (0.5 for the seed's model, whose outputs are 0-based pixel
            indices; 0 for tcnn's).

    Returns:
        float32 continuous pixel coordinates, the shape of ``units``.
    """
    origin, size = _origin_size(regions)
    points = np.asarray(units * size + origin, dtype=np.float32)
    if pixel_offset != (0.0, 0.0):
        points = points + np.array(pixel_offset, np.float32)
    return points
