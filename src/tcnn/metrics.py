"""Pure metric functions on arrays (no I/O).

A ground-truth point without a location is ``NaN`` (aflw68's self-occluded points): it is never
scored, and the normalising distance is taken over the located points of its groups.
"""

from __future__ import annotations

import numpy as np

from tcnn.errors import TcnnError
from tcnn.schemes import Scheme


def normalising_distance(
    gt: np.ndarray, scheme: Scheme, normaliser: str | None = None
) -> np.ndarray:
    """Per-face normalising distance.

    Args:
        gt: ``[N, K, 2]`` ground-truth landmarks in pixels.
        scheme: the landmark scheme (its ``normalisers`` table names the points).
        normaliser: a key of ``scheme.normalisers``; the scheme's default when ``None``.

    Returns:
        ``[N]`` distances in pixels (``NaN`` for a face with a whole group unlocated).

    Raises:
        TcnnError: ``normaliser`` is not a key of ``scheme.normalisers``.
    """
    key = normaliser or scheme.default_normaliser
    try:
        a, b = scheme.normalisers[key]
    except KeyError:
        known = ", ".join(scheme.normalisers)
        raise TcnnError(f"unknown normaliser {key!r} for {scheme.name} (known: {known})") from None
    pa = _located_mean(gt[:, list(a)])
    pb = _located_mean(gt[:, list(b)])
    return np.linalg.norm(pa - pb, axis=-1)


def _located_mean(points: np.ndarray) -> np.ndarray:
    """Mean of ``[N, G, 2]`` points over G, leaving ``NaN`` points out (``NaN`` if all are)."""
    located = np.isfinite(points).all(axis=-1, keepdims=True)
    count = located.sum(axis=1)
    total = np.where(located, points, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def scored(gt: np.ndarray) -> np.ndarray:
    """``[N, K]`` bool: the ground-truth points that have a location (are not ``NaN``)."""
    return np.isfinite(gt).all(axis=-1)


def point_errors(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Each point's distance over its face's normaliser: ``[N, K]`` fractions.

    Args:
        pred, gt: ``[N, K, 2]`` in pixels.
        norm: ``[N]`` normalising distances in pixels.

    Returns:
        ``[N, K]``; ``NaN`` where the ground truth has no location.
    """
    return np.linalg.norm(pred - gt, axis=-1) / np.asarray(norm)[:, None]


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``[N, K]`` values over the points where ``mask`` ``[N, K]`` is true, per face.

    Returns:
        ``[N]``; ``NaN`` for a face with no point in the mask.
    """
    count = mask.sum(axis=-1)
    total = np.where(mask, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def nme(
    pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Normalised mean error of each face, over its scored points.

    Args:
        pred, gt: ``[N, K, 2]`` in pixels.
        norm: ``[N]`` normalising distances in pixels.
        mask: ``[N, K]`` bool, the points to score; ``None``: every located ground-truth point
            (:func:`scored`; all of them when ``gt`` has no ``NaN``).

    Returns:
        ``[N]`` mean point distance over ``norm`` (a fraction, not percent); ``NaN`` for a
        face with no scored point.
    """
    keep = scored(gt) if mask is None else np.asarray(mask, bool) & scored(gt)
    return masked_mean(point_errors(pred, gt, norm), keep)


def region_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    norm: np.ndarray,
    regions: dict[str, tuple[int, ...]],
    mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`nme` of each face over each region's points (e.g. jaw, brows, nose, eyes, mouth).

    Args:
        regions: region name -> point indices (``Scheme.regions``).

    Returns:
        region name -> ``[N]`` fractions; ``NaN`` for a face with no scored point in it.
    """
    keep = scored(gt) if mask is None else np.asarray(mask, bool) & scored(gt)
    errors = point_errors(pred, gt, norm)
    out = {}
    for name, idx in regions.items():
        inside = np.zeros(keep.shape[-1], bool)
        inside[list(idx)] = True
        out[name] = masked_mean(errors, keep & inside)
    return out


def failure_rate(errors: np.ndarray, threshold: float) -> float:
    """Share of faces whose error exceeds ``threshold`` (both fractions)."""
    return float(np.mean(errors > threshold)) if len(errors) else float("nan")


def ced(
    errors: np.ndarray, limit: float = 0.10, steps: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: ``(thresholds [steps], share of faces <= each)``."""
    x = np.linspace(0.0, limit, steps)
    e = np.sort(errors)
    y = np.searchsorted(e, x, side="right") / max(len(e), 1)
    return x, y


def auc(errors: np.ndarray, limit: float = 0.10, steps: int = 1001) -> float:
    """Area under the CED curve up to ``limit``, divided by ``limit`` (1 = every error is 0)."""
    x, y = ced(errors, limit, steps)
    return float(np.trapezoid(y, x) / limit)


def summarise(errors: np.ndarray) -> dict[str, float]:
    """Mean, median, failures at 8% and 10%, AUC at 10% (all as fractions)."""
    return {
        "mean": float(np.mean(errors)),
        "median": float(np.median(errors)),
        "failure_8": failure_rate(errors, 0.08),
        "failure_10": failure_rate(errors, 0.10),
        "auc_10": auc(errors, 0.10),
    }
