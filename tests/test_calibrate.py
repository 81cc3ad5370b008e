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
