"""The shipped default models place a face where they placed it before its photo was given a
strong colour cast or darkened: the failure that sent two trained 68-point networks one to
four eye distances off on the colour-cast photos of aflw68 (docs/training.md). Needs
``../shared/data``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tcnn import LandmarkDetector
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.data.datasets import load_dataset


def red_cast(image: np.ndarray) -> np.ndarray:
    """A red-yellow print: red up, green a little down, blue almost gone."""
    return np.clip(image * np.array([1.3, 0.9, 0.15]), 0, 255).astype(np.uint8)


def darkened(image: np.ndarray) -> np.ndarray:
    """Under-exposed: gamma 2.2 on values in [0, 1]."""
    return (255 * (image / 255.0) ** 2.2).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("points", [5, 68])
@pytest.mark.parametrize("change", [red_cast, darkened], ids=["red cast", "darkened"])
def test_default_model_keeps_its_answer_on_a_changed_photo(
    points: int, change: Callable[[np.ndarray], np.ndarray], shared_root: Path
) -> None:
    samples = load_dataset("aflw68-train", shared_root, "dlib", progress=False, limit=48)
    faces = [s for s in samples if s.box is not None][:32]
    assert len(faces) >= 24
    det = LandmarkDetector(points=points, face_detector="dlib")
    moved = []
    for s in faces:
        assert s.box is not None
        image = load_image(s.path)
        before = det.landmarks(image, [s.box])[0]
        after = det.landmarks(change(image), [s.box])[0]
        # normalised by the eye distance of the face's human labels
        iod = normalising_distance(s.landmarks[None], SIXTY_EIGHT, "inter-pupil")
        moved.append(float(nme(after[None], before[None], iod)[0]))
    # measured on the first 40 such faces: tcnn68dvs-int8 (the default before tcnn68t3s-int8)
    # moved 1.5% / 2.7% on average (red cast / darkened), its worst face 3.6% / 11%; tcnn68d2
    # and tcnn68s, which failed on aflw68's colour-cast photos, moved 245% and 262% on average
    # with the red cast
    assert float(np.mean(moved)) < 0.06
    assert float(np.max(moved)) < 0.3
