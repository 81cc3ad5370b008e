import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tcnn.apps.cli import main
from tcnn.errors import TcnnError
from tcnn.registry import load_model
from tcnn.train.config import load_config
from tcnn.train.loop import train


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('name = "x"\nepochs = 3\nchannels = [8, 8, 8, 8]\n')
    cfg = load_config(f, ["lr=0.01", "mirror=false", "channels=4,4,4,4"])
    assert (cfg.name, cfg.optim.epochs, cfg.optim.lr, cfg.augment.mirror) == ("x", 3, 0.01, False)
    assert cfg.channels == (4, 4, 4, 4)
    with pytest.raises(TcnnError, match="unknown key 'nope'"):
        load_config(None, ["nope=1"])
    with pytest.raises(TcnnError, match=r"field 'optim\.epochs': 'many' is not a valid int"):
        load_config(None, ["epochs=many"])
    with pytest.raises(TcnnError, match="expected key=value"):
        load_config(None, ["epochs"])
    deep = load_config(None, ["trunk=deep", "channels=8,8,8,8"])  # a deep trunk takes five
    with pytest.raises(TcnnError, match="config vanilla5: trunk 'deep' takes 5 channel counts"):
        train(deep, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


@pytest.mark.slow
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


@pytest.mark.slow
def test_new_runs_record_box_relation_and_old_runs_still_export(
    tmp_path: Path, shared_root: Path
) -> None:
    import torch

    from tcnn.train.data.samples import box_relation, training_samples

    overrides = ["limit=160", "epochs=1", "threads=1", f"data_root={shared_root}", "name=old"]
    cfg = load_config(None, overrides)
    run = train(cfg, tmp_path / "run", progress=False)
    card = load_model(run / "model.onnx").card
    assert card.box_from_landmarks == box_relation(training_samples(cfg, progress=False))
    # Make the checkpoint look like one saved before the renames: flat config with arch and
    # colour, arch with act, no box relation recorded.
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    saved = dict(state["config"])
    flat = {**saved.pop("optim"), **saved.pop("augment"), **saved}
    flat["arch"], flat["colour"] = flat.pop("activation"), flat.pop("colour_jitter")
    state["config"] = flat
    state["arch"]["act"] = state["arch"].pop("activation")
    del state["data"]["box_from_landmarks"]
    torch.save(state, run / "checkpoint.pt")
    out = tmp_path / "again.onnx"
    assert main(["export", str(run), "--output", str(out), "--name", "again"]) == 0
    again = load_model(out).card
    assert again.name == "again" and again.box_from_landmarks == card.box_from_landmarks
    assert again.offset == card.offset and again.architecture == card.architecture


def test_init_reads_a_shipped_models_weights() -> None:
    import numpy as np
    import torch

    from tcnn.schemes import scheme_for
    from tcnn.train.loop import weights_from_onnx
    from tcnn.train.models.vanilla import InferenceNet, VanillaArch, VanillaCNN

    model = load_model("vanilla5")
    arch = model.card.architecture
    net = VanillaCNN(
        VanillaArch(5, 40, tuple(arch["channels"]), arch["hidden"], arch["activation"])
    )
    net.load_state_dict(weights_from_onnx("vanilla5", net))
    perm = scheme_for(5).flip_permutation().tolist()
    wrapped = InferenceNet(net, perm, model.card.offset).eval()
    crops = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    with torch.no_grad():
        ours = wrapped(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    np.testing.assert_allclose(ours, model.predict(crops), atol=1e-4)  # the same network
    wide = VanillaCNN(VanillaArch(5, 40, (24, 48, 64, 64), 100, "abstanh"))
    with pytest.raises(TcnnError, match=r"no weights trunk\.0\.weight"):
        weights_from_onnx("vanilla5", wide)


@pytest.mark.slow
def test_label_shift_moves_training_labels_on_both_axes(shared_root: Path) -> None:
    import numpy as np

    from tcnn.train.data.samples import training_samples

    base = [f"data_root={shared_root}", "limit=4"]
    plain = training_samples(load_config(None, base), progress=False)
    moved = training_samples(load_config(None, [*base, "label_shift=-0.3267"]), progress=False)
    for a, b in zip(plain, moved):
        np.testing.assert_allclose(b.landmarks - a.landmarks, 0.3267, atol=1e-5)
        assert a.box == b.box


@pytest.mark.slow
def test_label_shift_per_source_of_a_union(shared_root: Path) -> None:
    import numpy as np

    from tcnn.train.data.samples import training_samples

    base = [f"data_root={shared_root}", "limit=3", "data=mtfl-train+mtfl-train", "detector=dlib"]
    plain = training_samples(load_config(None, base), progress=False)
    moved = training_samples(load_config(None, [*base, "label_shift=0.5,-0.25"]), progress=False)
    assert len(plain) == len(moved) == 6
    deltas = [float((b.landmarks - a.landmarks).mean()) for a, b in zip(plain, moved)]
    np.testing.assert_allclose(deltas, [-0.5] * 3 + [0.25] * 3, atol=1e-5)
    with pytest.raises(TcnnError, match=r"label_shift: 3 values for 2 datasets"):
        training_samples(load_config(None, [*base, "label_shift=1,2,3"]), progress=False)


def test_init_from_a_run_folder_or_checkpoint(tmp_path: Path) -> None:
    import torch

    from tcnn.train.loop import initial_weights
    from tcnn.train.models.vanilla import VanillaArch, VanillaCNN

    arch = VanillaArch(68, 52, (24, 40, 96, 128), 256, "bnrelu")
    trained = VanillaCNN(arch)
    with torch.no_grad():
        for v in trained.state_dict().values():
            if v.is_floating_point():
                v.uniform_(-1, 1)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": trained.state_dict(), "epoch": 3}, run / "checkpoint.pt")
    for source in (run, run / "checkpoint.pt"):
        fresh = VanillaCNN(arch)
        fresh.load_state_dict(initial_weights(str(source), fresh))
        for key, value in trained.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key
    # A BatchNorm model's ONNX file has its BatchNorm folded in: the error says what to give.
    with pytest.raises(TcnnError, match="folded at export: give its run folder"):
        initial_weights("tcnn68", VanillaCNN(arch))
    with pytest.raises(TcnnError, match=r"has no checkpoint\.pt"):
        initial_weights(str(tmp_path), VanillaCNN(arch))
    with pytest.raises(TcnnError, match=r"no weights trunk\.0\.weight"):
        initial_weights(str(run), VanillaCNN(VanillaArch(68, 52, (8, 8, 8, 8), 16, "bnrelu")))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TcnnError, match="not a tcnn checkpoint"):
        initial_weights(str(tmp_path / "bad.pt"), VanillaCNN(arch))
