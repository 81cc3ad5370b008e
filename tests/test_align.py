from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn import LandmarkDetector
from tcnn.align import TEMPLATE, align_face, similarity
from tcnn.errors import TcnnError
from tcnn.schemes import to_five


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
    with pytest.raises(
        TcnnError, match=r"landmarks: expected shape \[5, 2\] or \[68, 2\].* got \[3, 2\]"
    ):
        align_face(astronaut, face.landmarks[:3])


@pytest.mark.parametrize(
    ("landmarks", "message"),
    [
        (np.zeros((10,)), r"expected shape \[5, 2\] or \[68, 2\] \(Face.landmarks\), got \[10\]"),
        (np.zeros((5, 3)), r"got \[5, 3\]"),
        (np.zeros((2, 5, 2)), r"got \[2, 5, 2\]"),
        (np.zeros((0, 2)), r"got \[0, 2\]"),
        ([[1, 2], [3]], r"expected a \[5, 2\] or \[68, 2\] array of numbers, got list"),
        ("eyes", r"array of numbers, got str 'eyes'"),
        (np.full((5, 2), np.nan), r"not all finite"),
    ],
)
def test_wrongly_shaped_landmarks_are_a_one_line_tcnn_error(
    astronaut: np.ndarray, landmarks: object, message: str
) -> None:
    with pytest.raises(TcnnError, match=message) as info:
        align_face(astronaut, landmarks)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and str(info.value).startswith("landmarks: ")


def test_bad_size_or_margin_is_a_tcnn_error(astronaut: np.ndarray) -> None:
    face = max(LandmarkDetector().detect(astronaut), key=lambda f: f.box.width)
    for size in (0, -4, 2.5):
        with pytest.raises(TcnnError, match=f"size {size}: must be a whole number"):
            align_face(astronaut, face.landmarks, size=size)  # type: ignore[arg-type]
    with pytest.raises(TcnnError, match=r"margin 0.5: must be in \[0, 0.5\)"):
        align_face(astronaut, face.landmarks, margin=0.5)


def test_68_points_align_through_five(astronaut: np.ndarray) -> None:
    face = max(LandmarkDetector(points=68).detect(astronaut), key=lambda f: f.box.width)
    aligned = align_face(astronaut, face.landmarks, size=64)
    # The same warp as the five points the 68 reduce to, and not the warp of other points.
    five = to_five(face.landmarks.astype(np.float64))
    assert np.array_equal(aligned, align_face(astronaut, five, size=64))
    assert not np.array_equal(aligned, align_face(astronaut, five[[1, 0, 2, 4, 3]], size=64))


def test_align_takes_what_detect_takes(astronaut: np.ndarray, astronaut_png: Path) -> None:
    face = max(LandmarkDetector().detect(astronaut_png), key=lambda f: f.box.width)
    want = align_face(astronaut, face.landmarks, size=48)
    assert np.array_equal(align_face(astronaut_png, face.landmarks, size=48), want)
    assert np.array_equal(align_face(str(astronaut_png), face.landmarks, size=48), want)
    assert np.array_equal(align_face(Image.open(astronaut_png), face.landmarks, size=48), want)
    with pytest.raises(TcnnError, match="no such file"):
        align_face(astronaut_png.with_name("missing.png"), face.landmarks)
