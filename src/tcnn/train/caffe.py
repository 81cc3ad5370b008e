"""Convert the seed paper's Caffe Vanilla CNN to a tcnn ONNX model, without Caffe.

Wu, Hassner et al., "Facial Landmark Detection with Tweaked CNNs", released
``vanillaCNN.caffemodel`` with ``trainMean.png`` and ``trainSTD.png`` (40x40 mean and standard
deviation images of the training crops). A caffemodel is a binary protobuf ``NetParameter``: it is
decoded here by hand (no protobuf or Caffe package), its six weighted layers are checked against
the Vanilla CNN, and the net is written as an ONNX graph with the input standardisation inside it
and a tcnn model card.

The network, input ``[N, 3, 40, 40]`` BGR pixel values 0-255::

    (x - mean) / std
    Conv1 16x5x5 pad 2, abs(tanh), max pool 2/2    -> 16x20x20
    Conv2 48x3x3 pad 1, abs(tanh), max pool 2/2    -> 48x10x10
    Conv3 64x3x3,       abs(tanh), max pool 3/2    -> 64x4x4 (Caffe rounds the size up)
    Conv4 64x2x2,       abs(tanh), flatten C,H,W   -> 576
    Dense1 576 -> 100,  abs(tanh)
    Dense2 100 -> 10: x1, y1, ..., x5, y5 in [-0.5, 0.5] of the crop; + 0.5 -> [N, 5, 2]
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import CARD_KEY, Crop, ModelCard
from tcnn.errors import TcnnError
from tcnn.files import atomic_path, ensure_dir

#: Side of the square input crop.
SIZE = 40
#: Added to the std image before dividing, as the seed code did (``1.e-6 + stdTrainSet``).
STD_EPS = 1e-6
OPSET = 17


@dataclass(frozen=True)
class _Spec:
    """One weighted layer of the Vanilla CNN.

    Attributes:
        name: the Caffe layer name (matched case-insensitively).
        kind: the Caffe layer type, ``Convolution`` or ``InnerProduct``.
        weight: the weight shape, ``[out, in, kh, kw]`` or ``[out, in]``.
        pad: convolution padding on every side.
        pool: kernel of the stride-2 max pool after the activation; 0 for none.
        act: whether abs(tanh) follows.
        flatten: whether the input is flattened first (``[N, C, H, W] -> [N, C*H*W]``).
    """

    name: str
    kind: str
    weight: tuple[int, ...]
    pad: int = 0
    pool: int = 0
    act: bool = True
    flatten: bool = False


_NET = (
    _Spec("Conv1", "Convolution", (16, 3, 5, 5), pad=2, pool=2),
    _Spec("Conv2", "Convolution", (48, 16, 3, 3), pad=1, pool=2),
    _Spec("Conv3", "Convolution", (64, 48, 3, 3), pool=3),
    _Spec("Conv4", "Convolution", (64, 64, 2, 2)),
    _Spec("Dense1", "InnerProduct", (100, 576), flatten=True),
    _Spec("Dense2", "InnerProduct", (10, 100), act=False),
)

#: V1LayerParameter.LayerType values of the two weighted layer types.
_V1_KINDS = {4: "Convolution", 14: "InnerProduct"}
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PK\x03\x04": "a zip file"}


def convert_caffe(
    model: str | os.PathLike[str],
    mean: str | os.PathLike[str],
    std: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> Path:
    """Convert the seed Vanilla CNN caffemodel and its mean/std images to a tcnn ONNX model.

    Args:
        model: ``vanillaCNN.caffemodel`` (current ``layer`` or legacy V1 ``layers`` format).
        mean: ``trainMean.png``, the 40x40 colour mean of the training crops.
        std: ``trainSTD.png``, the 40x40 colour standard deviation of the training crops.
        out: the ONNX file to write; its card is also written beside it as ``<stem>.json``.

    Returns:
        The path of the ONNX model: input ``image`` float32 ``[N, 3, 40, 40]`` BGR pixel values
        0-255, output ``landmarks`` float32 ``[N, 5, 2]`` (x, y) in crop units (0-1).

    Raises:
        TcnnError: a file is missing, empty, not a caffemodel or image, or does not match the
            Vanilla CNN; or the output cannot be written. Nothing is written then.
    """
    model, mean, std, out = Path(model), Path(mean), Path(std), Path(out)
    side = out.with_suffix(".json")
    if side == out:
        raise TcnnError(f"{out}: the model would overwrite its own card; name it *.onnx")
    data = _read(model, "caffemodel")
    weights = _weights(model, _layers(model, data))
    mean_bgr, std_bgr = _image(mean, "mean"), _image(std, "std")
    card = _card(model, mean, std, data, weights)
    onnx_bytes = _onnx(weights, mean_bgr, std_bgr, card)
    ensure_dir(out.parent)
    with atomic_path(out) as tmp_onnx, atomic_path(side) as tmp_card:
        tmp_onnx.write_bytes(onnx_bytes)
        tmp_card.write_text(card.to_json(indent=2) + "\n")
    return out


# ---------------------------------------------------------------- protobuf wire format

#: A decoded message: field number -> [(wire type, value)], an int for varints, else the bytes.
_Msg = dict[int, list[tuple[int, int | memoryview]]]
_FIXED = {1: 8, 5: 4}


class _Malformed(ValueError):
    """The bytes are not the protobuf message they should be."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint longer than 10 bytes")


