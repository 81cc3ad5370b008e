"""300-W in its usual layout, written by the test from a real photo and our own points."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tcnn import LandmarkDetector
from tcnn.apps.cli import main

FOLDERS = ("lfpw/trainset", "helen/trainset", "afw", "lfpw/testset", "helen/testset", "ibug")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, astronaut_png: Path) -> Path:
    """One astronaut per folder, labelled with the shipped 68-point model's points."""
    root = tmp_path_factory.mktemp("300w")
    lm = LandmarkDetector(points=68, face_detector="dlib")  # evaluate --detector dlib's boxes
    face = max(lm.detect(astronaut_png), key=lambda f: f.box.width)
    pts = face.landmarks + 0.5  # continuous -> 300-W's 1-based convention
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True)
        shutil.copy(astronaut_png, root / folder / "image_0001.png")
        (root / folder / "image_0001.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    return root


@pytest.mark.slow
def test_evaluate_300w_all_subsets(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--data", "300w", "--root", str(tree), "--detector", "dlib"]
    code = main([*args, "--format", "json", "-q"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    got = {(r["subset"], r["normaliser"]): r for r in rows}
    assert set(got) == {
        (s, n) for s in ("common", "challenging", "full") for n in ("inter-ocular", "inter-pupil")
    }
    assert got["common", "inter-ocular"]["faces"] == 2
    assert got["challenging", "inter-pupil"]["faces"] == 1
    assert got["full", "inter-ocular"]["faces"] == 3
    # The labels are the model's own points: the error is the rounding of the .pts files.
    assert all(r["mean"] < 0.1 for r in rows)
    assert got["full", "inter-pupil"]["mean"] > got["full", "inter-ocular"]["mean"] * 0.99


@pytest.mark.slow
def test_train_on_300w_layout(tree: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tcnn.registry import load_model
    from tcnn.train.config import load_config
    from tcnn.train.loop import train

    cfg = load_config(
        None,
        [
            "data=300w-train",
            f"data_root={tree}",
            "epochs=1",
            "threads=1",
            "name=w",
            "val_fraction=0.3",
        ],
    )
    run = train(cfg, tmp_path / "run", progress=False)
    model = load_model(run / "model.onnx")
    assert model.points == 68 and model.card.training["faces"] == 3
    assert np.isfinite(model.card.offset).all()
