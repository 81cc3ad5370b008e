"""The pseudo-labels' teacher: dlib's 68-point shape predictor, on the image and its mirror.

The teacher is dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat`` from
``face-recognition-models``, trained on iBUG 300-W) on a dlib HOG face box. dlib places points
on integer pixel indices, so each image is first upscaled ``factor`` times (bilinear) and a
point ``p`` of the upscaled image maps back to the continuous position ``(p + 0.5) / factor``.

Each face is labelled twice: on the image and on its mirror (the mirrored box; the points
un-mirrored with the 68-point flip permutation of :mod:`tcnn.schemes`). The label is the mean
of the two answers; how far they disagree is measured in :mod:`tcnn.train.data.filters`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from tcnn.detect import RETINA_TO_HOG, _import_dlib, dlib_models_dir, make_detector
from tcnn.imaging import load_image
from tcnn.schemes import SIXTY_EIGHT
from tcnn.types import Box


@dataclass(frozen=True)
class Source:
    """A dataset to pseudo-label.

    Attributes:
        factor: upscaling before the teacher runs (dlib gives integer pixel positions).
        items: ``(image path, human 5 points [5, 2] or None)`` per face; with human points
            the face box is the detection that holds them, else the one nearest the centre.
    """

    name: str
    factor: int
    items: list[tuple[Path, np.ndarray | None]]


@dataclass(frozen=True)
class Label:
    """The teacher's answer for one face (continuous pixels of the original image).

    Attributes:
        direct: ``[68, 2]`` on the image.
        flipped: ``[68, 2]`` on the mirrored image, un-mirrored.
        box: the face box given to the teacher, original image pixels.
        box_source: ``"hog"``, ``"retinaface"`` (HOG missed; RetinaFace's box mapped onto
            HOG's convention) or ``"none"`` (no face found: no points).
    """

    direct: np.ndarray | None
    flipped: np.ndarray | None
    box: Box | None
    box_source: str

    @property
    def points(self) -> np.ndarray | None:
        """The label: the mean of the direct and un-mirrored flipped answers, ``[68, 2]``."""
        if self.direct is None or self.flipped is None:
            return None
        return ((self.direct + self.flipped) / 2).astype(np.float32)


def unmirror(points: np.ndarray, width: float) -> np.ndarray:
    """Points found on an image mirrored left-right, back on the image: ``[68, 2]``.

    Continuous coordinates: ``x -> width - x``, then the flip permutation restores the order.
    """
    out = np.asarray(points, np.float64).copy()
    out[:, 0] = width - out[:, 0]
    return out[SIXTY_EIGHT.flip_permutation()]


def mirror_box(box: Box, width: float) -> Box:
    """``box`` on the image mirrored left-right (``width`` wide), continuous pixels."""
    return Box(width - box.right, box.top, width - box.left, box.bottom)


def pick_box(
    detections: Sequence[Box], size: tuple[int, int], hint: np.ndarray | None
) -> Box | None:
    """The detection that holds the face: with ``hint`` (points ``[K, 2]``; a point without a
    location is NaN and left out) the one holding the located points' centroid, nearest
    centre; else the largest that holds the image centre, else the largest. ``size`` is
    ``(width, height)``."""
    if not detections:
        return None
    if hint is not None:
        located = hint[np.isfinite(hint).all(axis=1)]
        hint = located if len(located) else None
    if hint is not None:
        cx, cy = hint.mean(axis=0)
    else:
        cx, cy = size[0] / 2, size[1] / 2
    inside = [b for b in detections if b.left <= cx <= b.right and b.top <= cy <= b.bottom]
    if hint is not None:
        if not inside:
            return None
        return min(inside, key=lambda b: (b.center[0] - cx) ** 2 + (b.center[1] - cy) ** 2)
    return max(inside or list(detections), key=lambda b: b.width * b.height)


class Teacher:
    """dlib's 68-point shape predictor on dlib HOG boxes, direct and mirrored.

    Args:
        factor: upscaling (bilinear) before HOG and the predictor run.
    """

    def __init__(self, factor: int) -> None:
        dlib = _import_dlib()
        self.dlib = dlib
        self.factor = factor
        self.hog = dlib.get_frontal_face_detector()
        path = os.path.join(dlib_models_dir(), "shape_predictor_68_face_landmarks.dat")
        self.predictor = dlib.shape_predictor(path)
        self._retina: Any = None

    def _shape(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The predictor's 68 integer pixel positions on ``image`` for ``box`` (its pixels)."""
        rect = self.dlib.rectangle(
            round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1
        )
        shape = self.predictor(image, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)

    def find_box(self, rgb: np.ndarray, big: np.ndarray, hint: np.ndarray | None) -> Label:
        """The face box in the original image's pixels, with its source (no points yet)."""
        f = self.factor
        size = (rgb.shape[1], rgb.shape[0])
        rects = self.hog(big, 0)
        hog = [
            Box(r.left() / f, r.top() / f, (r.right() + 1) / f, (r.bottom() + 1) / f) for r in rects
        ]
        box = pick_box(hog, size, hint)
        if box is not None:
            return Label(None, None, box, "hog")
        if self._retina is None:
            self._retina = make_detector("retinaface")
        retina = [RETINA_TO_HOG(b) for b, _ in self._retina(rgb)]
        box = pick_box(retina, size, hint)
        return Label(None, None, box, "retinaface" if box is not None else "none")

    def __call__(self, rgb: np.ndarray, hint: np.ndarray | None = None) -> Label:
        """Label the face of ``rgb`` (``[H, W, 3]`` uint8); ``hint``: its known points."""
        f = self.factor
        h, w = rgb.shape[:2]
        big = np.asarray(Image.fromarray(rgb).resize((w * f, h * f), Image.Resampling.BILINEAR))
        found = self.find_box(rgb, big, hint)
        if found.box is None:
            return found
        b = found.box
        big_box = Box(b.left * f, b.top * f, b.right * f, b.bottom * f)
        direct = (self._shape(big, big_box) + 0.5) / f
        mirrored = np.ascontiguousarray(big[:, ::-1])
        wb = w * f
        flipped = unmirror(self._shape(mirrored, mirror_box(big_box, wb)) + 0.5, wb) / f
        return Label(direct.astype(np.float32), flipped.astype(np.float32), b, found.box_source)


_TEACHERS: dict[int, Teacher] = {}


def _label_one(args: tuple[int, str, np.ndarray | None]) -> Label:
    factor, path, hint = args
    if factor not in _TEACHERS:
        _TEACHERS[factor] = Teacher(factor)
    return _TEACHERS[factor](load_image(path), hint)


def label_source(source: Source, progress: bool = True, workers: int | None = None) -> list[Label]:
    """Run the teacher on every face of ``source`` (in ``workers`` processes; 1: this one)."""
    workers = workers or min(os.cpu_count() or 1, 4)
    jobs = [(source.factor, str(p), h) for p, h in source.items]
    bar = dict(
        total=len(jobs),
        desc=f"pseudo-labelling {source.name} (dlib 68)",
        disable=not progress,
        unit="face",
    )
    if workers == 1:
        return [_label_one(j) for j in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(_label_one, jobs, chunksize=16), **bar))
