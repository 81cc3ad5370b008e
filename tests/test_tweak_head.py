"""tcnn tweak-head: the shipped tcnn68's step 3 (its FC5-FC6 head fine-tuned), run by command.

End to end on the shipped model and a few real training faces of each source of its config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from tcnn import LandmarkDetector  # noqa: E402
from tcnn.apps.cli import main  # noqa: E402
from tcnn.card import graph_digest  # noqa: E402
from tcnn.registry import load_model, resolve  # noqa: E402
from tcnn.types import Box  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOX = Box(170.0, 60.0, 290.0, 180.0)  # the astronaut's face

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_config(shared_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/tcnn68.toml on its first 60 ytf68 training faces, read from the shared data.

    Only ytf68's human labels: the pseudo-labelled sources would be labelled whole by dlib
    first (minutes) in the test session's empty cache.
    """
    lines = {
        "name": '"tiny68"',
        "data": '"ytf68-train"',
        "label_shift": "[0.9239]",
        "limit": "60",
        "data_root": f'"{shared_root}"',
    }
    text = (ROOT / "configs" / "tcnn68.toml").read_text()
    kept = [line for line in text.splitlines() if line.split(" = ")[0] not in lines]
    assert "input_size = 52" in kept and "[optim]" in kept
    top = [f"{key} = {value}" for key, value in lines.items()]  # TOML values as written
    path = tmp_path_factory.mktemp("config") / "tiny68.toml"
    path.write_text("\n".join(top + kept) + "\n")
    return path


def _tweak_head(out: Path, config: Path, *options: str) -> Path:
    code = main(["tweak-head", "tcnn68", "--config", str(config), "-o", str(out), "-q", *options])
    assert code == 0
    return out


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_zero_epochs_reproduce_the_model_and_the_card_names_the_step(
    tiny_config: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    out = _tweak_head(tmp_path / "t68.onnx", tiny_config, "--epochs", "0", "--name", "t68")
    model = load_model(out)
    assert model.card.name == "t68"
    note = model.card.training["head_fine_tune"]
    command = f"tcnn tweak-head tcnn68 --config {tiny_config} --epochs 0 -o {out} --name t68"
    assert note["command"] == command
    assert "tcnn tweak-head" in note["what"] and "benchmarks" not in note["what"]
    assert note["base_graph_sha256"] == graph_digest(resolve("tcnn68"))
    assert note["epochs"] == 0 and note["val_before"] == note["val_after"]
    # 60 faces, 5% held out: each training face, its mirror and one jittered crop
    assert note["features"] == 3 * 57
    assert model.card.training["steps"][-1] == f"4: {command}"
    # the untouched head, unfolded from its BatchNorm and written back: the same answers
    base = LandmarkDetector(model="tcnn68", face_detector="dlib").landmarks(astronaut, [BOX])[0]
    got = LandmarkDetector(model=str(out), face_detector="dlib").landmarks(astronaut, [BOX])[0]
    assert np.abs(got - base).max() < 1e-3  # pixels, on a 180-pixel crop
    assert (out.with_suffix(".json")).is_file()


def test_one_epoch_moves_the_head_only(
    tiny_config: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    out = _tweak_head(tmp_path / "t1.onnx", tiny_config, "--epochs", "1", "--lr", "1e-3")
    before, after = _weights(resolve("tcnn68")), _weights(out)
    assert before.keys() == after.keys()
    gemms = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Gemm"]
    head = {name for g in gemms for name in g.input[1:3]}
    assert len(head) == 4
    for name in before.keys() - head:  # convolutions, BatchNorms, mirror constants: untouched
        assert np.array_equal(before[name], after[name]), name
    assert all(not np.allclose(before[name], after[name]) for name in head)
    note = load_model(out).card.training["head_fine_tune"]
    assert note["epochs"] == 1 and note["val_after"] != note["val_before"]
    base = LandmarkDetector(model="tcnn68", face_detector="dlib").landmarks(astronaut, [BOX])[0]
    got = LandmarkDetector(model=str(out), face_detector="dlib").landmarks(astronaut, [BOX])[0]
    assert np.abs(got - base).max() > 1e-2


def test_bad_arguments_fail_in_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["nomodel", "-o", str(tmp_path / "x.onnx")], "nomodel"),
        (["tcnn68", "-o", str(tmp_path / "no" / "x.onnx")], "no folder"),
        (["tcnn68", "-o", str(tmp_path / "x.onnx"), "--epochs", "-1"], "--epochs"),
        (["tcnn68", "-o", str(tmp_path / "x.onnx"), "--config", "nope.toml"], "nope.toml"),
    ]
    for args, words in cases:
        assert main(["tweak-head", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("tcnn: error:") and words in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())
