"""Human 5-point labels correcting a teacher's 68-point pseudo-labels (label fusion).

A teacher model (dlib's 68-point predictor) gives all 68 points but makes errors of its own; a
dataset such as MTFL gives only 5 points, placed by people. Fusion keeps the teacher's shape and
moves it onto the human points:

1. The affine map (least squares, 6 parameters) that takes the teacher's 5 derived points
   (:func:`tcnn.schemes.to_five`: eye centres, nose tip, mouth corners) onto the human 5 points
   is applied to all 68 points: the teacher's scale, shift and shear errors go.
2. What the affine map leaves at each of the 5 points is then removed locally: each eye's six
   points move by that eye's residual (so their mean lands on the human eye centre), the lower
   nose (30-35) by the nose residual, and the mouth (48-67) by a blend of the two corner
   residuals, weighted by where a point sits between the corners (so both corners land on the
   human ones). Jaw, brows and the nose bridge keep the affine map only.

The human points must be in the same pixel convention as the teacher's (apply the label-
convention rule, :mod:`tcnn.train.convention`, to both first).
"""

from __future__ import annotations

import numpy as np

from tcnn.schemes import to_five

_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_LOWER_NOSE = slice(30, 36)
_MOUTH = slice(48, 68)


def affine_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares affine map ``[2, 3]`` taking ``src [K, 2]`` onto ``dst [K, 2]``."""
    a = np.hstack([src, np.ones((len(src), 1))])
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return np.asarray(m.T)


def fuse_five(points68: np.ndarray, five: np.ndarray) -> np.ndarray:
    """The teacher's 68 points ``[68, 2]`` moved onto the human 5 points ``[5, 2]`` (pixels).

    Returns:
        ``[68, 2]`` whose derived 5 points (:func:`tcnn.schemes.to_five`) equal ``five``.
    """
    p = np.asarray(points68, np.float64)
    h = np.asarray(five, np.float64)
    m = affine_fit(to_five(p), h)
    out = p @ m[:, :2].T + m[:, 2]
    r = h - to_five(out)
    out[_LEFT_EYE] += r[0]
    out[_RIGHT_EYE] += r[1]
    out[_LOWER_NOSE] += r[2]
    left, right = out[48].copy(), out[54].copy()
    axis = right - left
    t = np.clip((out[_MOUTH] - left) @ axis / max(float(axis @ axis), 1e-9), 0.0, 1.0)
    out[_MOUTH] += (1.0 - t)[:, None] * r[3] + t[:, None] * r[4]
    return out.astype(np.float32)
