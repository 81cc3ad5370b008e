from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn import Box, Face, LandmarkDetector
from tcnn.errors import TcnnError


@pytest.fixture(scope="module")
def detector5() -> LandmarkDetector:
    return LandmarkDetector()


def _largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.box.width * f.box.height)


def test_astronaut_landmarks_sit_on_the_face(
    detector5: LandmarkDetector, astronaut: np.ndarray
) -> None:
    faces = detector5.detect(astronaut)
    assert faces
    face = _largest(faces)
    pts = face.landmarks
    assert pts.shape == (5, 2) and pts.dtype == np.float32
    b = face.box
    assert ((pts[:, 0] > b.left) & (pts[:, 0] < b.right)).all()
    assert ((pts[:, 1] > b.top) & (pts[:, 1] < b.bottom)).all()
    eyes_y, nose_y, mouth_y = pts[:2, 1].mean(), pts[2, 1], pts[3:, 1].mean()
    assert eyes_y < nose_y < mouth_y
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # image-left before image-right
    # Her face box: about x 175-266, y 76-167 from dlib's HOG detector, x 178-273, y 57-177
    # from RetinaFace.
    assert 150 < b.left < 200 and 50 < b.top < 100 and 150 < b.bottom < 190


def test_68_points_on_the_astronaut(astronaut: np.ndarray) -> None:
    face = _largest(LandmarkDetector(points=68).detect(astronaut))
    pts = face.landmarks
    assert pts.shape == (68, 2)
    brows, eyes, nose, mouth, chin = pts[17:27], pts[36:48], pts[30], pts[48:68], pts[8]
    assert brows[:, 1].mean() < eyes[:, 1].mean() < nose[1] < mouth[:, 1].mean() < chin[1]
    assert pts[36, 0] < pts[45, 0]


def test_same_faces_from_path_pil_and_array(
    detector5: LandmarkDetector, astronaut: np.ndarray, astronaut_png
) -> None:
    a = detector5.detect(astronaut)
    b = detector5.detect(Image.open(astronaut_png))
    c = detector5.detect(str(astronaut_png))
    assert len(a) == len(b) == len(c)
    assert np.allclose(a[0].landmarks, b[0].landmarks) and np.allclose(
        a[0].landmarks, c[0].landmarks
    )


def test_given_boxes_skip_detection_and_batch(
    detector5: LandmarkDetector, astronaut: np.ndarray
) -> None:
    face = _largest(detector5.detect(astronaut))
    boxes = [face.box, face.box.as_tuple(), (10, 10, 60, 60)]
    faces = detector5.detect(astronaut, boxes=boxes)
    assert len(faces) == 3 and np.isnan(faces[0].score)
    assert np.allclose(faces[0].landmarks, face.landmarks, atol=1e-4)
    assert np.allclose(faces[1].landmarks, face.landmarks, atol=1e-4)


def test_no_face_gives_an_empty_list(detector5: LandmarkDetector) -> None:
    assert detector5.detect(np.full((200, 300, 3), 128, np.uint8)) == []
    assert detector5.detect(np.zeros((50, 50, 3), np.uint8), boxes=[]) == []


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 10, 50), "zero size"),
        ((50, 10, 20, 40), "zero size"),
        ((600, 600, 700, 700), "outside the 512x512 image"),
        ((1, 2, 3), "expected (left"),
        ((0, 0, float("nan"), 5), "finite"),
    ],
)
def test_bad_boxes(detector5: LandmarkDetector, astronaut: np.ndarray, box, message: str) -> None:
    with pytest.raises(TcnnError) as info:
        detector5.detect(astronaut, boxes=[box])
    assert message in str(info.value)


def test_box_type() -> None:
    b = Box(1, 2, 5, 10)
    assert (b.width, b.height, b.center) == (4, 8, (3, 6))


@pytest.mark.slow
def test_detector_threshold_drops_weak_detections(astronaut: np.ndarray) -> None:
    # dlib scores the astronaut's face about 1.2 and a patch on her suit about 0.1.
    everything = LandmarkDetector(face_detector="dlib", threshold=-0.5).detect(astronaut)
    default = LandmarkDetector(face_detector="dlib").detect(astronaut)
    assert len(default) == 1 < len(everything)
    assert min(f.score for f in default) >= 0.3
    # RetinaFace's default threshold is the measured 0.8; it keeps her face.
    retina = LandmarkDetector(face_detector="retinaface")
    assert retina.threshold == 0.8 and len(retina.detect(astronaut)) == 1