def _parse(buf: memoryview) -> _Msg:
    """Split one message into its fields; nested messages stay undecoded bytes."""
    msg: _Msg = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise _Malformed("field number 0")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        else:
            value, pos = _chunk(buf, pos, wire)
        msg.setdefault(num, []).append((wire, value))
    return msg


def _chunk(buf: memoryview, pos: int, wire: int) -> tuple[memoryview, int]:
    """The bytes of a fixed-size (wire 1, 5) or length-delimited (wire 2) value."""
    if wire == 2:
        size, pos = _varint(buf, pos)
    elif wire in _FIXED:
        size = _FIXED[wire]
    else:
        raise _Malformed(f"unsupported wire type {wire}")
    if pos + size > len(buf):
        raise _Malformed(f"truncated: a field needs {size} bytes, {len(buf) - pos} are left")
    return buf[pos : pos + size], pos + size


def _signed(value: int) -> int:
    """A varint read as a two's-complement 64-bit integer."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes_of(msg: _Msg, num: int) -> list[memoryview]:
    """Every length-delimited value of field ``num``."""
    out = []
    for wire, value in msg.get(num, []):
        if wire != 2 or isinstance(value, int):
            raise _Malformed(f"field {num} has wire type {wire}, expected 2")
        out.append(value)
    return out


def _messages(msg: _Msg, num: int) -> list[_Msg]:
    """Every sub-message in field ``num``, decoded."""
    return [_parse(value) for value in _bytes_of(msg, num)]


def _text(msg: _Msg, num: int) -> str:
    """The last string in field ``num``; ``""`` when absent."""
    values = _bytes_of(msg, num)
    try:
        return bytes(values[-1]).decode("utf-8") if values else ""
    except UnicodeDecodeError:
        raise _Malformed(f"field {num} is not UTF-8 text") from None


def _ints(msg: _Msg, num: int) -> list[int]:
    """Every integer in varint field ``num``, packed or not."""
    out = []
    for wire, value in msg.get(num, []):
        if isinstance(value, int):
            out.append(_signed(value))
        elif wire == 2:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                out.append(_signed(item))
        else:
            raise _Malformed(f"field {num} has wire type {wire}, expected 0 or 2")
    return out


def _reals(msg: _Msg, num: int, dtype: str) -> np.ndarray:
    """Every ``float`` (``<f4``, wire 5) or ``double`` (``<f8``, wire 1) in field ``num``."""
    size = np.dtype(dtype).itemsize
    chunks = []
    for wire, value in msg.get(num, []):
        if isinstance(value, int) or wire not in (2, 5 if size == 4 else 1):
            raise _Malformed(f"field {num} has wire type {wire}, expected packed {dtype}")
        chunks.append(bytes(value))
    raw = b"".join(chunks)
    if len(raw) % size:
        raise _Malformed(f"field {num} holds {len(raw)} bytes, not whole {size}-byte values")
    return np.frombuffer(raw, dtype=dtype)


# ---------------------------------------------------------------- Caffe messages


@dataclass
class _Blob:
    """A BlobProto: its declared shape (``None`` when it declares none) and its values."""

    shape: tuple[int, ...] | None
    data: np.ndarray


@dataclass
class _Layer:
    """A weighted or unweighted layer of a NetParameter."""

    name: str
    kind: str
    blobs: list[_Blob]


def _blob(msg: _Msg) -> _Blob:
    """Decode a BlobProto: ``shape`` (7) if present, else legacy num, channels, height, width."""
    shapes = _messages(msg, 7)
    shape: tuple[int, ...] | None = None
    if shapes:
        shape = tuple(_ints(shapes[-1], 1))
    elif any(num in msg for num in (1, 2, 3, 4)):
        shape = tuple((_ints(msg, num) or [0])[-1] for num in (1, 2, 3, 4))
    data = _reals(msg, 5, "<f4")
    if not data.size:
        data = _reals(msg, 8, "<f8").astype(np.float32)
    return _Blob(shape, data)


def _net_layers(buf: memoryview) -> list[_Layer]:
    """The layers of a NetParameter: ``layer`` (100, current) and ``layers`` (2, legacy V1)."""
    net = _parse(buf)
    _text(net, 1)  # the net's name: a check that field 1 is text, as in a NetParameter
    layers = [
        _Layer(_text(msg, 1), _text(msg, 2), [_blob(b) for b in _messages(msg, 7)])
        for msg in _messages(net, 100)
    ]
    for msg in _messages(net, 2):
        kind = (_ints(msg, 5) or [-1])[-1]
        blobs = [_blob(b) for b in _messages(msg, 6)]
        layers.append(_Layer(_text(msg, 4), _V1_KINDS.get(kind, f"V1 type {kind}"), blobs))
    return layers


def _layers(path: Path, data: bytes) -> list[_Layer]:
    """The layers of the caffemodel ``data`` read from ``path``."""
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise TcnnError(f"{path}: not a caffemodel ({what})")
    try:
        layers = _net_layers(memoryview(data))
    except _Malformed as exc:
        raise TcnnError(f"{path}: not a caffemodel ({exc})") from None
    if not layers:
        raise TcnnError(f"{path}: not a caffemodel (no layers)")
    return layers


# ---------------------------------------------------------------- checks against the net


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _core(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without leading 1s: legacy 4-d blobs pad e.g. ``[out, in]`` to ``1x1xoutxin``."""
    dims = list(shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


def _find(path: Path, layers: list[_Layer], spec: _Spec) -> _Layer:
    """The one layer with weights named ``spec.name`` (any case), of the right type."""
    hits = [lay for lay in layers if lay.name.lower() == spec.name.lower() and lay.blobs]
    if not hits:
        found = ", ".join(lay.name for lay in layers if lay.blobs)[:200] or "none"
        raise TcnnError(f"{path}: no layer {spec.name} with weights (layers with weights: {found})")
    if len(hits) > 1:
        raise TcnnError(f"{path}: {len(hits)} layers named {spec.name}")
    layer = hits[0]
    if layer.kind and layer.kind != spec.kind:
        raise TcnnError(f"{path}: layer {layer.name} is {layer.kind}, expected {spec.kind}")
    if len(layer.blobs) != 2:
        got = len(layer.blobs)
        raise TcnnError(f"{path}: layer {layer.name} has {got} blobs, expected 2 (weight, bias)")
    return layer


def _array(path: Path, where: str, blob: _Blob, shape: tuple[int, ...]) -> np.ndarray:
    """The values of ``blob`` as a float32 array of ``shape``, after checking they fit it."""
    if blob.shape is not None and _core(blob.shape) != _core(shape):
        got, want = _fmt(blob.shape), _fmt(shape)
        raise TcnnError(f"{path}: layer {where} has shape {got}, expected {want}")
    if blob.data.size != math.prod(shape):
        got_n, want_n = blob.data.size, math.prod(shape)
        raise TcnnError(f"{path}: layer {where} holds {got_n} values, expected {want_n}")
    if not np.isfinite(blob.data).all():
        raise TcnnError(f"{path}: layer {where} holds NaN or infinite values")
    return blob.data.astype(np.float32).reshape(shape)


def _weights(path: Path, layers: list[_Layer]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weight ``[out, in, (kh, kw)]`` and bias ``[out]`` of each layer of :data:`_NET`."""
    out = {}
    for spec in _NET:
        layer = _find(path, layers, spec)
        weight = _array(path, f"{layer.name} weight", layer.blobs[0], spec.weight)
        bias = _array(path, f"{layer.name} bias", layer.blobs[1], spec.weight[:1])
        out[spec.name] = (weight, bias)
    return out


# ---------------------------------------------------------------- files


def _read(path: Path, what: str) -> bytes:
    """The bytes of ``path``, which must be a non-empty file (``what`` names it in errors)."""
    if path.is_dir():
        raise TcnnError(f"{path}: a folder, not a {what}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TcnnError(f"{path}: no such file") from None
    except OSError as exc:
        raise TcnnError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if not data:
        raise TcnnError(f"{path}: empty file, not a {what}")
    return data


def _image(path: Path, role: str) -> np.ndarray:
    """A 40x40 colour PNG as a ``[3, 40, 40]`` float32 BGR array of values 0-255."""
    from PIL import Image

    data = _read(path, f"{role} image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, size, pixels = img.mode, img.size, np.asarray(img)
    except Exception as exc:  # PIL raises many types for unreadable or broken images
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TcnnError(f"{path}: not an image ({cause})") from None
    if size != (SIZE, SIZE):
        got = f"{size[0]}x{size[1]}"
        raise TcnnError(f"{path}: the {role} image is {got}, expected {SIZE}x{SIZE}")
    if mode != "RGB":
        raise TcnnError(f"{path}: the {role} image has mode {mode}, expected 3-channel colour")
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[::-1], dtype=np.float32)


# ---------------------------------------------------------------- ONNX graph and card


def _card(
    model: Path,
    mean: Path,
    std: Path,
    data: bytes,
    weights: dict[str, tuple[np.ndarray, np.ndarray]],
) -> ModelCard:
    """The tcnn model card of the converted seed model."""
    return ModelCard(
        name="seed-caffe",
        points=5,
        scheme="5pt",
        input_size=SIZE,
        channel_order="BGR",
        input="float32 [N, 3, S, S] pixel values 0-255 (BGR); normalisation is inside the graph",
        # The seed's pipeline: the dlib box clipped to the image, its pixels stretched to 40x40
        # by cv2.resize. Measured on the 2,665 MTFL AFLW faces HOG finds (213 boxes cross the
        # image's edge): without clip (black outside) 7.41% mean, 15.8% failures, against the
        # seed's 7.01% and 13.4%; PIL's truncating sampler instead of rounding: 13.5% failures.
        crop=Crop(
            1.0,
            0.0,
            "dlib HOG box, no margin, clipped to the image, its pixels resized to 40x40 by "
            "bilinear sampling rounded to nearest, without antialiasing (OpenCV's cv2.resize, "
            "as the seed's code)",
            antialias=False,
            clip=True,
        ),
        detector="dlib",
        coordinates="the seed's pipeline: image point = dlib box left/top + output * box "
        "width/height, a 0-based pixel index (CUHK's label convention); continuous pixel "
        "coordinates add pixel_offset (0.5 px)",
        mirror_average=False,
        offset=(0.0, 0.0),
        # The seed's code maps crop output p (0-40) back to box.left + p * width / 40 and reads
        # that as a 0-based pixel index (its labels' convention); continuous = index + 0.5.
        pixel_offset=(0.5, 0.5),
        architecture={
            "family": "vanilla-caffe",
            "points": 5,
            "input_size": SIZE,
            "channels": [spec.weight[0] for spec in _NET[:4]],
            "hidden": _NET[4].weight[0],
            "activation": "abstanh",
        },
        parameters=int(sum(a.size for pair in weights.values() for a in pair)),
        source={
            "caffemodel": model.name,
            "sha1": hashlib.sha1(data).hexdigest(),
            "mean": mean.name,
            "std": std.name,
        },
        licence="The seed authors' released model; see its original licence.",
    )


class _Graph:
    """Collects ONNX nodes and initializers, naming intermediate values ``t0``, ``t1`` ..."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = out or f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _layer_ops(g: _Graph, x: str, spec: _Spec, weight: np.ndarray, bias: np.ndarray) -> str:
    """Add one layer (and its activation and pool) after value ``x``; return its output."""
    w = g.const(f"{spec.name}.weight", weight)
    b = g.const(f"{spec.name}.bias", bias)
    if spec.kind == "Convolution":
        kernel = list(spec.weight[2:])
        x = g.op("Conv", [x, w, b], kernel_shape=kernel, pads=[spec.pad] * 4, strides=[1, 1])
    else:
        if spec.flatten:
            x = g.op("Flatten", [x], axis=1)  # [N, 64, 3, 3] -> [N, 576], C,H,W order as Caffe
        x = g.op("Gemm", [x, w, b], transB=1)
    if spec.act:
        x = g.op("Abs", [g.op("Tanh", [x])])
    if spec.pool:
        k = [spec.pool] * 2
        x = g.op("MaxPool", [x], kernel_shape=k, strides=[2, 2], ceil_mode=1)
    return x


def _onnx(
    weights: dict[str, tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    std: np.ndarray,
    card: ModelCard,
) -> bytes:
    """The serialised ONNX model: ``image`` ``[N, 3, 40, 40]`` -> ``landmarks`` ``[N, 5, 2]``."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    x = g.op("Sub", ["image", g.const("mean", mean[None])])
    x = g.op("Div", [x, g.const("std", (std + STD_EPS)[None].astype(np.float32))])
    for spec in _NET:
        x = _layer_ops(g, x, spec, *weights[spec.name])
    x = g.op("Add", [x, g.const("half", np.array(0.5, np.float32))])
    g.op("Reshape", [x, g.const("shape", np.array([-1, 5, 2], np.int64))], out="landmarks")
    graph = helper.make_graph(
        g.nodes,
        "seed-caffe",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 5, 2])],
        initializer=g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tcnn", ir_version=8)
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
