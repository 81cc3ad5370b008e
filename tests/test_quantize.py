"""tcnn.train.quantize: the exact lean graph, the int8 recipe from a card, refusals of bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tcnn.apps.cli import main
from tcnn.card import read_card
from tcnn.errors import TcnnError
from tcnn.predictor import LandmarkDetector
from tcnn.registry import WEIGHTS, load_model
from tcnn.train.data.datasets import Sample
from tcnn.types import Box

onnx = pytest.importorskip("onnx")
quantize = pytest.importorskip("tcnn.train.quantize")

#: The astronaut's face box (continuous pixels), RetinaFace's (rounded).
FACE = Box(178.0, 57.0, 273.0, 177.0)


def _inputs(n: int = 16, size: int = 40) -> np.ndarray:
    """Crops around the face: shifted and scaled copies, as network input (not noise)."""
    from skimage import data

    from tcnn.imaging import crop_batch

    img = data.astronaut()
    rng = np.random.default_rng(0)
    regions = []
    for _ in range(n):
        dx, dy = rng.uniform(-10, 10, 2)
        s = rng.uniform(0.9, 1.1)
        cx, cy = (FACE.left + FACE.right) / 2 + dx, (FACE.top + FACE.bottom) / 2 + dy
        h = FACE.width * s / 2
        regions.append(Box(cx - h, cy - h, cx + h, cy + h))
    crops = crop_batch([(img, r) for r in regions], size, True)
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32)


def _run(model: object, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    data = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"image": x})[0])


def test_lean_graph_is_the_same_function() -> None:
    model = onnx.load(str(WEIGHTS / "vanilla5.onnx"))
    x = _inputs()
    before = _run(model, x)
    assert quantize.lean_graph(model) == 5  # 4 convolutions and FC5
    ops = [n.op_type for n in model.graph.node]
    assert "Abs" not in ops and ops.count("LeakyRelu") == 5
    # the tanh follows the pooling: 3 poolings precede a tanh
    pools = [i for i, op in enumerate(ops) if op == "MaxPool"]
    assert all(ops[i + 1] == "Tanh" for i in pools) and len(pools) == 3
    np.testing.assert_allclose(_run(model, x), before, atol=1e-6)


def test_lean_graph_leaves_a_relu_model_alone() -> None:
    model = onnx.load(str(WEIGHTS / "tcnn68.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert quantize.lean_graph(model) == 0
    assert [n.op_type for n in model.graph.node] == ops


def test_pad_channels_is_the_same_function() -> None:
    model = onnx.load(str(WEIGHTS / "tcnn68.onnx"))
    x = _inputs(size=52)
    before = _run(model, x)
    # tcnn68's convolutions have 24, 40, 96 and 128 filters; the last feeds FC5, not a Conv
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert quantize.pad_channels(model) == [convs[0].name, convs[1].name]
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    assert [shapes[c.input[1]][:2] for c in convs] == [[32, 3], [48, 32], [96, 48], [128, 96]]
    np.testing.assert_allclose(_run(model, x), before, atol=1e-6)


def test_pad_channels_leaves_multiples_of_16_alone() -> None:
    model = onnx.load(str(WEIGHTS / "vanilla5.onnx"))  # 16, 48, 64, 64 filters
    quantize.lean_graph(model)
    before = model.SerializeToString()
    assert quantize.pad_channels(model) == []
    assert model.SerializeToString() == before


def test_half_gemm_weights_stores_float16_and_answers_as_before() -> None:
    model = onnx.load(str(WEIGHTS / "tcnn68.onnx"))
    x = _inputs(size=52)
    before = _run(model, x)
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    size = model.ByteSize()
    assert quantize.half_gemm_weights(model) == [g.input[1] for g in gemms]  # FC5 and FC6
    stored = {t.name: t.data_type for t in model.graph.initializer}
    assert all(stored[f"{g.input[1]}_float16"] == onnx.TensorProto.FLOAT16 for g in gemms)
    assert all(g.input[1] not in stored for g in gemms)  # a Cast makes them, at load
    assert model.ByteSize() < 0.75 * size  # FC5's weights are most of the file
    # float16 keeps 11 significant bits: the answers move by far less than a pixel
    np.testing.assert_allclose(_run(model, x), before, atol=2e-4)
    assert quantize.half_gemm_weights(model) == []  # nothing float32 is left to halve


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vanilla5 quantized on crops of the astronaut (the calibration draw replaced)."""
    out = tmp_path_factory.mktemp("int8") / "v5q.onnx"
    mp = pytest.MonkeyPatch()
    mp.setattr(quantize, "calibration_crops", lambda card, *a: _inputs(64))
    try:
        quantize.quantize_model("vanilla5", out, faces=64, progress=False)
    finally:
        mp.undo()
    return out


