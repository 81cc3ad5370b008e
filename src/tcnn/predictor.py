"""The public object: an image (and optional face boxes) in, a list of faces out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tcnn.detect import FaceDetector, make_detector
from tcnn.errors import TcnnError
from tcnn.imaging import ImageLike, crop_region, crop_resize, load_image
from tcnn.models.registry import Model, load_model
from tcnn.types import Box, Face

BoxLike = Box | Sequence[float]

#: Faces per network call in large batches (the next chunk is cropped meanwhile).
CHUNK = 32


class LandmarkDetector:
    """Finds faces and places landmarks on them.

    Args:
        model: a shipped model name (see ``tcnn models``), an ``.onnx`` path, or ``None`` for
            the default model with ``points`` points.
        points: 5 or 68; used when ``model`` is ``None``.
        detector: face detector name (``"dlib"``: HOG, the default; ``"dlib-cnn"``).
        upsample: the face detector's upsampling; ``None`` picks by image size.
        threshold: the face detector's score threshold. 0.3 drops dlib's weakest detections,
            which are mostly not faces (dlib's own default is 0).
        threads: ONNX Runtime threads (``None``: all cores).

    Example:
        >>> detector = LandmarkDetector()
        >>> faces = detector.detect("photo.jpg")
        >>> faces[0].landmarks  # [5, 2] float32, image pixels
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        points: int = 5,
        detector: str = "dlib",
        upsample: int | None = None,
        threshold: float = 0.3,
        threads: int | None = None,
    ) -> None:
        self.model: Model = load_model(model, points, threads)
        self.detector_name = detector
        self.upsample = upsample
        self.threshold = threshold
        self._detector: FaceDetector | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def face_detector(self) -> FaceDetector:
        """The face detector, built on first use (so box-only users never import dlib)."""
        if self._detector is None:
            self._detector = make_detector(self.detector_name, self.upsample, self.threshold)
        return self._detector

    def detect(self, image: ImageLike, boxes: Sequence[BoxLike] | None = None) -> list[Face]:
        """Landmarks of every face in ``image``.

        Args:
            image: a path, a PIL image, or an RGB numpy array (``[H, W, 3]`` uint8).
            boxes: face boxes ``(left, top, right, bottom)`` in pixels; skips face detection.

        Returns:
            One :class:`Face` per face, in detection order; empty when there is none.
        """
        rgb = load_image(image)
        if boxes is None:
            found = self.face_detector(rgb)
        else:
            found = [(_as_box(b, rgb.shape), float("nan")) for b in boxes]
        if not found:
            return []
        landmarks = self.landmarks(rgb, [b for b, _ in found])
        return [Face(b, s, p) for (b, s), p in zip(found, landmarks)]

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Landmarks for known boxes in an ``[H, W, 3]`` uint8 RGB image, in one batch.

        Returns:
            ``[N, K, 2]`` float32 in image pixels.
        """
        return self.landmarks_batch([(rgb, b) for b in boxes])

    def landmarks_batch(self, items: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """Landmarks for ``(image, box)`` pairs from any number of images, in one batch.

        Large batches run in chunks, the network on one chunk while the next is cropped.

        Returns:
            ``[N, K, 2]`` float32 in image pixels.
        """
        m = self.model
        regions = [crop_region(b, m.crop_scale, m.crop_shift_y) for _, b in items]
        crops = [(img, r) for (img, _), r in zip(items, regions)]
        if len(items) <= CHUNK:
            units = m.run(self._crops(crops))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="tcnn")
            runs = [
                self._pool.submit(m.run, self._crops(crops[i : i + CHUNK]), True)
                for i in range(0, len(crops), CHUNK)
            ]
            units = np.concatenate([r.result() for r in runs])
        origin = np.array([[r.left, r.top] for r in regions], np.float32)[:, None]
        size = np.array([[r.width, r.height] for r in regions], np.float32)[:, None]
        return (units * size + origin).astype(np.float32)

    def _crops(self, pairs: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """``[N, S, S, 3]`` uint8 crops of ``(image, region)`` pairs."""
        size = self.model.input_size
        return np.stack([crop_resize(img, r, size) for img, r in pairs])


def _as_box(box: BoxLike, shape: tuple[int, ...]) -> Box:
    if isinstance(box, Box):
        b = box
    else:
        values = list(box)
        if len(values) != 4:
            raise TcnnError(f"face box {values}: expected (left, top, right, bottom)")
        try:
            b = Box(*(float(v) for v in values))
        except (TypeError, ValueError):
            raise TcnnError(f"face box {values}: values must be numbers") from None
    if not all(np.isfinite(b.as_tuple())):
        raise TcnnError(f"face box {b.as_tuple()}: values must be finite")
    if b.width <= 0 or b.height <= 0:
        raise TcnnError(f"face box {b.as_tuple()}: has zero size (right <= left or bottom <= top)")
    h, w = shape[:2]
    if b.right <= 0 or b.bottom <= 0 or b.left >= w or b.top >= h:
        raise TcnnError(f"face box {b.as_tuple()}: lies outside the {w}x{h} image")
    return b
