"""The label-convention rule: measure a dataset's pixel-convention offset on training data only.

Landmark datasets disagree on where a pixel's coordinate sits (0- or 1-based indices, a pixel's
corner or its centre), so a dataset's labels can sit a fraction of a pixel off the image
features, the same amount on both axes. A network trained on them learns that offset in crop
units and carries it, scaled, onto every face at every size.

The rule. A network trained with mirror augmentation cannot learn a constant horizontal label
offset: the mirror turns an offset ``+d`` into ``-d``, so the two cancel and the network
predicts the features. Its mean horizontal residual (label - prediction) on its own training
faces, in training-image pixels, therefore measures the labels' offset ``d``. A pixel
convention shifts both axes alike, so the rule moves every training label by ``-d`` on both
axes (in training-image pixels) before the final training. Nothing is added back at export:
the final network predicts the image features, not the dataset's labelling offset. Only
training faces are used; the test set plays no part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tcnn.train.data.datasets import Sample


@dataclass(frozen=True)
class LabelOffset:
    """The labels' offset measured by the rule.

    Attributes:
        shift: ``d``, the mean horizontal residual (label - prediction) in training-image
            pixels: the labels sit ``d`` px right of (and, by the rule, below) the features.
        vertical: the mean vertical residual, reported only (a network can learn a vertical
            offset, so this is not the labels' offset).
        faces: training faces measured.
    """

    shift: float
    vertical: float
    faces: int


def measure_offset(labels: np.ndarray, predictions: np.ndarray) -> LabelOffset:
    """The rule's measurement from a mirror-trained network's training-face predictions.

    Args:
        labels: ``[N, K, 2]`` training labels in training-image pixels.
        predictions: ``[N, K, 2]`` the network's predictions on the same faces, same pixels,
            with nothing added back (no ``correct_offset``).
    """
    residual = (np.asarray(labels, np.float64) - np.asarray(predictions, np.float64)).reshape(-1, 2)
    return LabelOffset(float(residual[:, 0].mean()), float(residual[:, 1].mean()), len(labels))


def shift_labels(samples: Sequence[Sample], shift: float) -> list[Sample]:
    """Training samples with every label moved by ``-shift`` px on both axes (the rule)."""
    if shift == 0.0:
        return list(samples)
    return [
        replace(s, landmarks=(s.landmarks - np.float32(shift)).astype(np.float32)) for s in samples
    ]


# A labelling style: where a dataset's annotators put each point (the jaw contour, the brow
# ends), not a pixel convention. Two 68-point datasets can differ by a per-point offset that is
# far larger than a pixel convention; training on both teaches the network their average. The
# style rule measures the mean per-point difference between a source's labels and a reference
# (a teacher's points on the same training faces), in units of each face's landmark extent,
# and moves the source's training labels by it, into the reference's style. Training faces only.


def extent(points: np.ndarray) -> np.ndarray:
    """The longer side of the landmarks' bounding box: ``[..., K, 2] -> [...]``."""
    span = np.nanmax(points, axis=-2) - np.nanmin(points, axis=-2)
    return np.max(span, axis=-1)


def style_offsets(labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The mean per-point offset (label - reference) over faces, in landmark extents: ``[K, 2]``.

    Args:
        labels, reference: ``[N, K, 2]`` the same faces, same pixels (a ``NaN`` point, without
            a location, is left out of its point's mean).
    """
    unit = extent(labels)[:, None, None]
    return np.nanmean((np.asarray(labels, np.float64) - reference) / unit, axis=0)


def restyle(samples: Sequence[Sample], offsets: np.ndarray) -> list[Sample]:
    """Training samples with every label moved by ``-offsets`` (``[K, 2]``, in landmark
    extents): from their own labelling style into the reference's."""
    out = []
    for s in samples:
        moved = s.landmarks - offsets * extent(s.landmarks)
        out.append(replace(s, landmarks=moved.astype(np.float32)))
    return out