@pytest.mark.slow
def test_dlib_cnn_boxes_follow_the_hog_convention(astronaut: np.ndarray) -> None:
    hog = _largest(LandmarkDetector(face_detector="dlib").detect(astronaut))
    cnn = _largest(LandmarkDetector(face_detector="dlib-cnn").detect(astronaut))
    assert abs(cnn.box.center[0] - hog.box.center[0]) < 0.1 * hog.box.width
    assert abs(cnn.box.center[1] - hog.box.center[1]) < 0.1 * hog.box.width
    assert 0.8 < cnn.box.width / hog.box.width < 1.25  # per-face spread: about 10%
    assert np.abs(cnn.landmarks - hog.landmarks).mean() < 0.05 * hog.box.width


def test_unknown_detector() -> None:
    from tcnn.detect import make_detector

    known = "dlib, dlib-cnn, retinaface, retinaface-int8"
    message = rf"^unknown face detector 'nope' \(known: {known}\)$"
    with pytest.raises(TcnnError, match=message):
        LandmarkDetector(face_detector="nope")
    with pytest.raises(TcnnError, match=message):
        make_detector("nope")


def test_detector_is_the_deprecated_name_of_face_detector() -> None:
    with pytest.warns(DeprecationWarning, match=r"use face_detector="):
        lm = LandmarkDetector(detector="dlib")
    assert lm.face_detector == "dlib"
    with pytest.warns(DeprecationWarning), pytest.raises(TcnnError, match="face_detector only"):
        LandmarkDetector(face_detector="retinaface", detector="dlib")


def test_face_detector_is_the_name_and_face_finder_the_built_detector() -> None:
    lm = LandmarkDetector(face_detector="retinaface")
    assert lm.face_detector == "retinaface"
    finder = lm.face_finder()
    assert finder.name == "retinaface" and lm.face_finder() is finder  # built once per thread
    with pytest.warns(DeprecationWarning, match=r"use face_detector \(the name\)"):
        assert lm.detector_name == "retinaface"


def test_dlib_cnn_boxes_are_mapped_by_its_box_map() -> None:
    """dlib's rectangle (inclusive indices) in continuous pixels, then moved onto HOG's boxes."""
    from types import SimpleNamespace

    from tcnn.detect import DLIB_CNN_TO_HOG, DlibCnn

    rect = SimpleNamespace(left=lambda: 10, top=lambda: 20, right=lambda: 109, bottom=lambda: 119)
    found = [SimpleNamespace(rect=rect, confidence=0.9), SimpleNamespace(rect=rect, confidence=-1)]
    cnn = object.__new__(DlibCnn)
    cnn._detector = lambda image, up: found
    cnn.upsample, cnn.threshold = 0, 0.0
    [(box, score)] = cnn(np.zeros((200, 200, 3), np.uint8))
    assert score == 0.9 and box == DLIB_CNN_TO_HOG(Box(10, 20, 110, 120))
    # 100 px wide: the centre moves by (5.2, 7.2) px and the side grows to 108.7 px.
    np.testing.assert_allclose(box.as_tuple(), (10.85, 22.85, 119.55, 131.55))


def test_large_batches_equal_single_faces(
    detector5: LandmarkDetector, astronaut: np.ndarray
) -> None:
    rng = np.random.default_rng(0)
    boxes = [
        Box(x, y, x + w, y + w)
        for x, y, w in zip(
            rng.uniform(100, 200, 150), rng.uniform(50, 120, 150), rng.uniform(60, 120, 150)
        )
    ]
    many = detector5.landmarks_batch([(astronaut, b) for b in boxes])  # chunked, pipelined
    one = np.stack([detector5.landmarks(astronaut, [b])[0] for b in boxes])
    assert many.shape == (150, 5, 2)
    assert np.abs(many - one).max() < 1e-3


def test_large_batches_run_one_threaded_sessions_side_by_side(astronaut: np.ndarray) -> None:
    lm = LandmarkDetector(threads=2)
    box = Box(140.0, 70.0, 240.0, 170.0)
    many = lm.landmarks_batch([(astronaut, box)] * 40)  # over CHUNK faces: the bulk path
    assert np.array_equal(many, np.repeat(lm.landmarks(astronaut, [box]), 40, axis=0))
    assert _intra_op_threads(lm.model.bulk_session) == 1
    assert lm.model.bulk_workers == 2 and lm._pool._max_workers == 2  # type: ignore[union-attr]


