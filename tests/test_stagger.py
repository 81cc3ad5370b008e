"""tcnn.train.stagger, ``tcnn stagger`` and staggered models at run time: a mirror average split
into its two views, each placed on its own box."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tcnn.apps.cli import main
from tcnn.card import read_card, update_card
from tcnn.codec import from_crop
from tcnn.errors import TcnnError
from tcnn.imaging import crop_batch
from tcnn.predictor import CHUNK, LandmarkDetector, implied_box
from tcnn.registry import DEFAULTS, WEIGHTS, Model, load_model
from tcnn.types import Box

pytest.importorskip("onnx")
stagger = pytest.importorskip("tcnn.train.stagger")

#: The astronaut's face box (continuous pixels), as HOG would give it roughly.
FACE = Box(180.0, 70.0, 270.0, 160.0)


@pytest.fixture(scope="module")
def staggered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tcnn68h-int8 (small, mirror-averaging, int8) in its staggered form."""
    out = tmp_path_factory.mktemp("stagger") / "h-staggered.onnx"
    card = stagger.stagger_model("tcnn68h-int8", out, "h-staggered")
    assert card.staggered_mirror and card.source["staggered"]["from"] == "tcnn68h-int8"  # type: ignore[index]
    return out


def _boxes(n: int) -> list[Box]:
    rng = np.random.default_rng(3)
    return [
        Box(FACE.left + dx, FACE.top + dy, FACE.right + dx, FACE.bottom + dy)
        for dx, dy in rng.uniform(-8, 8, (n, 2))
    ]


def _crops(image: np.ndarray, m: Model, boxes: list[Box]) -> np.ndarray:
    regions = [m.card.crop.region(b, image.shape) for b in boxes]
    return crop_batch([(image, r) for r in regions], m.input_size, m.card.crop.antialias)


def test_both_views_answer_as_the_original(astronaut: np.ndarray, staggered: Path) -> None:
    original, split = load_model("tcnn68h-int8"), load_model(staggered)
    crops = _crops(astronaut, original, _boxes(5))
    want = original.predict(crops)
    np.testing.assert_allclose(split.predict(crops), want, atol=1e-5)
    plain, mirrored = split.predict(crops, view="plain"), split.predict(crops, view="mirrored")
    np.testing.assert_allclose((plain + mirrored) / 2, want, atol=1e-5)
    # each view alone is an answer of its own (the mirror's spread: under a pixel, not zero)
    gap = np.linalg.norm(plain - mirrored, axis=-1).mean() * split.input_size
    assert 0.01 < gap < 3.0
    with pytest.raises(ValueError, match="needs a staggered model"):
        original.predict(crops, view="plain")
    with pytest.raises(ValueError, match="view 'left'"):
        split.predict(crops, view="left")
    for view in ("both", "plain", "mirrored"):  # no crops, no answers
        assert split.predict(crops[:0], view=view).shape == (0, 68, 2)


def test_a_staggered_model_places_each_face_twice(astronaut: np.ndarray, staggered: Path) -> None:
    """As it is in the given box, then mirrored in the box that answer implies; the mean."""
    det = LandmarkDetector(staggered, face_detector="dlib")
    m, boxes = det.model, _boxes(3)
    relation = m.card.box_from_landmarks
    assert relation is not None
    first = from_crop(
        m.predict(_crops(astronaut, m, boxes), view="plain"),
        [m.card.crop.region(b, astronaut.shape) for b in boxes],
    )
    moved = [implied_box(p, b, relation) for p, b in zip(first, boxes)]
    second = from_crop(
        m.predict(_crops(astronaut, m, moved), view="mirrored"),
        [m.card.crop.region(b, astronaut.shape) for b in moved],
    )
    got = det.landmarks_batch([(astronaut, b) for b in boxes])
    assert det.landmarks_batch([]).shape == (0, 68, 2)
    np.testing.assert_allclose(got, (first + second) / 2, atol=1e-3)
    # more faces than a chunk run through the worker threads, with the same answers
    many = _boxes(CHUNK * 4 + 3)
    both = det.landmarks_batch([(astronaut, b) for b in many])
    one_by_one = np.concatenate([det.landmarks_batch([(astronaut, b)]) for b in many])
    np.testing.assert_allclose(both, one_by_one, atol=1e-3)


def test_refine_gives_both_views_at_both_places(astronaut: np.ndarray, staggered: Path) -> None:
    items = [(astronaut, b) for b in _boxes(4)]
    want = LandmarkDetector("tcnn68h-int8", face_detector="dlib", refine=True)
    got = LandmarkDetector(staggered, face_detector="dlib", refine=True)
    np.testing.assert_allclose(got.landmarks_batch(items), want.landmarks_batch(items), atol=1e-3)


def test_the_68_point_default_is_staggered(astronaut: np.ndarray) -> None:
    card = load_model(points=68).card
    assert DEFAULTS[68] == card.name and card.staggered_mirror
    faces = LandmarkDetector(points=68, face_detector="dlib").detect(astronaut)
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    eyes = faces[0].landmarks[36:48]  # both eyes inside the face box HOG gives
    box = faces[0].box
    assert (eyes[:, 0] > box.left).all() and (eyes[:, 0] < box.right).all()


def test_what_cannot_be_staggered(staggered: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    with pytest.raises(TcnnError, match="does not average its mirror image"):
        stagger.stagger_model("vanilla5-fast", out, "x")
    with pytest.raises(TcnnError, match="already staggered"):
        stagger.stagger_model(staggered, out, "x")
    assert not out.exists()


def test_a_card_that_does_not_match_its_graph_is_refused(staggered: Path, tmp_path: Path) -> None:
    """A one-input graph whose card says staggered (and the reverse) does not load."""
    path = tmp_path / "liar.onnx"
    shutil.copy(WEIGHTS / "tcnn68h-int8.onnx", path)
    update_card(path, staggered_mirror=True)
    with pytest.raises(TcnnError, match=r"inputs \(image\) do not match its card \(staggered"):
        load_model(path)
    other = tmp_path / "other.onnx"
    shutil.copy(staggered, other)
    update_card(other, staggered_mirror=False)
    with pytest.raises(TcnnError, match=r"\(image, image_mirrored\) do not match .*\(one input\)"):
        load_model(other)
    plain = tmp_path / "plain.onnx"  # vanilla5-fast does not average its mirror image
    shutil.copy(WEIGHTS / "vanilla5-fast.onnx", plain)
    with pytest.raises(TcnnError, match="staggered_mirror needs mirror_average"):
        update_card(plain, staggered_mirror=True)


def test_tools_that_take_one_input_refuse_a_staggered_model(
    staggered: Path, tmp_path: Path
) -> None:
    quantize = pytest.importorskip("tcnn.train.quantize")
    with pytest.raises(TcnnError, match="run quantize on the model it was made from"):
        quantize.quantize_model(staggered, tmp_path / "q.onnx", name="q")
    assert not (tmp_path / "q.onnx").exists()


def test_cli_stagger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "h-st.onnx"
    assert main(["stagger", "tcnn68h", "-o", str(out)]) == 0
    assert "h-st, staggered views" in capsys.readouterr().out
    card = read_card(out)
    assert card.name == "h-st" and card.staggered_mirror
    assert out.with_suffix(".json").exists()
    bad = tmp_path / "bad.onnx"
    assert main(["stagger", "vanilla5-fast", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "does not average its mirror image" in err and len(err.strip().splitlines()) == 1
    assert not bad.exists()
