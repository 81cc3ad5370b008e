"""tcnn calibrate: a copy of a model whose graph adds per-point offsets, stated in its card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from tcnn import LandmarkDetector
from tcnn.errors import TcnnError
from tcnn.registry import load_model
from tcnn.train.calibrate import write_calibrated
from tcnn.types import Box


def test_calibrated_model_adds_its_offsets_in_crop_units(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    offsets = np.zeros((68, 2), np.float32)
    offsets[8] = (0.0, 0.02)  # the chin 2% of the crop lower
    offsets[30] = (-0.01, 0.0)  # the nose tip 1% left
    out = write_calibrated("tcnn68", offsets, tmp_path / "c.onnx", "c68", {"data": "made up"})
    box = Box(170.0, 60.0, 290.0, 180.0)
    before = LandmarkDetector(model="tcnn68", face_detector="dlib").landmarks(astronaut, [box])[0]
    after = LandmarkDetector(model=str(out), face_detector="dlib").landmarks(astronaut, [box])[0]
    side = box.width * load_model("tcnn68").card.crop.scale  # the crop region's side in pixels
    moved = after - before
    assert moved[8] == pytest.approx((0.0, 0.02 * side), abs=1e-3)
    assert moved[30] == pytest.approx((-0.01 * side, 0.0), abs=1e-3)
    others = np.delete(moved, [8, 30], axis=0)
    assert np.abs(others).max() < 1e-3
    card = load_model(out).card
    assert card.name == "c68" and card.training["calibration"] == {"data": "made up"}
    with pytest.raises(TcnnError, match="not an uncalibrated tcnn landmark model"):
        write_calibrated(str(out), offsets, tmp_path / "twice.onnx", "c2", {})


@pytest.mark.slow
def test_calibrate_refuses_a_dataset_of_other_points(shared_root: Path, tmp_path: Path) -> None:
    from tcnn.train.calibrate import fit_offsets

    with pytest.raises(TcnnError, match="aflw68-train has 68 points, the model 5"):
        fit_offsets("vanilla5", "aflw68-train", shared_root)


def test_shape_correction_recovers_a_linear_style(rng_answers: np.ndarray) -> None:
    """Labels that differ from the answers by a known linear map of the answer: with every
    component and no penalty the fit finds that map, and a point without a location (NaN) in
    some faces leaves only those faces out of its regression."""
    from tcnn.train.calibrate import shape_correction

    answers = rng_answers
    flat = answers.reshape(len(answers), -1)
    true = np.zeros((flat.shape[1], flat.shape[1]))
    true[2 * 30, 2 * 8 + 1] = 0.2  # the chin moves down with the nose tip's x
    true[2 * 0, 2 * 16] = -0.1  # the right jaw end follows the left one
    labels = answers + (flat @ true).reshape(answers.shape) + np.array([0.0, 0.01])
    labels[:40, 5] = np.nan
    matrix, bias = shape_correction(answers, labels, components=flat.shape[1], ridge=0.0)
    np.testing.assert_allclose(matrix, true, atol=1e-6)
    np.testing.assert_allclose(bias, np.tile([0.0, 0.01], (68, 1)), atol=1e-6)
    with pytest.raises(TcnnError, match="3 faces cannot fit 16 components"):
        shape_correction(answers[:3], labels[:3])
    with pytest.raises(TcnnError, match=r"ridge -1\.0 must be 0 or more"):
        shape_correction(answers, labels, ridge=-1.0)


def test_cli_shape_settings_need_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tcnn.apps.cli import main

    out = tmp_path / "c.onnx"
    argv = ["calibrate", "tcnn68", "--data", "aflw68-train", "-o", str(out), "--ridge", "0.1"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "add --shape" in err
    assert not out.exists()


@pytest.fixture
def rng_answers() -> np.ndarray:
    """200 made-up 68-point answers in crop units: a mean face plus noise."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, (68, 2))
    return base + rng.normal(0, 0.02, (200, 68, 2))


def test_shape_calibrated_model_applies_its_matrix(tmp_path: Path, astronaut: np.ndarray) -> None:
    """The graph adds answer @ matrix + bias (crop units) to the answer, as fitted."""
    from tcnn.codec import to_crop

    matrix = np.zeros((136, 136), np.float32)
    matrix[2 * 30, 2 * 8 + 1] = 0.1  # the chin's y moves by a tenth of the nose tip's x
    bias = np.zeros((68, 2), np.float32)
    bias[48] = (0.01, 0.0)
    out = write_calibrated("tcnn68", bias, tmp_path / "s.onnx", "s68", {"data": "x"}, matrix)
    box = Box(170.0, 60.0, 290.0, 180.0)
    before = LandmarkDetector(model="tcnn68", face_detector="dlib").landmarks(astronaut, [box])[0]
    after = LandmarkDetector(model=str(out), face_detector="dlib").landmarks(astronaut, [box])[0]
    card = load_model("tcnn68").card
    region = card.crop.region(box, astronaut.shape)
    side = region.width
    nose_x = to_crop(before, region)[30, 0]
    moved = after - before
    assert moved[8] == pytest.approx((0.0, 0.1 * nose_x * side), abs=1e-3)
    assert moved[48] == pytest.approx((0.01 * side, 0.0), abs=1e-3)
    assert np.abs(np.delete(moved, [8, 48], axis=0)).max() < 1e-3


@pytest.mark.slow
def test_shape_calibration_fitted_on_training_faces_helps_held_out_faces(
    shared_root: Path, tmp_path: Path
) -> None:
    """tcnn68's shape calibration, fitted on aflw68-train, lowers its error on aflw68-test
    (faces it never saw), on the boxes it was fitted on and on RetinaFace's mapped onto them."""
    from tcnn.train.calibrate import answers_and_labels, calibrate

    out = calibrate("tcnn68", "aflw68-train", tmp_path / "s.onnx", "s", shared_root, shape=True)
    note = load_model(out).card.training["calibration"]
    assert note["components"] == 16 and set(note["faces"]) == {"dlib"}  # its only detector
    for detector in ("dlib", "retinaface"):
        plain = answers_and_labels("tcnn68", "aflw68-test", shared_root, detector)
        shaped = answers_and_labels(str(out), "aflw68-test", shared_root, detector)
        np.testing.assert_array_equal(plain[1], shaped[1])  # the same faces and boxes
        err = [np.nanmean(np.linalg.norm(a - b, axis=-1)) for a, b in (plain, shaped)]
        assert err[1] < err[0]
