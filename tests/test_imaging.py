from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.codec import crop_region
from tcnn.errors import TcnnError
from tcnn.imaging import crop_batch, crop_resize, load_image
from tcnn.types import Box


def test_modes_become_rgb_uint8(tmp_path: Path) -> None:
    gray = Image.fromarray(np.full((6, 8), 100, np.uint8))
    rgba = Image.fromarray(
        np.dstack([np.full((6, 8, 3), 200, np.uint8), np.full((6, 8), 255, np.uint8)])
    )
    deep = Image.fromarray(np.full((6, 8), 65535, np.uint16))
    for name, img in [("g.png", gray), ("a.png", rgba), ("d.png", deep)]:
        img.save(tmp_path / name)
        arr = load_image(tmp_path / name)
        assert arr.shape == (6, 8, 3) and arr.dtype == np.uint8
    assert load_image(tmp_path / "g.png")[0, 0].tolist() == [100, 100, 100]
    assert load_image(tmp_path / "a.png")[0, 0].tolist() == [200, 200, 200]
    assert load_image(tmp_path / "d.png")[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.zeros((4, 5), np.uint16)).shape == (4, 5, 3)
    assert load_image(np.ones((4, 5, 3), np.float32))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"not an image at all", "not an image file"), (None, "no such file")],
)
def test_bad_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    f = tmp_path / "x.jpg"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(TcnnError, match=message) as info:
        load_image(f)
    assert str(f) in str(info.value)


def test_truncated_image(tmp_path: Path) -> None:
    f = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(f)
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(TcnnError, match=r"t\.jpg: unreadable image"):
        load_image(f)


@pytest.mark.slow
def test_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    f = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(f)
    with pytest.raises(TcnnError, match=r"huge.png: image too large \(.*megapixels"):
        load_image(f)


def test_size_limit_error_is_not_wrapped_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under PIL's own limit, tcnn's check refuses the image with its one-line message."""
    f = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(f)
    monkeypatch.setattr("tcnn.imaging.MAX_PIXELS", 100)
    with pytest.raises(TcnnError, match=r"^\S*big.png: image too large \(20x10 = 0 megapixels"):
        load_image(f)


def test_crop_resize_inside_and_outside() -> None:
    img = np.zeros((20, 20, 3), np.uint8)
    img[5:15, 5:15] = 255
    crop = crop_resize(img, Box(5, 5, 15, 15), 10)
    assert crop.shape == (10, 10, 3) and crop.min() == 255
    # Half outside the image: the outside part is black.
    crop = crop_resize(img, Box(-10, 5, 10, 15), 20)
    assert crop[:, :9].max() == 0 and crop[:, 16:].min() == 255
    with pytest.raises(TcnnError, match="outside the 20x20 image"):
        crop_resize(img, Box(30, 30, 40, 40), 10)


def pil_crop(image: np.ndarray, region: Box, size: int, antialias: bool) -> np.ndarray:
    """The crop as PIL makes it from the whole zero-padded image: the reference."""
    pad = 64
    padded = np.zeros((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, 3), np.uint8)
    padded[pad:-pad, pad:-pad] = image
    x0, y0 = int(np.floor(region.left)), int(np.floor(region.top))
    x1, y1 = int(np.ceil(region.right)), int(np.ceil(region.bottom))
    patch = Image.fromarray(padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad])
    rel = (region.left - x0, region.top - y0, region.right - x0, region.bottom - y0)
    if antialias:
        return np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR, box=rel))
    affine = (region.width / size, 0.0, rel[0], 0.0, region.height / size, rel[1])
    return np.asarray(
        patch.transform((size, size), Image.Transform.AFFINE, affine, Image.Resampling.BILINEAR)
    )


def random_regions(n: int = 40) -> list[Box]:
    """Shrunk, enlarged, fractional and partly outside regions of an 83x61 image."""
    rng = np.random.default_rng(0)
    regions = []
    for _ in range(n):
        side = rng.uniform(5.0, 90.0)
        left, top = rng.uniform(-side / 2, 83 - side / 2), rng.uniform(-side / 2, 61 - side / 2)
        regions.append(Box(left, top, left + side, top + side * rng.uniform(0.8, 1.2)))
    return regions


@pytest.mark.parametrize("antialias", [True, False])
def test_crops_are_pils_pixels(antialias: bool) -> None:
    """Antialiased: exactly PIL's pixels. Without: PIL's bilinear samples, rounded to nearest
    where PIL's affine transform truncates (OpenCV rounds), so at most one level above."""
    image = np.random.default_rng(0).integers(0, 256, (61, 83, 3), np.uint8)
    regions = random_regions()
    expected = np.stack([pil_crop(image, r, 24, antialias) for r in regions])
    got = crop_batch([(image, r) for r in regions], 24, antialias)
    assert got.shape == (40, 24, 24, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(crop_resize(image, regions[0], 24, antialias), got[0])
    if antialias:
        np.testing.assert_array_equal(got, expected)
    else:
        diff = got.astype(int) - expected
        assert diff.min() == 0 and diff.max() == 1 and 0.2 < diff.mean() < 0.5


def test_unantialiased_crops_round_like_opencv() -> None:
    """Without antialiasing each crop pixel is the bilinear sample at its centre, rounded."""
    image = np.random.default_rng(1).integers(0, 256, (61, 83, 3), np.uint8)
    for region in random_regions(20):
        x0, y0 = int(np.floor(region.left)), int(np.floor(region.top))
        pad = 64
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0))).astype(np.float64)
        want = np.empty((24, 24, 3))
        for j in range(24):
            for i in range(24):  # the sample point in the padded image's pixel indices
                x = region.left + (i + 0.5) * region.width / 24 - 0.5 + pad
                y = region.top + (j + 0.5) * region.height / 24 - 0.5 + pad
                x = min(max(x, x0 + pad), np.ceil(region.right) + pad - 1)
                y = min(max(y, y0 + pad), np.ceil(region.bottom) + pad - 1)
                xi, yi = int(np.floor(x)), int(np.floor(y))
                fx, fy = x - xi, y - yi
                p = padded[yi : yi + 2, xi : xi + 2]  # at a clamped edge fx or fy is 0
                top = p[0, 0] * (1 - fx) + p[0, 1] * fx
                bottom = p[1, 0] * (1 - fx) + p[1, 1] * fx
                want[j, i] = top * (1 - fy) + bottom * fy
        got = crop_resize(image, region, 24, antialias=False).astype(int)
        diff = got - np.floor(want + 0.5)
        assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.01, region


def test_crop_region_scale_and_shift() -> None:
    r = crop_region(Box(0, 0, 10, 20), scale=2.0, shift_y=0.1)
    assert r == Box(-5, -8, 15, 32)
