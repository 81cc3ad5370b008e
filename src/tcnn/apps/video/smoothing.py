"""Landmark smoothing: a One Euro filter (Casiez et al., CHI 2012) per landmark.

A low-pass whose cutoff rises with speed, so a still face is steady and a fast one is not
dragged behind. :class:`~tcnn.apps.video.tracking.LandmarkTracker` runs it on its output only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tcnn.errors import TcnnError


@dataclass(frozen=True)
class Smoothing:
    """One Euro filter settings.

    Attributes:
        min_cutoff: cutoff frequency (Hz) of a still landmark; lower is steadier.
        beta: how fast the cutoff rises with speed, per (face size per second): at a speed of
            ``v`` face sizes per second the cutoff is ``min_cutoff + beta * v`` Hz. Speeds are
            in face sizes (the landmarks' extent), so the setting does not depend on resolution.
        d_cutoff: cutoff frequency (Hz) of the speed estimate.
    """

    min_cutoff: float = 0.2
    beta: float = 100.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise TcnnError(f"smoothing {self}: cutoffs must be positive and beta not negative")


#: The tracker's default settings (tuned on the video benchmark).
DEFAULT_SMOOTHING = Smoothing()


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz, step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """A One Euro filter over ``[K, 2]`` points; per point, the cutoff follows that point's speed.

    Args:
        params: the filter settings.
    """

    def __init__(self, params: Smoothing) -> None:
        self.params = params
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float, scale: float) -> np.ndarray:
        """Filter points ``x`` (``[K, 2]`` pixels) seen at time ``t`` (s).

        Args:
            scale: the face size in pixels, the unit of speed for ``beta``.
        """
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None or t <= self._t:
            if self._x is None or self._dx is None:
                self._x, self._dx = x.copy(), np.zeros_like(x)
                self._t = t
                return x.astype(np.float32)
            t = self._t + 1.0 / 30.0  # repeated or backwards time: assume one frame at 30/s
        dt = t - self._t
        p = self.params
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(p.d_cutoff, dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=1, keepdims=True) / max(scale, 1e-6)
        a = _alpha(p.min_cutoff + p.beta * speed, dt)
        self._x = self._x + a * (x - self._x)
        self._t = t
        return self._x.astype(np.float32)
