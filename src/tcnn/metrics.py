"""Pure metric functions on arrays (no I/O)."""

from __future__ import annotations

import numpy as np

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
        ``[N]`` distances in pixels.
    """
    key = normaliser or scheme.default_normaliser
    try:
        a, b = scheme.normalisers[key]
    except KeyError:
        known = ", ".join(scheme.normalisers)
        raise ValueError(f"unknown normaliser {key!r} for {scheme.name} (known: {known})") from None
    pa = gt[:, list(a)].mean(axis=1)
    pb = gt[:, list(b)].mean(axis=1)
    return np.linalg.norm(pa - pb, axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Normalised mean error of each face.

    Args:
        pred, gt: ``[N, K, 2]`` in pixels.
        norm: ``[N]`` normalising distances in pixels.

    Returns:
        ``[N]`` mean point distance over ``norm`` (a fraction, not percent).
    """
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) / norm


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