@pytest.mark.slow
def test_quantized_model_card_says_how_it_was_made(int8_model: Path) -> None:
    card = read_card(int8_model)
    assert card.name == "vanilla5-int8" and card.metrics == {}
    assert card.purpose.startswith("vanilla5 in int8 (tcnn quantize); ")  # not "float"
    assert card.points == 5 and card.input_size == 40 and card.mirror_average
    q = card.source["quantization"]  # type: ignore[index]
    assert q["float_nodes"] == [
        "/net/trunk/trunk.0/Conv",
        "/net/head/head.0/Gemm",
        "/net/head/head.2/Gemm",
    ]
    assert len(q["quantized_nodes"]) == 3
    assert q["calibration"]["data"] == "mtfl-train" and q["calibration"]["faces"] == 64
    assert q["weights"] == "int8, per output channel, within -64..64 (reduce_range)"
    assert card.source["graph_digest"] == quantize.graph_digest(WEIGHTS / "vanilla5.onnx")  # type: ignore[index]
    assert int8_model.with_suffix(".json").is_file()
    ops = {n.op_type for n in onnx.load(str(int8_model)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.slow
def test_relu_model_is_int8_from_the_first_convolution(tmp_path: Path) -> None:
    """tcnn68 (ReLU): every convolution, ReLU and pooling int8, and its answers near the float."""
    out = tmp_path / "t68q.onnx"
    mp = pytest.MonkeyPatch()
    mp.setattr(quantize, "calibration_crops", lambda card, *a: _inputs(64, 52))
    try:
        card = quantize.quantize_model("tcnn68", out, faces=64, progress=False)
    finally:
        mp.undo()
    q = card.source["quantization"]  # type: ignore[index]
    assert q["quantized_ops"] == ["Conv", "Relu", "MaxPool"]
    assert len(q["float_nodes"]) == 2 and all("Gemm" in n for n in q["float_nodes"])
    assert len(q["quantized_nodes"]) == 4 and all("Conv" in n for n in q["quantized_nodes"])
    assert q["padded_channels"] == q["quantized_nodes"][:2]
    x = _inputs(8, 52)
    got = load_model(out).session.run(None, {"image": x})[0]
    ref = load_model("tcnn68").session.run(None, {"image": x})[0]
    diff = np.linalg.norm(got - ref, axis=-1)
    assert diff.mean() < 0.005 and diff.max() < 0.03  # crop units: 0.26 px and 1.6 px of 52
    assert not np.array_equal(got, ref)


def _weight_range(path: Path) -> tuple[int, int]:
    """The smallest and largest stored int8 weight of the quantized convolutions in ``path``."""
    model = onnx.load(str(path))
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4
    ]
    assert weights
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)


def test_weights_use_7_bits_by_default(int8_model: Path) -> None:
    """Weights within -64..64: the u8 x s8 pair sums of CPUs without VNNI (2 x 255 x 64 =
    32,640) cannot saturate int16."""
    low, high = _weight_range(int8_model)
    assert low >= -64 and high <= 64
    assert low == -64 or high == 64  # the range is used, not a smaller one


@pytest.mark.slow
def test_weight_bits_8_uses_the_full_range(tmp_path: Path) -> None:
    out = tmp_path / "v5q8.onnx"
    mp = pytest.MonkeyPatch()
    mp.setattr(quantize, "calibration_crops", lambda card, *a: _inputs(64))
    try:
        card = quantize.quantize_model("vanilla5", out, faces=64, progress=False, weight_bits=8)
    finally:
        mp.undo()
    low, high = _weight_range(out)
    assert low < -64 or high > 64
    assert card.source["quantization"]["weights"].endswith("full range")  # type: ignore[index]
    with pytest.raises(TcnnError, match="weight bits 6: must be 7 or 8"):
        quantize.quantize_model("vanilla5", tmp_path / "x.onnx", weight_bits=6)


def test_quantized_model_answers_near_the_float_one(int8_model: Path) -> None:
    x = _inputs(8)
    got = load_model(int8_model).session.run(None, {"image": x})[0]
    ref = load_model("vanilla5").session.run(None, {"image": x})[0]
    diff = np.abs(got - ref)
    # crop units (0-1 across the crop): a hundredth is 0.4 px of a 40 px crop
    assert diff.mean() < 0.005 and diff.max() < 0.03
    assert not np.array_equal(got, ref)  # it is another network


