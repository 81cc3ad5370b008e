"""RetinaFace's int8 form: the protobuf reader and writer, the graph it makes, its calibration."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from tcnn.detect import CONVENTION, box_map, make_detector
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.onnxproto import (
    GRAPH_INITIALIZER,
    GRAPH_NODE,
    MODEL_GRAPH,
    Node,
    encode,
    encode_varint,
    fields,
    read_tensor,
    write_tensor,
)
from tcnn.retina import RetinaFace, RetinaFaceInt8, int8_weights, load_weights
from tcnn.retina_int8 import (
    FLOAT_CONVS,
    SCALES,
    WEIGHT_MAX,
    conv_tensors,
    digest,
    int8_model,
    shipped_scales,
    uint8_range,
)


def _graph_items(model: bytes) -> list:
    graph = next(v for n, _, v in fields(model) if n == MODEL_GRAPH)
    return list(fields(graph))


def test_varints_as_protobuf_writes_them() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(1) == b"\x01"
    assert encode_varint(300) == b"\xac\x02"  # protobuf's own example
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"  # a negative int64: ten bytes


def test_the_float_model_reads_and_writes_back_byte_for_byte() -> None:
    model = load_weights()
    assert encode(fields(model)) == model
    graph = next(v for n, _, v in fields(model) if n == MODEL_GRAPH)
    assert encode(fields(graph)) == graph
    nodes = [Node.read(v) for n, _, v in fields(graph) if n == GRAPH_NODE]
    assert sum(n.op_type == "Conv" for n in nodes) == 59
    conv = next(n for n in nodes if n.op_type == "Conv")
    assert conv.inputs[0] == "input" and len(conv.attributes) >= 4


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        np.array([-127, 0, 63], np.int8),
        np.array([2**31 - 1, -(2**31)], np.int32),
        np.array(0.25, np.float32),  # a scalar: no dims
        np.array(200, np.uint8),
    ],
)
def test_tensors_round_trip(array: np.ndarray) -> None:
    name, back = read_tensor(write_tensor("w", array))
    assert name == "w" and back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


def test_weights_of_the_float_model_read_as_onnx_stores_them() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = load_weights()
    expected = {
        t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(model).graph.initializer
    }
    mine = dict(read_tensor(v) for n, _, v in _graph_items(model) if n == GRAPH_INITIALIZER)
    assert mine.keys() == expected.keys()
    for name, array in expected.items():
        assert np.array_equal(mine[name], array), name


def test_uint8_range_keeps_zero_exact() -> None:
    assert uint8_range(-1.0, 1.0) == (2 / 255, 128)
    scale, zero = uint8_range(0.5, 2.0)  # a positive range still reaches down to 0
    assert zero == 0 and scale == pytest.approx(2 / 255)
    assert uint8_range(0.0, 0.0) == (1.0, 0)


def test_shipped_calibration_covers_every_convolution_of_the_installed_network() -> None:
    scales = json.loads(SCALES.read_text())
    model = load_weights()
    assert scales["model_sha256"] == digest(model)
    assert list(scales["tensors"]) == conv_tensors(model)
    for scale, zero in scales["tensors"].values():
        assert scale > 0 and 0 <= zero <= 255


def test_convolutions_after_the_backbone_become_int8_with_seven_bit_weights() -> None:
    built = int8_weights()
    items = _graph_items(built)
    nodes = [Node.read(v) for n, _, v in items if n == GRAPH_NODE]
    floats = [n.name for n in nodes if n.op_type == "Conv"]
    assert len(floats) == 27 and all(name.startswith(FLOAT_CONVS) for name in floats)
    assert sum(n.op_type == "QLinearConv" for n in nodes) == 59 - 27
    assert not any(n.op_type == "Identity" for n in nodes)  # the float weights' aliases went
    tensors = dict(read_tensor(v) for n, _, v in items if n == GRAPH_INITIALIZER)
    weights = [a for k, a in tensors.items() if k.endswith("_w_int8")]
    assert len(weights) == 32 and all(a.dtype == np.int8 for a in weights)
    assert max(int(np.abs(a).max()) for a in weights) == WEIGHT_MAX
    assert len(built) < len(load_weights())


def test_no_face_on_the_flag_of_the_upscaled_astronaut(astronaut: np.ndarray) -> None:
    # Every convolution in int8 put a face score of 0.86-0.93 on the flag at this size.
    big = np.asarray(Image.fromarray(astronaut).resize((3072, 3072), Image.Resampling.BICUBIC))
    found = RetinaFace(int8=True).detect(big)
    assert len(found) == 1 and found[0].box.left < 1400 < found[0].box.right  # her face


def test_int8_network_answers_near_the_float_one(shared_root) -> None:
    from tcnn.retina import scan_input

    image = load_image(shared_root / "photos" / "multi_face.jpg")
    x = scan_input(image, 0.6)[0]
    a = ort.InferenceSession(load_weights(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )
    b = ort.InferenceSession(int8_weights(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )
    face = a[1][0, :, 1] > 0.8  # the anchors that hold faces
    assert face.sum() > 5
    assert np.abs(a[1][0, face, 1] - b[1][0, face, 1]).max() < 0.1  # face scores
    assert np.abs(a[0][0, face] - b[0][0, face]).mean() < 0.1  # box offsets (anchor units)
    assert not np.array_equal(a[0], b[0])  # it is another network


def test_int8_boxes_match_the_float_boxes(shared_root) -> None:
    image = load_image(shared_root / "photos" / "multi_face.jpg")
    a, b = RetinaFace().detect(image), RetinaFace(int8=True).detect(image)
    assert len(a) == len(b) == 5
    for x in a:
        y = min(b, key=lambda d: np.hypot(*np.subtract(d.box.center, x.box.center)))
        assert np.abs(np.subtract(x.box.as_tuple(), y.box.as_tuple())).max() < 0.08 * x.box.width


def test_calibration_for_another_network_is_refused() -> None:
    scales = {**shipped_scales(), "model_sha256": "0" * 64}
    with pytest.raises(TcnnError, match="another float network") as err:
        int8_model(load_weights(), scales)
    assert "\n" not in str(err.value)


def test_calibration_missing_a_tensor_is_refused() -> None:
    tensors = dict(shipped_scales()["tensors"])
    tensors.pop(conv_tensors(load_weights())[-1])  # a head's output: an int8 convolution
    with pytest.raises(TcnnError, match="cannot be made"):
        int8_model(load_weights(), {**shipped_scales(), "tensors": tensors})


def test_model_and_int8_together_are_refused(tmp_path) -> None:
    with pytest.raises(TcnnError, match="one or the other"):
        RetinaFace(model=tmp_path / "x.onnx", int8=True)


def test_detector_by_name_shares_the_float_boxes_convention() -> None:
    det = make_detector("retinaface-int8", threshold=0.5)
    assert isinstance(det, RetinaFaceInt8) and det.int8 and det.threshold == 0.5
    assert det.name == "retinaface-int8"
    assert CONVENTION["retinaface-int8"] == "retinaface"
    assert box_map("retinaface-int8", "retinaface") is None
    assert box_map("retinaface-int8", "dlib") is box_map("retinaface", "dlib")


def test_one_face_on_the_upscaled_profile_photo(shared_root) -> None:
    # With the backbone's first stage alone float, a second box over this face scored 0.82.
    from io import BytesIO

    img = Image.open(shared_root / "photos" / "45-m7-di-ph.jpg").convert("RGB")
    big = img.resize((img.width * 4, img.height * 4), Image.Resampling.BICUBIC)
    data = BytesIO()
    big.save(data, "JPEG", quality=90)  # as bench_e2e's upscaled photos
    found = RetinaFace(int8=True).detect(load_image(Image.open(data)))
    assert len(found) == 1


@pytest.mark.parametrize("tensors", [["not", "a", "mapping"], {"input": "x"}, {"input": [1.0]}])
def test_malformed_calibration_is_refused_in_one_line(tensors: object) -> None:
    with pytest.raises(TcnnError, match="cannot be made") as err:
        int8_model(load_weights(), {**shipped_scales(), "tensors": tensors})
    assert "\n" not in str(err.value)
