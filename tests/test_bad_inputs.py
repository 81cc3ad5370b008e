"""Awkward real-world inputs: EXIF-rotated, CMYK, animated, 1x1, a very long strip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.apps.cli import main
from tcnn.imaging import load_image
from tcnn.predictor import LandmarkDetector

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def lm() -> LandmarkDetector:
    return LandmarkDetector()


def _one_face(lm: LandmarkDetector, image: object) -> np.ndarray:
    faces = lm.detect(image)  # type: ignore[arg-type]
    assert len(faces) == 1
    return faces[0].landmarks


def test_exif_rotated_photo_is_read_upright(
    lm: LandmarkDetector, astronaut: np.ndarray, tmp_path: Path
) -> None:
    # A phone stores the pixels sideways and tags them "rotate 90 degrees clockwise to view"
    # (orientation 6); a person sees the upright photo.
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1)))
    exif = stored.getexif()
    exif[ORIENTATION] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    upright = load_image(path)
    assert upright.shape == astronaut.shape
    assert np.abs(upright.astype(int) - astronaut).mean() < 3
    # Landmarks land on the face as a person sees it: where they are on the upright photo.
    np.testing.assert_allclose(_one_face(lm, path), _one_face(lm, astronaut), atol=2.0)
    with Image.open(path) as img:  # a PIL image with the tag is turned too
        assert load_image(img).shape == astronaut.shape


def test_cmyk_jpeg(lm: LandmarkDetector, astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(path, quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    rgb = load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == astronaut.shape
    np.testing.assert_allclose(_one_face(lm, path), _one_face(lm, astronaut), atol=2.0)


def test_animated_gif_gives_its_first_frame(
    lm: LandmarkDetector, astronaut: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(astronaut), Image.new("RGB", (512, 512))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2
    first = load_image(path)
    assert first.shape == astronaut.shape and first.mean() > 50  # not the black frame
    assert len(lm.detect(path)) == 1


def test_one_pixel_image_has_no_face(lm: LandmarkDetector, tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(path)
    assert load_image(path).shape == (1, 1, 3)
    assert lm.detect(path) == []


@pytest.mark.slow
def test_long_strip_has_no_face(lm: LandmarkDetector, tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 30000, 3), np.uint8)).save(path, compress_level=0)
    assert load_image(path).shape == (200, 30000, 3)
    assert lm.detect(path) == []


def test_cli_batch_goes_on_past_awkward_files(
    astronaut: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut).convert("CMYK").save(folder / "a_cmyk.jpg")
    Image.new("RGB", (1, 1)).save(folder / "b_dot.png")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main(["detect", str(folder), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "c_broken.jpg" in err and "Traceback" not in err
    records = json.loads((tmp_path / "out" / "landmarks.json").read_text())
    files = [Path(f["file"]).name for f in records["faces"]]
    assert files == ["a_cmyk.jpg"]
