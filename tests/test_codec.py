"""Coordinate convention: tests that fail on a half-pixel slip anywhere between image and crop.

A small blob is painted on pixel ``(i, j)`` of a synthetic face-like image; its true position in
continuous pixels is ``(i + 0.5, j + 0.5)``. Each test cuts the crop a model would see, finds the
blob's centroid there and maps it back (or checks where it landed), with a tolerance well under
half a pixel. Checked by patching: moving ``from_crop`` (in the codec or as the predictor
uses it), ``to_crop``, ``Box.from_dlib``, ``Box.from_xywh`` or the drawing's point and box
mapping by half a pixel fails the tests that cover it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.card import ModelCard
from tcnn.codec import Crop, crop_region, from_crop, to_crop
from tcnn.imaging import crop_resize
from tcnn.predictor import LandmarkDetector
from tcnn.types import Box, Face

#: Largest allowed error, image pixels: a 0.5 px slip breaks it with room to spare.
TOL = 0.15


def face_like(h: int = 240, w: int = 220) -> np.ndarray:
    """``[h, w, 3]`` uint8: a skin-coloured oval with dark eyes and mouth on a grey ground."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.full((h, w, 3), 90, np.float64)
    cx, cy = w / 2, h / 2
    oval = ((xx - cx) / (0.32 * w)) ** 2 + ((yy - cy) / (0.4 * h)) ** 2 < 1
    img[oval] = (205, 160, 130)
    for ex in (cx - 0.12 * w, cx + 0.12 * w):
        eye = ((xx - ex) / 9) ** 2 + ((yy - (cy - 0.08 * h)) / 5) ** 2 < 1
        img[eye] = (40, 30, 30)
    mouth = ((xx - cx) / 22) ** 2 + ((yy - (cy + 0.2 * h)) / 5) ** 2 < 1
    img[mouth] = (120, 40, 50)
    return img.astype(np.uint8)


def with_blob(img: np.ndarray, i: int, j: int, sigma: float = 1.0) -> np.ndarray:
    """A copy with a Gaussian blob centred on pixel column ``i``, row ``j``.

    ``sigma`` (image pixels) should be about a crop pixel or more: a blob much smaller than a
    crop pixel is sampled too coarsely to find its centre to a tenth of a pixel. The crops here
    shrink the image 2x at most for the same reason (measured: up to 0.09 px error at 2x,
    0.2 px at 5x, from the crops' 8-bit rounding).
    """
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    g = np.exp(-((xx - i - 0.5) ** 2 + (yy - j - 0.5) ** 2) / (2 * sigma**2))
    return np.clip(img + 45.0 * g[:, :, None], 0, 255).round().astype(np.uint8)


def blob_sigma(region: Box, size: int) -> float:
    """A blob width for crops of ``region`` at ``size``: 0.7 crop pixels, at least 1 pixel."""
    return max(1.0, 0.7 * region.width / size)


