"""Which pseudo-labels to keep: the teacher's flip disagreement and, where the dataset has them,
its error against human points; and the report of what the filters kept.

A face's flip disagreement is the mean point distance between the teacher's direct and
un-mirrored flipped answers (:mod:`tcnn.train.data.teacher`), over the eye distance: it flags
faces the teacher is unsure of. On MTFL the teacher's 5 points are also compared with the
human ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tcnn.schemes import to_five
from tcnn.train.data.teacher import Label, Source


@dataclass(frozen=True)
class Thresholds:
    """The filters a face must pass to be kept.

    Attributes:
        flip: most flip disagreement (mean point distance between the direct and the
            un-mirrored flipped answer, over the eye distance).
        flip_retina: most flip disagreement of a face whose box came from RetinaFace (HOG
            missed it): such faces are harder, and more of them are wrong at the same
            disagreement (on MTFL, 9% of those with flip <= 0.05 are over 0.10 against the human
            points, 2% at flip <= 0.03, against 1.8% of HOG-box faces at flip <= 0.05).
        human: most mean 5-point error against human labels (over their eye distance), when
            the dataset has them.
    """

    flip: float = 0.05
    flip_retina: float = 0.03
    human: float = 0.10


def eye_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (means of 36-41 and 42-47): ``[..., 68, 2] -> [...]``."""
    five = to_five(points68)
    return np.linalg.norm(five[..., 0, :] - five[..., 1, :], axis=-1)


def flip_disagreement(direct: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Per face mean point distance over the eye distance: ``[N, 68, 2]`` twice -> ``[N]``."""
    d = np.linalg.norm(direct - flipped, axis=-1).mean(-1)
    return d / np.maximum(eye_distance(direct), 1e-6)


def human_error(points68: np.ndarray, human5: np.ndarray) -> np.ndarray:
    """Mean 5-point error against human points over their eye distance: -> ``[N]``.

    Args:
        points68: ``[N, 68, 2]`` the teacher's points (reduced with :func:`tcnn.schemes.to_five`).
        human5: ``[N, 5, 2]`` the human points, same pixels and convention.
    """
    err = np.linalg.norm(to_five(points68) - human5, axis=-1).mean(-1)
    return err / np.maximum(np.linalg.norm(human5[:, 0] - human5[:, 1], axis=-1), 1e-6)


@dataclass(frozen=True)
class Result:
    """Labels with their measurements: every face, and which were kept.

    Attributes:
        flip: ``[N]`` flip disagreement (nan where no face was found).
        human: ``[N]`` 5-point error of the label against the human points (nan without).
        human_direct: ``[N]`` the same for the direct answer alone.
        kept: ``[N]`` bool.
    """

    source: Source
    labels: list[Label]
    flip: np.ndarray
    human: np.ndarray
    human_direct: np.ndarray
    kept: np.ndarray
    thresholds: Thresholds
    seconds: float
    teachers: str = "teacher dlib shape_predictor_68_face_landmarks"


def measure(
    source: Source,
    labels: list[Label],
    thresholds: Thresholds,
    human_shift: float = 0.0,
    seconds: float = 0.0,
) -> Result:
    """Flip disagreement and human agreement per face, and the faces the filters keep.

    Args:
        human_shift: the human labels' offset (the label-convention rule): they sit
            ``human_shift`` px right of and below the image features, so ``human - human_shift``
            is compared with the teacher.
    """
    n = len(labels)
    flip = np.full(n, np.nan)
    human = np.full(n, np.nan)
    human_direct = np.full(n, np.nan)
    for i, (lab, (_, hint)) in enumerate(zip(labels, source.items)):
        if lab.direct is None or lab.flipped is None:
            continue
        flip[i] = flip_disagreement(lab.direct[None], lab.flipped[None])[0]
        if hint is not None:
            pts = lab.points
            assert pts is not None
            ref = (hint - human_shift)[None]
            human[i] = human_error(pts[None], ref)[0]
            human_direct[i] = human_error(lab.direct[None], ref)[0]
    retina = np.array([lab.box_source == "retinaface" for lab in labels], bool)
    limit = np.where(retina, min(thresholds.flip, thresholds.flip_retina), thresholds.flip)
    with np.errstate(invalid="ignore"):
        kept = np.isfinite(flip) & (flip <= limit)
        kept &= ~(human > thresholds.human)
    return Result(source, labels, flip, human, human_direct, kept, thresholds, seconds)


def summary(result: Result) -> str:
    """One line: what was kept of ``result``, from which boxes, by which filters and teachers."""
    src = [lab.box_source for lab in result.labels]
    t = result.thresholds
    return (
        f"{result.source.name}: {int(result.kept.sum())} of {len(src)} faces kept "
        f"(boxes: {src.count('hog')} hog, {src.count('retinaface')} retinaface, "
        f"{src.count('none')} none; filters flip <= {t.flip} (retinaface boxes "
        f"{min(t.flip, t.flip_retina)}), human <= {t.human}); "
        f"{result.teachers} on x{result.source.factor} bilinear "
        f"upscale, label = mean of direct and un-mirrored flipped; {result.seconds:.0f} s"
    )


def describe(result: Result) -> list[str]:
    """Lines that report ``result``: the summary and the filters' distributions."""
    lines = [summary(result)]
    q = (50, 90, 95, 99)
    for what, values in (
        ("flip", result.flip),
        ("human (label)", result.human),
        ("human (direct)", result.human_direct),
    ):
        v = values[np.isfinite(values)]
        if len(v):
            pct = ", ".join(f"p{p} {x:.4f}" for p, x in zip(q, np.percentile(v, q)))
            lines.append(f"  {what}: {len(v)} faces, mean {v.mean():.4f}; {pct}")
    kept = result.human[result.kept]
    if np.isfinite(kept).any():
        lines.append(f"  human (label), kept faces: mean {np.nanmean(kept):.4f}")
    for what, values, limit in (
        ("flip", result.flip, result.thresholds.flip),
        ("human", result.human, result.thresholds.human),
    ):
        with np.errstate(invalid="ignore"):
            over = int((values > limit).sum())
        if np.isfinite(values).any():
            lines.append(f"  over the {what} threshold {limit}: {over}")
    return lines
