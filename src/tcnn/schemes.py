"""Landmark schemes as data: point names, mirror pairs, normalisers and drawing parts.

Augmentation (mirror pairs) and evaluation (normalisers) both read these tables, so the two
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tcnn.errors import TcnnError


@dataclass(frozen=True)
class Scheme:
    """A landmark scheme.

    Attributes:
        name: short name, e.g. ``"5pt"``.
        names: one name per point.
        flip_pairs: index pairs that swap under a horizontal mirror.
        normalisers: named normalisations; each is two index groups whose mean points are the
            two ends of the normalising distance.
        default_normaliser: the key of ``normalisers`` used when none is named.
        parts: point index runs joined by lines when drawing; ``closed`` runs form loops.
        regions: named groups of points whose errors are reported apart (jaw, eyes, ...).
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    normalisers: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    default_normaliser: str
    parts: tuple[tuple[tuple[int, ...], bool], ...] = ()
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``perm`` such that ``mirrored[perm]`` restores the point order."""
        perm = np.arange(self.num_points)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


FIVE = Scheme(
    name="5pt",
    names=("left_eye", "right_eye", "nose", "left_mouth", "right_mouth"),
    flip_pairs=((0, 1), (3, 4)),
    normalisers={"eye-centres": ((0,), (1,))},
    default_normaliser="eye-centres",
)


def _range(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b))


# iBUG 300-W order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
_NAMES_68 = (
    tuple(f"jaw_{i}" for i in range(17))
    + tuple(f"brow_{i}" for i in range(10))
    + tuple(f"nose_{i}" for i in range(9))
    + tuple(f"eye_{i}" for i in range(12))
    + tuple(f"mouth_{i}" for i in range(20))
)
_FLIP_68 = (
    tuple((i, 16 - i) for i in range(8))  # jaw
    + tuple((17 + i, 26 - i) for i in range(5))  # brows
    + ((31, 35), (32, 34))  # nostrils
    + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))  # eyes
    + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58))  # outer lip
    + ((60, 64), (61, 63), (65, 67))  # inner lip
)
SIXTY_EIGHT = Scheme(
    name="68pt",
    names=_NAMES_68,
    flip_pairs=_FLIP_68,
    normalisers={
        "inter-ocular": ((36,), (45,)),
        "inter-pupil": (_range(36, 42), _range(42, 48)),
    },
    default_normaliser="inter-ocular",
    parts=(
        (_range(0, 17), False),
        (_range(17, 22), False),
        (_range(22, 27), False),
        (_range(27, 31), False),
        (_range(31, 36), False),
        (_range(36, 42), True),
        (_range(42, 48), True),
        (_range(48, 60), True),
        (_range(60, 68), True),
    ),
    regions={
        "jaw": _range(0, 17),
        "brows": _range(17, 27),
        "nose": _range(27, 36),
        "eyes": _range(36, 48),
        "mouth": _range(48, 68),
    },
)

SCHEMES = {5: FIVE, 68: SIXTY_EIGHT}


def scheme_for(num_points: int) -> Scheme:
    """The scheme with ``num_points`` points; :class:`~tcnn.errors.TcnnError` when there is none."""
    try:
        return SCHEMES[num_points]
    except KeyError:
        raise TcnnError(f"no landmark scheme has {num_points} points (known: 5, 68)") from None


def to_five(points68: np.ndarray) -> np.ndarray:
    """Convert 68-point landmarks to the 5-point scheme.

    Eye centres are the means of points 36-41 and 42-47, the nose tip is point 30 and the mouth
    corners are points 48 and 54.

    Args:
        points68: ``[..., 68, 2]``.

    Returns:
        ``[..., 5, 2]`` in the same units.

    Raises:
        TcnnError: ``points68`` is not ``[..., 68, 2]``.
    """
    p = np.asarray(points68)
    if p.shape[-2:] != (68, 2):
        raise TcnnError(f"expected [..., 68, 2] landmarks, got shape {p.shape}")
    return np.stack(
        [
            p[..., 36:42, :].mean(axis=-2),
            p[..., 42:48, :].mean(axis=-2),
            p[..., 30, :],
            p[..., 48, :],
            p[..., 54, :],
        ],
        axis=-2,
    )
