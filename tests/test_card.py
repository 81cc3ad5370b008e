import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tcnn.card import Crop, ModelCard, graph_digest, read_card, update_card
from tcnn.errors import TcnnError
from tcnn.registry import WEIGHTS, list_models, load_model
from tcnn.types import Box

SHIPPED = tuple(m.name for m in list_models())
#: The training sets a shipped model may name (``+`` joins several).
#: What a shipped model may learn from: training sets, and aflw68's training part (never its
#: held-out part, the whole of aflw68, or MTFL's AFLW test set).
TRAINING_SETS = {
    "mtfl-train",
    "ytf68-train",
    "mtfl-train-fused68",
    "utkface-dlib68",
    "aflw68-train",
}


def _card() -> ModelCard:
    return ModelCard(
        name="m",
        points=68,
        input_size=52,
        crop=Crop(1.5, 0.1),
        offset=(0.01, -0.02),
        box_from_landmarks=(0.0, 0.1, 1.2),
        metrics={"mean": 0.05},
    )


def test_round_trip_and_defaults() -> None:
    card = _card()
    data = card.to_dict()
    assert data["crop"] == {"scale": 1.5, "shift_y": 0.1, "rule": card.crop.rule, "antialias": True}
    assert data["offset"] == [0.01, -0.02] and data["box_from_landmarks"] == [0.0, 0.1, 1.2]
    assert data["pixel_offset"] == [0.0, 0.0]
    clipped = card.replace(crop={**data["crop"], "clip": True})  # the seed's crop rule
    assert clipped.crop.clip and clipped.to_dict()["crop"]["clip"] is True
    assert ModelCard.from_dict(clipped.to_dict()) == clipped
    assert ModelCard.from_dict(json.loads(json.dumps(data))) == card
    assert card.scheme == "68pt" and card.channel_order == "RGB"
    with pytest.raises(dataclasses_frozen()):
        card.name = "x"  # type: ignore[misc]


def dataclasses_frozen() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"points": None}, "lacks 'points'"),
        ({"crop": None}, "lacks 'crop'"),
        ({"crop": {"shift_y": 0.0}}, "lacks 'crop.scale'"),
        ({"points": "five"}, "field 'points'"),
        ({"points": True}, "field 'points'"),
        ({"offset": [0.1]}, "field 'offset'"),
        ({"mirror_average": "yes"}, "field 'mirror_average'"),
        ({"metrics": [1, 2]}, "field 'metrics'"),
        ({"channel_order": "BRG"}, "channel_order"),
        ({"input_size": 0}, "must be positive"),
    ],
)
def test_bad_cards_fail_in_one_line(change: dict[str, object], message: str) -> None:
    data = {**_card().to_dict(), **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(TcnnError, match=message) as info:
        ModelCard.from_dict(data, "m.onnx")
    assert str(info.value).startswith("m.onnx: ") and "\n" not in str(info.value)


def test_older_cards_still_read() -> None:
    old = {"name": "o", "points": 5, "input_size": 40, "crop": {"scale": 1.0}, "colour": "BGR"}
    card = ModelCard.from_dict({**old, "future_field": {"a": 1}})
    assert card.channel_order == "BGR" and card.box_from_landmarks is None
    assert card.extra == {"future_field": {"a": 1}}
    assert card.to_dict()["future_field"] == {"a": 1} and "colour" not in card.to_dict()
    with pytest.raises(TcnnError, match="not valid JSON"):
        ModelCard.from_json("{", "x.onnx")
    with pytest.raises(TcnnError, match="not a JSON object"):
        ModelCard.from_json("[1]", "x.onnx")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_are_current_and_agree(name: str) -> None:
    onnx = pytest.importorskip("onnx")
    path = WEIGHTS / f"{name}.onnx"
    embedded = json.loads(
        {p.key: p.value for p in onnx.load(str(path)).metadata_props}["tcnn_card"]
    )
    beside = json.loads(path.with_suffix(".json").read_text())
    assert embedded == beside == ModelCard.from_dict(embedded).to_dict()
    card = load_model(name).card
    assert "colour" not in embedded and "act" not in card.architecture
    assert card.box_from_landmarks is not None
    dx, dy, size = card.box_from_landmarks
    # dlib's box is centred on the points across and a little above them (forehead, no chin)
    assert abs(dx) < 0.05 and -0.3 < dy < 0.0 and 0.8 < size < 2.5
    assert set(card.training["data"].split("+")) <= TRAINING_SETS


def test_box_from_landmarks_inverts_the_relation() -> None:
    card = load_model("vanilla68").card
    assert card.box_from_landmarks is not None
    pts = np.random.default_rng(0).uniform(100, 180, (68, 2))
    box = Box.from_landmarks(pts, card.box_from_landmarks)
    assert np.allclose(box.landmark_relation(pts), card.box_from_landmarks, atol=1e-9)


def test_update_card_changes_only_the_metadata(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    shutil.copy(WEIGHTS / "vanilla5.onnx", path)

    def graph(p: Path) -> str:
        return hashlib.sha256(onnx.load(str(p)).graph.SerializeToString()).hexdigest()

    before, digest = graph(path), graph_digest(path)
    card = update_card(path, name="renamed", metrics={"mean": 0.5})
    assert graph(path) == before
    assert graph_digest(path) == digest != graph_digest(WEIGHTS / "vanilla5-fast.onnx")
    assert (
        hashlib.sha256(path.read_bytes()).digest()
        != hashlib.sha256((WEIGHTS / "vanilla5.onnx").read_bytes()).digest()
    )  # the file itself did change
    assert read_card(path) == card and card.name == "renamed"
    assert json.loads(path.with_suffix(".json").read_text())["metrics"] == {"mean": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]
    with pytest.raises(TcnnError, match="field 'points'"):
        update_card(path, points="many")
    assert read_card(path) == card  # a failed update leaves the file as it was
