"""tcnn.train.ensemble and ``tcnn ensemble``: one graph answering the mean of its members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tcnn.apps.cli import main
from tcnn.card import graph_digest, read_card
from tcnn.errors import TcnnError
from tcnn.imaging import crop_batch
from tcnn.registry import WEIGHTS, load_model
from tcnn.types import Box

pytest.importorskip("onnx")
ensemble = pytest.importorskip("tcnn.train.ensemble")

#: The astronaut's face box (continuous pixels), as HOG would give it roughly.
FACE = Box(180.0, 70.0, 270.0, 160.0)


def _crops(image: np.ndarray, model: str, n: int = 6) -> np.ndarray:
    """Network input for ``model``: the face box shifted a little, cut by the card's rule."""
    m = load_model(model)
    rng = np.random.default_rng(1)
    boxes = [
        Box(FACE.left + dx, FACE.top + dy, FACE.right + dx, FACE.bottom + dy)
        for dx, dy in rng.uniform(-6, 6, (n, 2))
    ]
    pairs = [(image, m.card.crop.region(b, image.shape)) for b in boxes]
    crops = crop_batch(pairs, m.card.input_size, m.card.crop.antialias)
    return np.asarray(m.network_input(crops))


def _answer(model: str | Path, x: np.ndarray) -> np.ndarray:
    m = load_model(model)
    return np.asarray(m.session.run(None, {"image": x})[0])


def test_ensemble_answers_the_mean_of_its_members(astronaut: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "pair.onnx"
    card = ensemble.ensemble_models(["tcnn68h", "tcnn68"], out, "pair")
    x = _crops(astronaut, "tcnn68h")
    want = (_answer("tcnn68h", x) + _answer("tcnn68", x)) / 2
    np.testing.assert_allclose(_answer(out, x), want, atol=1e-5)
    assert card.name == "pair" and card.input_size == 52 and card.metrics == {}
    members = card.source["ensemble"]  # type: ignore[index]
    assert [m["name"] for m in members] == ["tcnn68h", "tcnn68"]
    assert members[0]["graph_digest"] == graph_digest(WEIGHTS / "tcnn68h.onnx")
    assert read_card(out) == card and out.with_suffix(".json").is_file()
    assert card.training["data"] == ""  # the two learnt from different data


def test_default_detector_is_a_members_unless_given(tmp_path: Path) -> None:
    # tcnn68 names none, tcnn68h names RetinaFace: the pair gets RetinaFace
    assert (
        ensemble.ensemble_models(["tcnn68", "tcnn68h"], tmp_path / "a.onnx", "a").default_detector
        == "retinaface"
    )
    given = ensemble.ensemble_models(
        ["tcnn68", "tcnn68h"], tmp_path / "b.onnx", "b", default_detector="dlib"
    )
    assert (
        given.default_detector == "dlib"
        and read_card(tmp_path / "b.onnx").default_detector == "dlib"
    )
    assert (
        ensemble.ensemble_models(["tcnn68", "vanilla68"], tmp_path / "c.onnx", "c").default_detector
        == ""
    )
    with pytest.raises(TcnnError, match="unknown face detector 'hog'"):
        ensemble.ensemble_models(
            ["tcnn68", "tcnn68h"], tmp_path / "d.onnx", "d", default_detector="hog"
        )
    assert not (tmp_path / "d.onnx").exists()


def test_members_may_differ_in_mirror_averaging(astronaut: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "mixed.onnx"  # vanilla5-fast: vanilla5's network without mirror averaging
    card = ensemble.ensemble_models(["vanilla5", "vanilla5-fast"], out, "mixed")
    x = _crops(astronaut, "vanilla5")
    want = (_answer("vanilla5", x) + _answer("vanilla5-fast", x)) / 2
    np.testing.assert_allclose(_answer(out, x), want, atol=1e-5)
    assert not card.mirror_average  # true only when every member averages
    members = card.source["ensemble"]  # type: ignore[index]
    assert [m["mirror_average"] for m in members] == [True, False]


def test_a_smaller_member_gets_the_crop_resized(astronaut: np.ndarray, tmp_path: Path) -> None:
    """tcnn68h (52 px) beside a 64 px model: the 52 px member sees the 64 px crop resized,
    which answers close to its own 52 px crop (resampling twice, not another face)."""
    out = tmp_path / "mixed.onnx"
    card = ensemble.ensemble_models(["tcnn68h", "tcnn68hid-int8"], out, "mixed")
    assert card.input_size == 64
    # both learnt from the same data: the card names it (quantize draws its faces there)
    assert card.training["data"] == read_card(WEIGHTS / "tcnn68h.onnx").training["data"]
    x64 = _crops(astronaut, "tcnn68hid-int8")
    own = (_answer("tcnn68h", _crops(astronaut, "tcnn68h")) + _answer("tcnn68hid-int8", x64)) / 2
    got = _answer(out, x64)
    shift = np.linalg.norm(got - own, axis=-1)  # crop units: 0.01 is 0.64 px of the 64 px crop
    assert shift.mean() < 0.01 and shift.max() < 0.05


def test_a_staggered_model_is_refused(tmp_path: Path) -> None:
    """The default is staggered (two graph inputs): ensemble says to join its source instead."""
    with pytest.raises(TcnnError, match=r"staggered .*run ensemble on the model it was made from"):
        ensemble.ensemble_models(["tcnn68h", "tcnn68st-int8"], tmp_path / "x.onnx", "x")
    assert not (tmp_path / "x.onnx").exists()


def test_members_must_cut_the_same_crop(tmp_path: Path) -> None:
    with pytest.raises(TcnnError, match="differ in points"):
        ensemble.ensemble_models(["tcnn68h", "vanilla5"], tmp_path / "x.onnx", "x")
    with pytest.raises(TcnnError, match="two models or more"):
        ensemble.ensemble_models(["tcnn68h"], tmp_path / "x.onnx", "x")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_ensemble(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pair.onnx"
    assert main(["ensemble", "tcnn68h", "tcnn68", "-o", str(out)]) == 0
    assert "the mean of tcnn68h, tcnn68" in capsys.readouterr().out
    assert read_card(out).name == "pair"
    bad = tmp_path / "bad.onnx"
    assert main(["ensemble", "tcnn68h", "nosuch", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'nosuch'" in err and len(err.strip().splitlines()) == 1
    assert not bad.exists()