def test_threads_sharing_a_detector_get_their_own_faces(astronaut: np.ndarray) -> None:
    lm = LandmarkDetector(threads=2)
    batches = [[(astronaut, Box(130.0 + d, 60.0, 230.0 + d, 160.0))] * 30 for d in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lm.landmarks_batch, batches))
    for got, items in zip(together, batches):
        assert np.array_equal(got, lm.landmarks_batch(items))


def _intra_op_threads(session: object) -> int:
    return int(session.get_session_options().intra_op_num_threads)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_thread_counts_reach_both_onnx_sessions(astronaut: np.ndarray) -> None:
    lm = LandmarkDetector(threads=1, detector_threads=2)
    assert _intra_op_threads(lm.model.session) == 1
    assert _intra_op_threads(lm.face_finder()._session) == 2  # type: ignore[attr-defined]
    one = LandmarkDetector(threads=1, detector_threads=1)
    assert _intra_op_threads(one.face_finder()._session) == 1  # type: ignore[attr-defined]
    a, b = lm.detect(astronaut), one.detect(astronaut)
    assert [f.box for f in a] == [f.box for f in b]
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=1e-4)
    dlib = LandmarkDetector(face_detector="dlib", detector_threads=1)  # runs on the calling thread
    assert dlib.face_finder().name == "dlib"
    with pytest.raises(TcnnError, match="detector_threads 0: must be at least 1"):
        LandmarkDetector(detector_threads=0)


@pytest.mark.slow
def test_refine_averages_a_second_crop_placed_from_the_first_answer(astronaut: np.ndarray) -> None:
    from tcnn.predictor import CHUNK

    plain, refined = LandmarkDetector(), LandmarkDetector(refine=True)
    box = _largest(plain.detect(astronaut)).box
    relation = plain.model.card.box_from_landmarks
    assert relation is not None
    first = plain.landmarks(astronaut, [box])
    second = plain.landmarks(astronaut, [Box.from_landmarks(first[0], relation)])
    got = refined.landmarks(astronaut, [box])
    np.testing.assert_allclose(got, (first + second) / 2, atol=1e-5)
    assert np.abs(got - first).max() > 0.05  # the second crop moved the answer
    # The chunked path of large batches gives the same answer.
    many = refined.landmarks(astronaut, [box] * (CHUNK + 3))
    np.testing.assert_allclose(many, np.repeat(got, CHUNK + 3, axis=0), atol=1e-4)
    # A box shifted by a fifth of its width: the refined answer stays nearer the centred one.
    shift = box.width / 5
    moved = Box(box.left + shift, box.top, box.right + shift, box.bottom)
    drift_plain = np.linalg.norm(plain.landmarks(astronaut, [moved]) - first, axis=-1).mean()
    drift_refined = np.linalg.norm(refined.landmarks(astronaut, [moved]) - got, axis=-1).mean()
    assert drift_refined < 0.8 * drift_plain


def test_refine_keeps_the_box_of_degenerate_points() -> None:
    from tcnn.predictor import implied_box

    box = Box(10, 20, 50, 60)
    assert implied_box(np.full((5, 2), 30.0, np.float32), box, (0.0, 0.0, 1.0)) is box
    assert implied_box(np.full((5, 2), np.nan, np.float32), box, (0.0, 0.0, 1.0)) is box
    pts = np.array([[0, 0], [10, 0], [5, 5], [0, 10], [10, 10]], np.float32)
    assert implied_box(pts, box, (0.0, 0.1, 2.0)).as_tuple() == (-5.0, -4.0, 15.0, 16.0)


def test_refine_needs_the_cards_box_relation(tmp_path: Path) -> None:
    import shutil

    from tcnn.card import update_card
    from tcnn.registry import resolve

    copy = tmp_path / "norelation.onnx"
    shutil.copy(resolve("vanilla5"), copy)
    update_card(copy, box_from_landmarks=None, name="norelation")
    assert LandmarkDetector(copy).refine is False
    with pytest.raises(TcnnError, match="norelation: its card has no box_from_landmarks"):
        LandmarkDetector(copy, refine=True)
