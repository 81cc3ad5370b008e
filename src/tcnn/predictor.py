"""The public object: an image (and optional face boxes) in, a list of faces out."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tcnn.codec import from_crop
from tcnn.detect import (
    MAX_DETECT_PIXELS,
    USER_THRESHOLDS,
    FaceDetector,
    box_map,
    check_face_detector,
    make_detector,
    renamed_face_detector,
)
from tcnn.errors import TcnnError
from tcnn.imaging import ImageLike, crop_batch, load_image, load_image_reduced
from tcnn.registry import Model, load_model
from tcnn.retina import RetinaFace
from tcnn.types import Box, Face

BoxLike = Box | Sequence[float]

#: Faces per network call in large batches (the next chunks are cropped meanwhile). Small
#: chunks keep a call's activations in the core's cache: the single-threaded network's CPU
#: time per face on MTFL crops (vanilla5, loaded machine) was 347 us at 4 faces a call, 357 at
#: 8, 369 at 16, 435 at 32 and 505 at 64; a call's fixed cost is about 20 us.
CHUNK = 8


class LandmarkDetector:
    """Finds faces and places landmarks on them.

    Args:
        model: a shipped model name (see ``tcnn models``), an ``.onnx`` path, or ``None`` for
            the default model with ``points`` points.
        points: 5 or 68; used when ``model`` is ``None``.
        face_detector: the face detector's name (``"retinaface"``; ``"dlib"``: HOG;
            ``"dlib-cnn"``), or ``None`` for the one the model card names (its
            ``default_detector``, else the detector whose boxes it was trained on). The
            attribute ``face_detector`` holds the name chosen; :meth:`face_finder` is the built
            detector (one per thread).
        upsample: the face detector's upsampling (0-4); ``None`` picks by image size.
        threshold: the face detector's score threshold; ``None``: RetinaFace's measured 0.8
            (``tcnn.retina.DEFAULT_THRESHOLD``), 0.3 for dlib's detectors (it drops their
            weakest detections, which are mostly not faces; dlib's own default is 0).
        threads: the landmark network's threads (``None``: all cores): ONNX Runtime's
            threads for up to ``CHUNK`` faces, and for more the threads that run chunks of
            them side by side, each on a single-threaded session. A caller that runs several
            detections at once (a server's pool, worker processes) gives 1, so that its
            threads times these stay within the cores.
        detector_threads: the face detector's ONNX Runtime threads (RetinaFace; ``None``: the
            same as ``threads``). With both at 1 each network runs on the thread that calls it
            (no thread pool), which is what a batch worker holding one core wants.
        refine: place each face twice and average the two answers: once from the detector's
            box, once from the box the first answer implies (the model card's
            ``box_from_landmarks``, the median relation of the training boxes to the training
            landmarks). Twice the landmark stage's time for a more precise answer (see the
            "Refine" section of docs/results.md for the measured gain). A staggered model
            (its card's ``staggered_mirror``: the 68-point default) places each face twice
            even without it, at no extra cost: as it is in the detector's box, then mirrored
            in the box that answer implies (each pass one view of its mirror average); with
            ``refine`` each of the two places gets both views.
        detector: the former name of ``face_detector``; deprecated (a ``DeprecationWarning``),
            to be removed in the next release.

    Landmarks and boxes are in continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)``,
    so the centre of the top-left pixel is ``(0.5, 0.5)``; subtract 0.5 for OpenCV/dlib pixel
    indices. Safe to share between threads (each thread gets its own face detector).

    Example:
        >>> detector = LandmarkDetector()
        >>> faces = detector.detect("photo.jpg")
        >>> faces[0].landmarks  # [5, 2] float32, image pixels
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        points: int = 5,
        face_detector: str | None = None,
        upsample: int | None = None,
        threshold: float | None = None,
        threads: int | None = None,
        detector_threads: int | None = None,
        refine: bool = False,
        *,
        detector: str | None = None,
    ) -> None:
        face_detector = renamed_face_detector(face_detector, detector, "LandmarkDetector")
        if face_detector is not None:
            check_face_detector(face_detector)
        if upsample is not None and not 0 <= upsample <= 4:
            raise TcnnError(f"upsample {upsample}: must be 0 to 4 (or None to pick by size)")
        if threshold is not None and not np.isfinite(threshold):
            raise TcnnError(f"threshold {threshold}: must be a finite number")
        for what, n in (("threads", threads), ("detector_threads", detector_threads)):
            if n is not None and n < 1:
                raise TcnnError(f"{what} {n}: must be at least 1 (or None for all cores)")
        self.model: Model = load_model(model, points, threads)
        if refine and self.model.card.box_from_landmarks is None:
            raise TcnnError(
                f"model {self.model.card.name}: its card has no box_from_landmarks, which "
                "refine needs to place the second crop"
            )
        self.refine = refine
        card = self.model.card
        #: The face detector's name (``"retinaface"``, ``"dlib"`` or ``"dlib-cnn"``).
        self.face_detector: str = face_detector or card.default_detector or card.detector
        self.upsample = upsample
        self.detector_threads = threads if detector_threads is None else detector_threads
        self.threshold: float = (
            USER_THRESHOLDS.get(self.face_detector, 0.0) if threshold is None else threshold
        )
        #: Maps the detector's boxes onto the boxes the model was trained on (``None``: same).
        self.box_map = box_map(self.face_detector, self.model.card.detector)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def detector_name(self) -> str:
        """The former name of :attr:`face_detector` (the face detector's name); deprecated."""
        warnings.warn(
            "LandmarkDetector.detector_name is deprecated: use face_detector (the name)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.face_detector

    def face_finder(self) -> FaceDetector:
        """This thread's face detector (:attr:`face_detector` built), made on first use, so
        that box-only users never import dlib.

        dlib's detectors must not be shared between threads, so each thread has its own.
        """
        det: FaceDetector | None = getattr(self._local, "detector", None)
        if det is None:
            det = make_detector(
                self.face_detector, self.upsample, self.threshold, self.detector_threads
            )
            self._local.detector = det
        return det

    def find_faces(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes and scores in an ``[H, W, 3]`` uint8 RGB image, best first.

        The boxes follow the model's box convention (``box_map`` applied).

        Raises:
            TcnnError: when the upsampled image would exceed ``MAX_DETECT_PIXELS``.
        """
        if self.upsample is not None:
            h, w = rgb.shape[:2]
            scanned = w * h * 4**self.upsample
            if scanned > MAX_DETECT_PIXELS:
                raise TcnnError(
                    f"upsample {self.upsample} on a {w}x{h} image would scan "
                    f"{scanned / 1e6:.0f} megapixels (limit {MAX_DETECT_PIXELS / 1e6:.0f}): "
                    "use a smaller upsample, or leave it unset to pick by size"
                )
        found = self.face_finder()(rgb)
        return [(self.model_box(b), s) for b, s in found]

    def model_box(self, box: Box) -> Box:
        """A box of this detector mapped onto the boxes the model was trained on."""
        return box if self.box_map is None else self.box_map(box)

    def face_boxes(
        self, rgb: np.ndarray, boxes: Sequence[BoxLike] | None = None
    ) -> list[tuple[Box, float]]:
        """The faces to place in an ``[H, W, 3]`` uint8 RGB image, with their scores.

        Args:
            boxes: the caller's face boxes, checked against the image (:func:`as_box`; scores
                NaN); ``None``: the faces the face detector finds (:meth:`find_faces`).

        Raises:
            TcnnError: a bad box, or an image too large for the detector's upsampling.
        """
        if boxes is None:
            return self.find_faces(rgb)
        return [(as_box(b, rgb.shape), float("nan")) for b in boxes]

    def detect(self, image: ImageLike, boxes: Sequence[BoxLike] | None = None) -> list[Face]:
        """Landmarks of every face in ``image``.

        Args:
            image: a path, a PIL image, or an RGB numpy array (``[H, W, 3]`` uint8).
            boxes: face boxes ``(left, top, right, bottom)`` in continuous pixels (a dlib
                rectangle is ``(left, top, right + 1, bottom + 1)``: see ``Box.from_dlib`` and
                ``Box.from_xywh``); skips face detection.

        Returns:
            One :class:`Face` per face, in detection order; empty when there is none.
        """
        if boxes is None and isinstance(image, (str, os.PathLike)):
            return self._detect_file(image)
        rgb = load_image(image)
        found = self.face_boxes(rgb, boxes)
        if not found:
            return []
        landmarks = self.landmarks(rgb, [b for b, _ in found])
        return [Face(b, s, p) for (b, s), p in zip(found, landmarks)]

    def _detect_file(self, path: str | os.PathLike[str]) -> list[Face]:
        """:meth:`detect` of an image file, a JPEG decoded at a reduced size when that is enough.

        With RetinaFace's size rule the file is decoded at the smallest size (PIL's ``draft``)
        that keeps both the scan's resolution and the smallest face it looks for at least the
        model's crop size; faces are found and placed on that image and mapped back.
        """
        det = self.face_finder()
        if not isinstance(det, RetinaFace) or det.upsample is not None:
            rgb = load_image(path)
            return self.detect(rgb)
        from PIL import Image

        from tcnn.imaging import check_file

        try:
            with Image.open(check_file(path, "an image")) as probe:
                w, h = probe.size
        except Exception:  # load_image below raises the one-line error
            return self.detect(load_image(path))
        side = max(w, h)
        scale = det.scale_for(h, w)
        card = self.model.card
        face_crop = det.smallest_face(side) * card.crop.scale / card.input_size
        limit = min(1 / scale, face_crop)  # the largest reduction both allow
        if limit < 2:
            return self.detect(load_image(path))
        rgb, r = load_image_reduced(path, int(np.ceil(side / limit)))
        if r == 1:
            return self.detect(rgb)
        found = [(self.model_box(b), s) for b, s in
                 [(d.box, d.score) for d in det.detect(rgb, scale * r)]]  # fmt: skip
        if not found:
            return []
        landmarks = self.landmarks(rgb, [b for b, _ in found]) * r
        return [
            Face(Box(*(v * r for v in b.as_tuple())), s, p) for (b, s), p in zip(found, landmarks)
        ]

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Landmarks for known boxes in an ``[H, W, 3]`` uint8 RGB image, in one batch.

        Returns:
            ``[N, K, 2]`` float32 in image pixels.
        """
        return self.landmarks_batch([(rgb, b) for b in boxes])

    def landmarks_batch(self, items: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """Landmarks for ``(image, box)`` pairs from any number of images, in one batch.

        Large batches run in chunks of ``CHUNK`` faces (twice as many for a staggered model,
        whose passes see each crop once): the calling thread crops them one
        after the other while ``model.bulk_workers`` threads place the chunks cropped so far
        (each on one core: :meth:`Model.predict` with ``bulk``). With ``refine``, or a
        staggered model, each chunk's worker then places its faces again from their first
        answers (see the class), so that the second pass needs no wait for the whole batch.

        Returns:
            ``[N, K, 2]`` float32 in image pixels.
        """
        # A staggered pass sees each crop once, not twice: twice the faces for the same work
        # a call (at CHUNK faces its stage ran 979 faces/s at batch 256, at 2 x CHUNK 1,065).
        chunk = CHUNK * (2 if self.model.card.staggered_mirror and not self.refine else 1)
        if len(items) <= chunk:
            return self._place(items, self._cut(items, [b for _, b in items]), False)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.model.bulk_workers, thread_name_prefix="tcnn")
        runs = []
        for i in range(0, len(items), chunk):
            part = items[i : i + chunk]
            cut = self._cut(part, [b for _, b in part])
            runs.append(self._pool.submit(self._place, part, cut, True))
        return np.concatenate([r.result() for r in runs])

    def _place(
        self,
        items: Sequence[tuple[np.ndarray, Box]],
        cut: tuple[list[Box], np.ndarray],
        bulk: bool,
    ) -> np.ndarray:
        """The landmarks of ``items``' faces, whose crops from their boxes ``cut`` holds
        (:meth:`_cut`): one pass of the network, or two with ``refine`` or a staggered model
        (the second from the box the first answer implies)."""
        card = self.model.card
        relation = card.box_from_landmarks
        staggered = card.staggered_mirror and not self.refine
        points = self._pass(cut, "plain" if staggered else "both", bulk)
        if (self.refine or staggered) and relation is not None and len(items):
            moved = [implied_box(p, b, relation) for p, (_, b) in zip(points, items)]
            second = self._pass(self._cut(items, moved), "mirrored" if staggered else "both", bulk)
            points = (points + second) / 2
        return points

    def _pass(self, cut: tuple[list[Box], np.ndarray], view: str, bulk: bool) -> np.ndarray:
        """One pass of the network over cut crops, seen as :meth:`Model.predict`'s ``view``
        says, mapped back to image pixels."""
        regions, crops = cut
        units = self.model.predict(crops, bulk, view)
        return from_crop(units, regions, self.model.card.pixel_offset)

    def _cut(
        self, items: Sequence[tuple[np.ndarray, Box]], boxes: Sequence[Box]
    ) -> tuple[list[Box], np.ndarray]:
        """The crop regions of ``boxes`` in ``items``' images, and the crops."""
        card = self.model.card
        regions = [card.crop.region(b, img.shape) for (img, _), b in zip(items, boxes)]
        return regions, self._crops([(img, r) for (img, _), r in zip(items, regions)])

    def _crops(self, pairs: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """``[N, S, S, 3]`` uint8 crops of ``(image, region)`` pairs."""
        return crop_batch(pairs, self.model.input_size, self.model.card.crop.antialias)


def implied_box(points: np.ndarray, box: Box, relation: tuple[float, float, float]) -> Box:
    """The box that ``points`` imply (``relation``: a card's ``box_from_landmarks``), or
    ``box`` itself when the points are degenerate (under a pixel apart, or not finite)."""
    placed = Box.from_landmarks(points, relation)
    if not all(np.isfinite(placed.as_tuple())) or placed.width < 1:
        return box
    return placed


def as_box(box: BoxLike, shape: tuple[int, ...]) -> Box:
    """Check a caller's face box against an image of ``shape``; one-line errors."""
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