def test_shipped_int8_model_places_the_astronaut_like_the_float_one(astronaut: np.ndarray) -> None:
    boxes = [FACE]
    q = LandmarkDetector("vanilla5-int8").detect(astronaut, boxes)[0].landmarks
    f = LandmarkDetector("vanilla5").detect(astronaut, boxes)[0].landmarks
    assert np.abs(q - f).max() < 1.5  # pixels, on a 95 px face


def test_calibration_crops_come_from_the_cards_training_data(
    monkeypatch: pytest.MonkeyPatch, astronaut_png: Path
) -> None:
    seen = {}

    def fake_load(name: str, root: object, face_detector: str, progress: bool) -> list[Sample]:
        seen.update(name=name, face_detector=face_detector)
        lm = np.zeros((5, 2), np.float32)
        return [Sample(astronaut_png, lm, FACE, 1.0), Sample(astronaut_png, lm, None, 0.0)] * 3

    monkeypatch.setattr("tcnn.train.data.datasets.load_dataset", fake_load)
    card = read_card(WEIGHTS / "vanilla5.onnx")
    x = quantize.calibration_crops(card, faces=2, progress=False)
    assert seen == {"name": "mtfl-train", "face_detector": "retinaface"}
    assert x.shape == (2, 3, 40, 40) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255 and x.std() > 10


def _one_line(exc: pytest.ExceptionInfo[TcnnError], *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_corrupt_quantized_file_is_refused(int8_model: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(int8_model.read_bytes()[:5000])
    with pytest.raises(TcnnError) as exc:
        load_model(cut)
    _one_line(exc, str(cut), "not a valid ONNX model")
    with pytest.raises(TcnnError) as exc:
        quantize.quantize_model(cut, tmp_path / "x.onnx")
    _one_line(exc, str(cut))


def test_wrong_kind_of_model_is_refused(int8_model: Path, tmp_path: Path) -> None:
    with pytest.raises(TcnnError) as exc:  # quantizing twice
        quantize.quantize_model(int8_model, tmp_path / "x.onnx")
    _one_line(exc, str(int8_model), "already quantized")
    bare = onnx.load(str(int8_model))
    del bare.metadata_props[:]  # an int8 ONNX file that is no tcnn model (no card)
    plain = tmp_path / "plain.onnx"
    onnx.save(bare, str(plain))
    for call in (lambda: load_model(plain), lambda: quantize.quantize_model(plain, tmp_path / "y")):
        with pytest.raises(TcnnError) as exc:
            call()
        _one_line(exc, str(plain), "without a tcnn model card")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y").exists()


def test_cli_quantize_writes_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(quantize, "calibration_crops", lambda card, *a: _inputs(32))
    out = tmp_path / "q.onnx"
    assert main(["quantize", "vanilla5", "-o", str(out), "--faces", "32", "-q"]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out}" in said and "3 layers int8" in said and "mtfl-train" in said
    assert load_model(out).card.name == "vanilla5-int8"


def test_cli_quantize_refuses_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["quantize", str(bad), "-o", str(tmp_path / "q.onnx")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err


def test_retinaface_refuses_a_model_of_the_wrong_kind(int8_model: Path, tmp_path: Path) -> None:
    from tcnn.retina import RetinaFace

    with pytest.raises(TcnnError) as exc:
        RetinaFace(model=int8_model)  # a landmark model
    _one_line(exc, str(int8_model), "not a RetinaFace model")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(b"\x08\x07garbage")
    with pytest.raises(TcnnError) as exc:
        RetinaFace(model=cut)
    _one_line(exc, str(cut), "not a valid RetinaFace ONNX model")


@pytest.mark.slow
def test_int8_retinaface_finds_the_astronaut(
    shared_root: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    from tcnn.retina import RetinaFace

    path = quantize.quantize_retinaface(tmp_path / "r8.onnx", images=4, root=shared_root)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "QuantizeLinear" in ops
    found = RetinaFace(model=path)(astronaut)
    ref = RetinaFace()(astronaut)
    assert len(found) == len(ref) == 1
    diff = np.subtract(found[0][0].as_tuple(), ref[0][0].as_tuple())
    assert np.abs(diff).max() < 0.05 * ref[0][0].width
