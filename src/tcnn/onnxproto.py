"""Just enough of ONNX's protobuf encoding to read a model's graph and write a changed one.

tcnn's inference needs no ``onnx`` package; :mod:`tcnn.retina_int8` uses this module to turn
the installed float RetinaFace into its int8 form when a detector is made. A message is kept as
its list of fields (``(number, wire type, value)``; a value is an ``int`` for varints and
fixed-size fields, ``bytes`` for length-delimited ones), so fields this module does not know
pass through unchanged. Field numbers are those of ``onnx.proto`` (ONNX 1.x).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

# ModelProto, GraphProto, NodeProto and TensorProto field numbers used here (onnx.proto).
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 1, 2, 3, 4, 5, 7
TENSOR_DIMS, TENSOR_TYPE, TENSOR_FLOATS, TENSOR_NAME, TENSOR_RAW = 1, 2, 4, 8, 9

#: TensorProto.DataType codes and their numpy types.
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}
CODES = {np.dtype(t): code for code, t in DTYPES.items()}

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

Field = tuple[int, int, int | bytes]


class ProtoError(ValueError):
    """The bytes are not the protobuf message they were read as."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtoError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values take ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(data: bytes) -> Iterator[Field]:
    """The fields of one message, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire == LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ProtoError(f"field {number} runs past the end")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise ProtoError(f"field {number}: unknown wire type {wire}")
        yield number, wire, value


def encode(items: Iterable[Field]) -> bytes:
    """One message from its fields (the inverse of :func:`fields`)."""
    out = bytearray()
    for number, wire, value in items:
        out += encode_varint(number << 3 | wire)
        if wire == VARINT:
            out += encode_varint(_int(value))
        elif wire == LENGTH:
            data = _bytes(value)
            out += encode_varint(len(data)) + data
        else:
            out += _int(value).to_bytes(4 if wire == FIXED32 else 8, "little")
    return bytes(out)


def text(value: str) -> bytes:
    return value.encode()


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ProtoError("a number where a string or message was expected")
    return value


def _int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ProtoError("a string or message where a number was expected")
    return value


@dataclass
class Node:
    """A NodeProto: the fields this module changes, and the rest kept as they were."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str = ""
    domain: str = ""
    attributes: list[bytes] = field(default_factory=list)  # AttributeProto messages, as read

    @classmethod
    def read(cls, data: bytes) -> Node:
        node = cls("", [], [])
        for number, _, value in fields(data):
            if number == NODE_INPUT:
                node.inputs.append(_bytes(value).decode())
            elif number == NODE_OUTPUT:
                node.outputs.append(_bytes(value).decode())
            elif number == NODE_NAME:
                node.name = _bytes(value).decode()
            elif number == NODE_OP_TYPE:
                node.op_type = _bytes(value).decode()
            elif number == NODE_ATTRIBUTE:
                node.attributes.append(_bytes(value))
            elif number == NODE_DOMAIN:
                node.domain = _bytes(value).decode()
        return node

    def encode(self) -> bytes:
        items: list[Field] = [(NODE_INPUT, LENGTH, text(i)) for i in self.inputs]
        items += [(NODE_OUTPUT, LENGTH, text(o)) for o in self.outputs]
        if self.name:
            items.append((NODE_NAME, LENGTH, text(self.name)))
        items.append((NODE_OP_TYPE, LENGTH, text(self.op_type)))
        items += [(NODE_ATTRIBUTE, LENGTH, a) for a in self.attributes]
        if self.domain:
            items.append((NODE_DOMAIN, LENGTH, text(self.domain)))
        return encode(items)


def read_tensor(data: bytes) -> tuple[str, np.ndarray]:
    """A TensorProto's name and values (raw or float data; the types of :data:`DTYPES`)."""
    name, dims, code, raw, floats = "", [], 1, None, b""
    for number, wire, value in fields(data):
        if number == TENSOR_DIMS and wire == LENGTH:  # packed
            packed, pos = _bytes(value), 0
            while pos < len(packed):
                d, pos = _varint(packed, pos)
                dims.append(d)
        elif number == TENSOR_DIMS:
            dims.append(_int(value))
        elif number == TENSOR_TYPE:
            code = _int(value)
        elif number == TENSOR_NAME:
            name = _bytes(value).decode()
        elif number == TENSOR_RAW:
            raw = _bytes(value)
        elif number == TENSOR_FLOATS and wire == LENGTH:  # packed
            floats += _bytes(value)
        elif number == TENSOR_FLOATS:
            floats += _int(value).to_bytes(4, "little")
    if code not in DTYPES:
        raise ProtoError(f"tensor {name!r}: data type {code} not read here")
    buffer = raw if raw is not None else floats
    array = np.frombuffer(buffer, DTYPES[code]).copy()
    if array.size != int(np.prod(dims)):
        raise ProtoError(f"tensor {name!r}: {array.size} values for shape {dims}")
    return name, array.reshape(dims)


def write_tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto holding ``array`` (one of the types of :data:`DTYPES`) as raw data."""
    array = np.asarray(array)  # (np.ascontiguousarray would make a scalar one-dimensional)
    items: list[Field] = [(TENSOR_DIMS, VARINT, int(d)) for d in array.shape]
    items += [
        (TENSOR_TYPE, VARINT, CODES[array.dtype]),
        (TENSOR_NAME, LENGTH, text(name)),
        (TENSOR_RAW, LENGTH, array.astype(array.dtype.newbyteorder("<")).tobytes(order="C")),
    ]
    return encode(items)
