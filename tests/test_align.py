from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn import LandmarkDetector
from tcnn.align import TEMPLATE, align_face, similarity
from tcnn.errors import TcnnError


def test_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -2.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    a = similarity(src, dst)
    assert np.allclose(a[:, :2], rot) and np.allclose(a[:, 2], shift)


def test_aligned_astronaut_has_her_eyes_on_the_template(astronaut: np.ndarray) -> None:
    lm = LandmarkDetector()
    face = max(lm.detect(astronaut), key=lambda f: f.box.width)
    aligned = align_face(astronaut, face.landmarks, size=112)
    assert aligned.shape == (112, 112, 3)
    # Landmarks found again on the aligned face sit near the template.
    again = lm.detect(aligned, boxes=[(0, 0, 112, 112)])[0].landmarks
    assert np.abs(again / 112 - TEMPLATE).max() < 0.06
    with pytest.raises(ValueError, match="expected"):
        align_face(astronaut, face.landmarks[:3])


def test_68_points_align_through_five(astronaut: np.ndarray) -> None:
    face = max(LandmarkDetector(points=68).detect(astronaut), key=lambda f: f.box.width)
    assert align_face(astronaut, face.landmarks, size=64).shape == (64, 64, 3)


def test_align_takes_what_detect_takes(astronaut: np.ndarray, astronaut_png: Path) -> None:
    face = max(LandmarkDetector().detect(astronaut_png), key=lambda f: f.box.width)
    want = align_face(astronaut, face.landmarks, size=48)
    assert np.array_equal(align_face(astronaut_png, face.landmarks, size=48), want)
    assert np.array_equal(align_face(str(astronaut_png), face.landmarks, size=48), want)
    assert np.array_equal(align_face(Image.open(astronaut_png), face.landmarks, size=48), want)
    with pytest.raises(TcnnError, match="no such file"):
        align_face(astronaut_png.with_name("missing.png"), face.landmarks)
