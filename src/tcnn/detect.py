"""Face detectors behind one small protocol, chosen by name and imported lazily.

Each adapter owns its box convention and returns boxes as :class:`~tcnn.types.Box` in
continuous pixel coordinates.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tcnn.errors import TcnnError
from tcnn.retina import DEFAULT_THRESHOLD as RETINA_THRESHOLD
from tcnn.retina import RetinaFace, RetinaFaceInt8
from tcnn.types import Box


class FaceDetector(Protocol):
    """Finds faces: ``detector(image) -> [(box, score), ...]`` for an ``[H, W, 3]`` uint8 RGB."""

    name: str

    def __call__(self, image: np.ndarray) -> list[tuple[Box, float]]: ...


#: Most pixels a face detector scans in one image, after upsampling (about 6,300 x 6,300).
MAX_DETECT_PIXELS = 40_000_000


def auto_upsample(height: int, width: int, limit: int = 1024) -> int:
    """How many times to double the image so small faces are found (0-2).

    The upsampled image's longer side stays at most ``limit`` pixels.
    """
    n, side = 0, max(height, width)
    while n < 2 and side * 2 ** (n + 1) <= limit:
        n += 1
    return n


@dataclass(frozen=True)
class BoxMap:
    """A measured mapping of one detector's boxes onto another's convention.

    The centre moves by ``shift`` box widths (x, y); the width grows by ``grow[0]`` and the
    height by ``grow[1]`` (dlib's boxes are square, RetinaFace's taller than wide).
    """

    shift: tuple[float, float]
    grow: tuple[float, float]

    def __call__(self, box: Box) -> Box:
        w = box.width
        cx, cy = box.center
        cx, cy = cx + self.shift[0] * w, cy + self.shift[1] * w
        hw, hh = box.width * self.grow[0] / 2, box.height * self.grow[1] / 2
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def inverse(self) -> BoxMap:
        """The mapping back: ``m.inverse()(m(box)) == box``."""
        gx, gy = self.grow
        return BoxMap((-self.shift[0] / gx, -self.shift[1] / gx), (1.0 / gx, 1.0 / gy))


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise TcnnError(
            "the dlib face detector needs the package 'dlib-bin' (pip install dlib-bin)"
        ) from None
    return dlib


class DlibHog:
    """dlib's HOG frontal face detector (the seed paper's detector).

    dlib rectangles hold inclusive pixel indices; a box is ``(left, top, right + 1, bottom + 1)``.

    Args:
        upsample: times to double the image before detecting; ``None`` picks by image size.
        threshold: detection score threshold (dlib's default is 0).
    """

    name = "dlib"

    def __init__(self, upsample: int | None = None, threshold: float | None = None) -> None:
        self._detector = _import_dlib().get_frontal_face_detector()
        self.upsample = upsample
        self.threshold = 0.0 if threshold is None else threshold

    def __call__(self, image: np.ndarray) -> list[tuple[Box, float]]:
        up = self.upsample if self.upsample is not None else auto_upsample(*image.shape[:2])
        rects, scores, _ = self._detector.run(image, up, self.threshold)
        return [(_dlib_box(r), float(s)) for r, s in zip(rects, scores)]


def _dlib_box(rect: Any) -> Box:
    """A dlib rectangle (inclusive pixel indices) as a box in continuous pixels."""
    return Box(float(rect.left()), float(rect.top()), rect.right() + 1.0, rect.bottom() + 1.0)


def dlib_models_dir() -> str:
    """The folder of dlib model files shipped by ``face-recognition-models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise TcnnError(
            "dlib's model files need the package 'face-recognition-models' "
            "(pip install face-recognition-models)"
        )
    return os.path.join(os.path.dirname(spec.origin), "models")


#: dlib's CNN boxes -> dlib HOG's convention (the boxes the landmark models were trained on):
#: its boxes sit higher, further left and are smaller than HOG's. The median relations measured
#: on 150 ytf68 training faces both detectors found.
DLIB_CNN_TO_HOG = BoxMap((0.052, 0.072), (1.087, 1.087))


class DlibCnn:
    """dlib's MMOD CNN face detector (more poses, slower).

    Its boxes are mapped to the HOG convention by :data:`DLIB_CNN_TO_HOG`.
    """

    name = "dlib-cnn"

    def __init__(self, upsample: int | None = None, threshold: float | None = None) -> None:
        dlib = _import_dlib()
        path = os.path.join(dlib_models_dir(), "mmod_human_face_detector.dat")
        self._detector = dlib.cnn_face_detection_model_v1(path)
        self.upsample = upsample
        self.threshold = 0.0 if threshold is None else threshold

    def __call__(self, image: np.ndarray) -> list[tuple[Box, float]]:
        up = self.upsample if self.upsample is not None else auto_upsample(*image.shape[:2])
        return [
            (DLIB_CNN_TO_HOG(_dlib_box(d.rect)), float(d.confidence))
            for d in self._detector(image, up)
            if d.confidence >= self.threshold
        ]


#: RetinaFace boxes -> dlib HOG's convention: the medians on the 9,745 mtfl-train faces both
#: detectors find, measured by ``benchmarks/studies/box_mapping.py`` (on held-out training faces the
#: median IoU with HOG's box goes from 0.72 unmapped to 0.79 mapped).
RETINA_TO_HOG = BoxMap((-0.0138, 0.0627), (1.123, 0.845))

#: Box conventions: the detector whose boxes each detector's output follows (dlib-cnn's boxes
#: are mapped to HOG's inside its adapter).
CONVENTION = {
    "retinaface": "retinaface",
    "retinaface-int8": "retinaface",
    "dlib": "dlib",
    "dlib-cnn": "dlib",
}
BOX_MAPS = {("retinaface", "dlib"): RETINA_TO_HOG, ("dlib", "retinaface"): RETINA_TO_HOG.inverse()}


def box_map(detector: str, model_detector: str) -> BoxMap | None:
    """The mapping of ``detector``'s boxes onto the boxes a model was trained on (or ``None``).

    Raises:
        TcnnError: when the two conventions differ and no mapping was measured.
    """
    a, b = CONVENTION.get(detector, detector), CONVENTION.get(model_detector, model_detector)
    if a == b:
        return None
    try:
        return BOX_MAPS[(a, b)]
    except KeyError:
        raise TcnnError(
            f"no measured box mapping from the {detector} detector to the {model_detector} "
            "boxes this model was trained on"
        ) from None


DETECTORS: dict[str, type] = {
    "retinaface": RetinaFace,
    "retinaface-int8": RetinaFaceInt8,
    "dlib": DlibHog,
    "dlib-cnn": DlibCnn,
}


def check_face_detector(name: str) -> str:
    """``name`` once it names a face detector (a key of ``DETECTORS``).

    Raises:
        TcnnError: ``unknown face detector 'NAME' (known: dlib, dlib-cnn, retinaface,
            retinaface-int8)``.
    """
    if name not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise TcnnError(f"unknown face detector {name!r} (known: {known})")
    return name


def renamed_face_detector(face_detector: str | None, detector: str | None, call: str) -> str | None:
    """The face detector's name given to ``call`` as ``face_detector``, or under its former
    keyword ``detector`` (a ``DeprecationWarning`` naming ``call``).

    Raises:
        TcnnError: both keywords given, with different names.
    """
    if detector is None:
        return face_detector
    warnings.warn(
        f"{call}(detector=...) is deprecated: use face_detector=...",
        DeprecationWarning,
        stacklevel=3,
    )
    if face_detector is not None and face_detector != detector:
        raise TcnnError("give face_detector only (detector is its former name)")
    return detector


#: The score threshold ``LandmarkDetector`` uses when none is given: dlib's weakest detections
#: (below 0.3) are mostly not faces; RetinaFace's is chosen by measurement (``tcnn.retina``).
USER_THRESHOLDS = {
    "retinaface": RETINA_THRESHOLD,
    "retinaface-int8": RETINA_THRESHOLD,
    "dlib": 0.3,
    "dlib-cnn": 0.3,
}


def make_detector(
    name: str,
    upsample: int | None = None,
    threshold: float | None = None,
    threads: int | None = None,
) -> FaceDetector:
    """Build the face detector called ``name`` (see ``DETECTORS``).

    Args:
        upsample: times to double the image first; ``None`` picks by image size.
        threshold: drop detections scoring below this; ``None``: the detector's own default
            (0 for dlib's detectors, ``tcnn.retina.DEFAULT_THRESHOLD`` for RetinaFace).
        threads: RetinaFace's ONNX Runtime intra-op threads (``None``: ONNX Runtime's default,
            one per physical core); dlib's detectors run on the calling thread and ignore it.
    """
    cls = DETECTORS[check_face_detector(name)]
    extra = {"threads": threads} if issubclass(cls, RetinaFace) else {}
    detector: FaceDetector = cls(upsample=upsample, threshold=threshold, **extra)
    return detector
