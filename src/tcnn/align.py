"""Face alignment: warp a face so its 5 landmarks land on a canonical template.

The usual step before face recognition. A 68-point face is first reduced to 5 points
(:func:`tcnn.schemes.to_five`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.imaging import ImageLike, load_image
from tcnn.schemes import to_five

#: Mean 5-point shape of the MTFL training faces in their dlib HOG boxes (box = unit square),
#: made left-right symmetric: eyes, nose tip, mouth corners.
TEMPLATE = np.array(
    [[0.3062, 0.3017], [0.6938, 0.3017], [0.5, 0.537], [0.3318, 0.7211], [0.6682, 0.7211]],
    np.float64,
)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) taking src to dst.

    Args:
        src, dst: ``[K, 2]`` corresponding points.

    Returns:
        ``[2, 3]`` matrix ``A`` with ``dst ~= A @ [x, y, 1]``.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    # complex-number form: d = c * s with c = a + ib minimising |d - c s|^2
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    c = np.vdot(sc, dc) / np.vdot(sc, sc)
    a, b = c.real, c.imag
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def align_face(
    image: ImageLike, landmarks: np.ndarray, size: int = 112, margin: float = 0.0
) -> np.ndarray:
    """Warp ``image`` so the face's landmarks match :data:`TEMPLATE`.

    Args:
        image: what :meth:`tcnn.LandmarkDetector.detect` accepts: a path, a PIL image or an
            RGB numpy array (``[H, W, 3]`` uint8).
        landmarks: ``[5, 2]`` or ``[68, 2]`` in continuous image pixels (``Face.landmarks``).
        size: side of the output square in pixels.
        margin: extra border around the template box, as a fraction of ``size``.

    Returns:
        ``[size, size, 3]`` uint8 RGB, the aligned face.

    Raises:
        TcnnError: ``landmarks`` is not ``[5, 2]`` or ``[68, 2]`` finite numbers, ``size`` or
            ``margin`` is out of range, or the image cannot be read (see
            :func:`tcnn.imaging.load_image`).
    """
    try:
        pts = np.asarray(landmarks, np.float64)
    except (TypeError, ValueError):
        raise TcnnError(
            f"landmarks: expected a [5, 2] or [68, 2] array of numbers, got {_kind(landmarks)}"
        ) from None
    if pts.shape not in ((5, 2), (68, 2)):
        raise TcnnError(
            f"landmarks: expected shape [5, 2] or [68, 2] (Face.landmarks), got {list(pts.shape)}"
        )
    if not np.isfinite(pts).all():
        raise TcnnError("landmarks: not all finite (NaN or infinity)")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise TcnnError(f"size {size!r}: must be a whole number of pixels, at least 1")
    if not 0 <= margin < 0.5:
        raise TcnnError(f"margin {margin!r}: must be in [0, 0.5)")
    if len(pts) == 68:
        pts = to_five(pts)
    target = (TEMPLATE * (1 - 2 * margin) + margin) * size
    # PIL's affine transform maps output pixels to input pixels: fit target -> landmarks.
    inv = similarity(target, pts)
    out = Image.fromarray(load_image(image)).transform(
        (size, size),
        Image.Transform.AFFINE,
        inv.ravel().tolist(),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(out)


def _kind(value: object) -> str:
    """A short description of a value that is not an array of numbers."""
    text = " ".join(repr(value).split())
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"
