import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tcnn.cli import main
from tcnn.config import load_config
from tcnn.errors import TcnnError
from tcnn.models.registry import load_model
from tcnn.train import train


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('name = "x"\nepochs = 3\nchannels = [8, 8, 8, 8]\n')
    cfg = load_config(f, ["lr=0.01", "mirror=false", "channels=4,4,4,4"])
    assert (cfg.name, cfg.optim.epochs, cfg.optim.lr, cfg.augment.mirror) == ("x", 3, 0.01, False)
    assert cfg.channels == (4, 4, 4, 4)
    with pytest.raises(TcnnError, match="unknown key 'nope'"):
        load_config(None, ["nope=1"])
    with pytest.raises(TcnnError, match="epochs: 'many' is not a valid int"):
        load_config(None, ["epochs=many"])
    with pytest.raises(TcnnError, match="expected key=value"):
        load_config(None, ["epochs"])


def test_train_small_slice_then_resume(tmp_path: Path, shared_root: Path) -> None:
    overrides = [
        "limit=160",
        "epochs=1",
        "batch_size=32",
        "threads=1",
        f"data_root={shared_root}",
        "name=tiny",
    ]
    run = train(load_config(None, overrides), tmp_path / "run", progress=False)
    for name in (
        "checkpoint.pt",
        "config.toml",
        "metrics.jsonl",
        "loss.png",
        "model.onnx",
        "model.json",
    ):
        assert (run / name).exists(), name
    model = load_model(run / "model.onnx")
    assert model.points == 5 and model.card.training["train_faces"] == 152
    with pytest.raises(TcnnError, match="already holds a run"):
        train(load_config(None, overrides), run, progress=False)
    # Resume to two epochs through the CLI: one more line of metrics.
    code = main(
        [
            "train",
            "--run-dir",
            str(run),
            "--resume",
            *sum([["--set", o] for o in [*overrides, "epochs=2"]], []),
        ]
    )
    assert code == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