def centroid(crop: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``[2]`` centroid ``(x, y)`` of ``crop - base`` in crop units (crop pixel j: j + 0.5)."""
    diff = np.abs(crop.astype(np.float64) - base.astype(np.float64)).sum(axis=2)
    s = crop.shape[0]
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    return np.array([(diff * xx).sum(), (diff * yy).sum()]) / diff.sum() / s


def blob_in_crop(i: int, j: int, region: Box, size: int) -> np.ndarray:
    """Where the blob on pixel ``(i, j)`` lands in the ``size x size`` crop of ``region``."""
    base = face_like()
    blob = with_blob(base, i, j, blob_sigma(region, size))
    return centroid(crop_resize(blob, region, size), crop_resize(base, region, size))


@pytest.mark.parametrize(
    ("box", "rule", "size"),
    [
        (Box(40.3, 50.8, 180.6, 191.2), Crop(1.0, 0.0), 72),  # shrink 1.9x (5 points)
        (Box(40.3, 50.8, 180.6, 191.2), Crop(1.5, 0.1), 104),  # 68-point rule, 2x
        (Box(87.6, 101.1, 123.4, 137.9), Crop(1.0, 0.0), 64),  # enlarge 1.8x
    ],
)
@pytest.mark.parametrize(("fx", "fy"), [(0.5, 0.5), (0.23, 0.31), (0.71, 0.78)])
def test_blob_comes_back_at_its_pixel_centre(
    box: Box, rule: Crop, size: int, fx: float, fy: float
) -> None:
    region = rule.region(box)
    i, j = int(region.left + fx * region.width), int(region.top + fy * region.height)
    units = blob_in_crop(i, j, region, size)
    back = from_crop(units[None], region)[0]
    assert np.abs(back - (i + 0.5, j + 0.5)).max() < TOL, back
    # and the forward map puts the true point where the image shows it
    fwd = to_crop(np.array([[i + 0.5, j + 0.5]]), region)[0]
    assert np.abs((fwd - units) * (region.width, region.height)).max() < TOL


def test_to_and_from_crop_are_inverse_over_many_regions() -> None:
    rng = np.random.default_rng(0)
    regions = [Box(x, y, x + s, y + s * 1.1) for x, y, s in rng.uniform(1, 300, (7, 3))]
    pts = rng.uniform(0, 400, (7, 68, 2)).astype(np.float32)
    units = to_crop(pts, regions)
    assert units.shape == pts.shape
    np.testing.assert_allclose(from_crop(units, regions), pts, atol=1e-3)
    # corners: (0, 0) is the region's top-left corner, (1, 1) its bottom-right corner
    r = regions[0]
    np.testing.assert_allclose(
        from_crop(np.array([[0.0, 0.0], [1.0, 1.0]]), r), [[r.left, r.top], [r.right, r.bottom]]
    )


def test_crop_of_a_card() -> None:
    """A card's ``crop`` entry is the codec's :class:`Crop`: what the card says is what cuts."""
    data = {"name": "m", "points": 5, "input_size": 40, "crop": {"scale": 1.5, "shift_y": 0.1}}
    crop = ModelCard.from_dict(data).crop
    assert crop == Crop(1.5, 0.1)
    assert crop.region(Box(0, 0, 10, 20)) == Box(-2.5, -3.0, 12.5, 27.0)
    assert crop.region(Box(0, 0, 10, 20)) == crop_region(Box(0, 0, 10, 20), 1.5, 0.1)


def test_pixel_offset_is_added_after_mapping_back() -> None:
    """The seed's model answers 0-based pixel indices; its card's offset makes them continuous."""
    units = np.array([[[0.0, 0.0], [0.5, 0.25]]], np.float32)
    region = [Box(10, 20, 50, 60)]
    np.testing.assert_array_equal(from_crop(units, region), [[[10, 20], [30, 30]]])
    shifted = from_crop(units, region, (0.5, 0.5))
    assert shifted.dtype == np.float32
    np.testing.assert_array_equal(shifted, [[[10.5, 20.5], [30.5, 30.5]]])


def test_crop_clips_to_the_image() -> None:
    """The seed's rule: the region cut to the image; no image size, no cut; others never cut."""
    clip = Crop(1.0, clip=True)
    box = Box(-6, 50, 40, 96)
    assert clip.region(box, (80, 80, 3)) == Box(0, 50, 40, 80)
    assert clip.region(Box(10, 10, 50, 50), (80, 80, 3)) == Box(10, 10, 50, 50)
    assert clip.region(box) == box
    assert Crop(1.0).region(box, (80, 80, 3)) == box
    # Points map back through the cut region: its top-left corner and its size.
    np.testing.assert_allclose(
        from_crop(np.array([[0.5, 0.5]]), clip.region(box, (80, 80))), [[20, 65]]
    )


def _centred_box_test(box: Box, centre_px: tuple[int, int]) -> None:
    """The blob on the box's centre pixel must land at the centre of the box's own crop."""
    i, j = centre_px
    units = blob_in_crop(i, j, box, 40)
    off_px = (units - 0.5) * (box.width, box.height)
    assert np.abs(off_px).max() < TOL, off_px


def test_dlib_rectangle_is_inclusive() -> None:
    # dlib's rectangle(100, 90, 140, 130) covers pixels 100..140: 41 pixels, centre pixel 120
    # (continuous 120.5). Read without the +1 the crop centre would sit half a pixel off.
    box = Box.from_dlib((100, 90, 140, 130))
    assert box.as_tuple() == (100, 90, 141, 131)
    _centred_box_test(box, (120, 110))
    dlib = pytest.importorskip("dlib")
    assert Box.from_dlib(dlib.rectangle(100, 90, 140, 130)) == box


def test_opencv_xywh_rectangle() -> None:
    # OpenCV's (x, y, w, h) = (99, 80, 41, 41) covers pixels 99..139: centre pixel 119.
    box = Box.from_xywh(99, 80, 41, 41)
    assert box.as_tuple() == (99, 80, 140, 121)
    _centred_box_test(box, (119, 100))


def _centroid_model(points: int):  # type: ignore[no-untyped-def]
    """A stand-in network: every point at the centroid of the crop's bright blob."""

    def predict(crops: np.ndarray, bulk: bool = False, view: str = "both") -> np.ndarray:
        out = []
        for c in crops.astype(np.float64):
            w = np.clip(c.sum(axis=2) - 3 * 60, 0, None)
            s = c.shape[0]
            yy, xx = np.mgrid[0:s, 0:s] + 0.5
            xy = np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum() / s
            out.append(np.repeat(xy[None], points, axis=0))
        return np.array(out, np.float32)

    return predict


@pytest.mark.parametrize("model", ["vanilla5", "vanilla68"])
def test_inference_path_puts_a_perfect_model_on_the_blob(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LandmarkDetector's crop and mapping back with a network that finds the blob exactly."""
    lm = LandmarkDetector(model)
    monkeypatch.setattr(lm.model, "predict", _centroid_model(lm.model.points))
    img = with_blob(np.full((240, 220, 3), 60, np.uint8), 101, 119, 2.5)
    boxes = [Box(55.2, 70.7, 150.1, 166.3), Box.from_dlib((60, 72, 140, 152))]
    pts = lm.landmarks(img, boxes)
    assert np.abs(pts - (101.5, 119.5)).max() < TOL, pts[:, 0]


def test_training_crops_put_targets_on_the_blob(tmp_path: Path) -> None:
    """make_crops' model input and target agree: the target sits on the blob in the crop.

    Input size 104 for a 206 px region (2x shrink), for the precision explained above.
    """
    pytest.importorskip("torch")
    from tcnn.train.data.augment import make_crops
    from tcnn.train.data.datasets import Sample

    base = face_like()
    Image.fromarray(base).save(tmp_path / "base.png")
    box = Box(41.3, 52.8, 178.6, 189.2)
    region = Crop(1.5, 0.1).region(box)
    Image.fromarray(with_blob(base, 117, 131, blob_sigma(region, 104))).save(tmp_path / "blob.png")
    pts = np.full((5, 2), (117.5, 131.5), np.float32)
    sets = [
        make_crops([Sample(tmp_path / f, pts, box, 1.0)], 104, 1.5, 0.1, progress=False)
        for f in ("blob.png", "base.png")
    ]
    crop, plain = (s.centre()[0].permute(1, 2, 0).numpy() for s in sets)
    target = sets[0].points[0, 0].numpy() + 0.5  # centred units -> 0-1 crop units
    off_px = (centroid(crop, plain) - target) * (region.width, region.height)
    assert np.abs(off_px).max() < TOL, off_px


def test_drawn_dot_is_centred_on_its_pixel() -> None:
    from tcnn.draw import draw_faces

    img = np.full((120, 120, 3), 128, np.uint8)
    pts = np.array([[30.5, 40.5], [80.5, 40.5], [55.5, 60.5], [35.5, 85.5], [75.5, 85.5]])
    for side in (60, 100, 300):  # dot radius 1, 2 and 5 pixels
        box = Box(10, 12, 10 + side, 12 + side)
        drawn = np.asarray(draw_faces(img, [Face(box, 1.0, pts.astype(np.float32))]))
        mask = (drawn != 128).any(axis=2)
        for i, j in pts.astype(int):
            around = mask[j - 8 : j + 9, i - 8 : i + 9]
            assert around.any()
            assert (around == around[::-1]).all() and (around == around[:, ::-1]).all()
            yy, xx = np.nonzero(around)
            assert (xx.mean(), yy.mean()) == (8.0, 8.0)


def test_drawn_box_covers_its_pixels() -> None:
    from tcnn.draw import draw_faces

    img = np.zeros((100, 100, 3), np.uint8)
    face = Face(Box(20, 25, 61, 70), 1.0, np.full((5, 2), 200.0, np.float32))  # points outside
    drawn = np.asarray(draw_faces(img, [face]))
    ys, xs = np.nonzero(drawn.any(axis=2))
    # Box(20, 25, 61, 70) covers pixel columns 20..60 and rows 25..69
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (20, 60, 25, 69)


def test_aligned_face_puts_a_landmark_blob_on_its_template_point() -> None:
    """align_face's warp (PIL's affine transform) follows the same continuous convention."""
    from tcnn.align import TEMPLATE, align_face, similarity

    size = 112
    target = TEMPLATE * size
    angle, scale, shift = np.deg2rad(12.0), 1.3, np.array([31.3, 22.7])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = target @ rot.T + shift  # the face's landmarks in the image, continuous pixels
    base = face_like()
    i, j = (int(v) for v in np.floor(pts[2]))  # blob on the pixel that holds the nose tip
    pts[2] = (i + 0.5, j + 0.5)  # and the nose tip exactly on its centre
    blob = with_blob(base, i, j, 1.5)
    got = centroid(align_face(blob, pts, size), align_face(base, pts, size)) * size
    # the blob must sit where the fitted similarity transform maps its centre
    fwd = similarity(pts, target)
    expected = fwd @ np.array([i + 0.5, j + 0.5, 1.0])
    assert np.abs(got - expected).max() < TOL, (got, expected)
