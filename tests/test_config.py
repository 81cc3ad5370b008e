import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from tcnn.errors import TcnnError
from tcnn.train.config import Augment, Optim, TrainConfig, TweakConfig, load_config, to_toml

ROOT = Path(__file__).resolve().parent.parent


def test_tables_dotted_keys_and_shorthand(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('activation = "bnrelu"\n[optim]\nlr = 0.01\n[augment]\ncolour_jitter = 0.2\n')
    cfg = load_config(f, ["optim.epochs=3", "mirror=false", "batch_size=16"])
    assert cfg.activation == "bnrelu"
    assert cfg.optim == Optim(epochs=3, batch_size=16, lr=0.01)
    assert cfg.augment == Augment(mirror=False, colour_jitter=0.2)
    # Tweaking shares the optimiser settings, with its own defaults.
    tw = load_config(None, ["lr=1e-5"], default=TweakConfig())
    assert tw.optim == Optim(epochs=30, lr=1e-5)
    with pytest.raises(TcnnError, match=r"unknown key 'augment\.lr'"):
        load_config(None, ["augment.lr=1"])
    with pytest.raises(TcnnError, match="unknown key 'rotate_deg'"):
        load_config(None, ["rotate_deg=1"], default=TweakConfig())


@pytest.mark.parametrize(
    ("key", "value", "new"),
    [
        ("arch", '"abstanh"', "activation"),
        ("colour", "0.2", "colour_jitter"),
        ("augment.colour", "0.2", "colour_jitter"),
    ],
)
def test_renamed_keys_name_the_new_one(tmp_path: Path, key: str, value: str, new: str) -> None:
    f = tmp_path / "old.toml"
    f.write_text(f"{key} = {value}\n")
    with pytest.raises(TcnnError, match=re.escape(f"{f}: config {key}: renamed to '{new}'")):
        load_config(f)
    with pytest.raises(TcnnError, match=re.escape(f"config {key}: renamed to '{new}'")):
        load_config(None, [f"{key}=1"])


def test_toml_round_trip_and_saved_configs() -> None:
    cfg = load_config(ROOT / "configs" / "vanilla68.toml", ["threads=1"])
    assert (cfg.activation, cfg.optim.epochs, cfg.optim.weight_decay) == ("bnrelu", 160, 1e-4)
    assert load_config(None, [], default=TrainConfig()) == TrainConfig()
    text = to_toml(cfg)
    assert "[optim]" in text and "[augment]" in text
    again = TrainConfig.from_saved(tomllib.loads(text))
    assert again == cfg
    assert TrainConfig.from_saved(dataclasses.asdict(cfg)) == cfg
    # A checkpoint saved before the tables and renames (flat keys, arch, colour) still loads.
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("optim", "augment")}
    old = {**old, "arch": old.pop("activation"), "lr": 0.002, "epochs": 160, "colour": 0.3}
    legacy = TrainConfig.from_saved(old)
    assert legacy.activation == "bnrelu" and legacy.augment.colour_jitter == 0.3
    assert legacy.optim.lr == 0.002 and legacy.optim.epochs == 160


def test_shipped_cards_configs_still_read() -> None:
    import json

    from tcnn.registry import WEIGHTS

    configs = []
    for side in sorted(WEIGHTS.glob("*.json")):
        training = json.loads(side.read_text())["training"]
        # an ensemble's card (tcnn ensemble) keeps each member's training record
        members = training.get("members", [training])
        configs += [m["config"] for m in members]
    assert len(configs) > len(list(WEIGHTS.glob("*.json")))  # the ensemble's two members
    for saved in configs:
        cfg = TrainConfig.from_saved(saved)
        epochs = saved["optim"]["epochs"] if "optim" in saved else saved["epochs"]
        assert cfg.data == saved["data"] and cfg.optim.epochs == epochs


def test_set_values_are_checked_against_the_field_type() -> None:
    cfg = load_config(None, ["channels=4,8,8,16", "label_shift=0.5", "mirror=off", "lr=1"])
    assert cfg.channels == (4, 8, 8, 16) and cfg.label_shift == (0.5,)
    assert cfg.augment.mirror is False and cfg.optim.lr == 1.0
    with pytest.raises(TcnnError, match=r"^config field 'channels': 'x' is not a valid int"):
        load_config(None, ["channels=4,x"])
    # four widths for the seed's trunk, five for the deep one: how many is checked when the
    # network is built (tests/test_train.py), since it depends on `trunk`
    assert load_config(None, ["channels=4,8"]).channels == (4, 8)
    with pytest.raises(TcnnError, match=r"field 'augment\.mirror': 'maybe' is not a valid bool"):
        load_config(None, ["mirror=maybe"])
