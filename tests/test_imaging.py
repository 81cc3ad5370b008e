from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.imaging import crop_region, crop_resize, load_image
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


def test_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    f = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(f)
    with pytest.raises(TcnnError, match=r"huge.png: image too large \(.*megapixels"):
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


def test_crop_region_scale_and_shift() -> None:
    r = crop_region(Box(0, 0, 10, 20), scale=2.0, shift_y=0.1)
    assert r == Box(-5, -8, 15, 32)
