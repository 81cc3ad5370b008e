"""JPEG files decoded at a reduced size (PIL's draft) where face detection does not need more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.imaging import load_image, load_image_reduced
from tcnn.predictor import LandmarkDetector


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """The astronaut upscaled 6x (3072 px; no more detail than the original), JPEG."""
    path = tmp_path_factory.mktemp("big") / "astronaut-x6.jpg"
    img = Image.fromarray(astronaut).resize((3072, 3072), Image.Resampling.BICUBIC)
    img.save(path, quality=92)
    return path


@pytest.mark.slow
def test_reduced_decode_keeps_min_side(big_jpeg: Path, tmp_path: Path) -> None:
    rgb, r = load_image_reduced(big_jpeg, 1000)
    assert r == 2 and rgb.shape == (1536, 1536, 3)  # 768 would be under 1000
    rgb, r = load_image_reduced(big_jpeg, 700)
    assert r == 4 and rgb.shape == (768, 768, 3)
    full = load_image(big_jpeg)
    assert load_image_reduced(big_jpeg, 2000)[1] == 1  # 1536 < 2000: no reduction
    # the reduced image is the full one averaged over r x r blocks, up to JPEG's rounding
    blocks = full.reshape(768, 4, 768, 4, 3).mean((1, 3))
    assert np.abs(blocks - rgb).mean() < 3
    png = tmp_path / "a.png"
    Image.fromarray(full[:1200, :1200]).save(png)
    assert load_image_reduced(png, 300)[1] == 1  # only JPEG files are reduced
    assert load_image_reduced(full, 300)[1] == 1


@pytest.mark.slow
def test_detect_on_a_large_jpeg_matches_the_full_decode(big_jpeg: Path) -> None:
    lm = LandmarkDetector()
    reduced = lm.detect(big_jpeg)  # scanned at 1280 px: decoded at 1/2 (1536 px)
    full = lm.detect(load_image(big_jpeg))  # an array: decoded whole
    assert len(reduced) == len(full) == 1
    a, b = reduced[0], full[0]
    width = b.box.width
    assert np.abs(np.subtract(a.box.as_tuple(), b.box.as_tuple())).max() < 0.03 * width
    assert np.abs(a.landmarks - b.landmarks).max() < 0.02 * width
    assert a.landmarks.shape == (5, 2) and 1000 < a.landmarks[0, 0] < 2000  # full-size pixels


def test_corrupt_jpeg_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(TcnnError) as exc:
        LandmarkDetector().detect(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
