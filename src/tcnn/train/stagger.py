"""A mirror-averaging landmark graph split into its two views (``tcnn stagger``).

A mirror-averaging model runs its networks on each crop and on the crop's mirror image, and
averages the two answers: two network passes a face, both on the same crop. Placing the face
twice instead (``refine``: the detector's box, then the box the first answer implies) gains more
than the mirror does, but costs two mirror-averaged passes. The staggered form spends the same
two passes on both: the crop of the detector's box as it is, then the crop of the box that
answer implies, mirrored, and the mean of the two answers (the two views of the mirror average,
each on its own box). On aflw68's held-out part this took the shipped trio from 7.81% to 7.76%
with HOG boxes (8.27% to 8.26% with RetinaFace's) at the same network cost
(docs/training.md, "Staggered views").

The conversion changes no weight. The graph gets a second input, ``image_mirrored``, whose
crops it sees mirrored (and whose answers it mirrors back), in place of the mirror image of
``image`` it made itself; its output is ``image``'s answers followed by ``image_mirrored``'s,
each one view's answer instead of the mean of two. Fed the same crops on both inputs, the mean
of the two halves is the original graph's output (:func:`stagger_model` checks it).
:meth:`tcnn.registry.Model.predict` feeds it so for a mirror average, and
:class:`tcnn.predictor.LandmarkDetector` places the views on their two boxes (the card's
``staggered_mirror``).

It works on the graphs tcnn exports with mirror averaging (``InferenceNet``), float or int8,
alone or joined by ``tcnn ensemble``, calibrated or not; convert last, after ``tcnn
quantize``: the other tools take a graph with one input. Needs ``onnx`` (``pip install
'tcnn[train]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import ModelCard, graph_digest, save_model
from tcnn.errors import TcnnError
from tcnn.registry import MIRRORED


def _constant(graph: Any, name: str) -> np.ndarray | None:
    """The value of ``name`` when an initializer or a ``Constant`` node holds it, else ``None``
    (the exporter writes either, by version)."""
    from onnx import helper, numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return np.asarray(numpy_helper.to_array(init))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return np.asarray(numpy_helper.to_array(helper.get_attribute_value(attr)))
    return None


def split_views(model: Any, what: str) -> int:
    """Rewrite the mirror-averaging ``model`` (an ``onnx.ModelProto``) in place into its two
    views (the module's text); returns how many networks it found. ``what`` names it in errors.

    Raises:
        TcnnError: the graph is not a mirror-averaging tcnn graph.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    not_ours = f"{what}: not a mirror-averaging tcnn graph"
    if [t.name for t in graph.input] != ["image"]:
        raise TcnnError(f"{not_ours} (its inputs are not just 'image')")
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    # The mirror image: Slice(image, step -1 along the width) feeding Concat(image, it).
    flips = [
        n
        for n in graph.node
        if n.op_type == "Slice"
        and n.input[0] == "image"
        and len(n.input) == 5
        and _constant(graph, n.input[4]) is not None
        and int(np.asarray(_constant(graph, n.input[4])).reshape(-1)[0]) == -1
    ]
    if len(flips) != 1:
        raise TcnnError(f"{not_ours} (found {len(flips)} mirror images of its input, not 1)")
    joins = [
        n
        for n in users.get(flips[0].output[0], [])
        if n.op_type == "Concat" and list(n.input) == ["image", flips[0].output[0]]
    ]
    if len(joins) != 1:
        raise TcnnError(f"{not_ours} (its input is not joined to its mirror image)")
    # Each network's answer: Add(first half, mirrored-back second half), then Div by 2.
    averages = [
        n
        for n in graph.node
        if n.op_type == "Add"
        and len(users.get(n.output[0], [])) == 1
        and users[n.output[0]][0].op_type == "Div"
        and _constant(graph, users[n.output[0]][0].input[1]) is not None
        and float(np.asarray(_constant(graph, users[n.output[0]][0].input[1]))) == 2.0
        and any(p.op_type == "Mul" and p.output[0] == n.input[1] for p in graph.node)
    ]
    if not averages:
        raise TcnnError(f"{not_ours} (no mean of a crop's two answers)")
    flips[0].input[0] = MIRRORED
    for add in averages:
        div = users[add.output[0]][0]
        add.op_type = "Concat"
        add.attribute.append(helper.make_attribute("axis", 0))
        div.op_type = "Identity"
        del div.input[1:]
    graph.input.append(
        helper.make_tensor_value_info(
            MIRRORED, TensorProto.FLOAT, ["mirrored", *_dims(graph.input[0])[1:]]
        )
    )
    out = graph.output[0]
    del graph.value_info[:]  # the batch of many intermediate tensors changed
    graph.output.remove(out)
    graph.output.append(
        helper.make_tensor_value_info(out.name, TensorProto.FLOAT, ["answers", *_dims(out)[1:]])
    )
    return len(averages)


def _dims(value: Any) -> list[Any]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def stagger_model(
    model: str | Path, out: str | Path, name: str, purpose: str = "", check_faces: int = 8
) -> ModelCard:
    """Write ``model`` (a shipped name or tcnn ``.onnx`` path, mirror-averaging) in its
    staggered form (the module's text), card and all.

    Args:
        name: the new model's name; purpose: its card's purpose sentence (default: the
            original's, with the views said).
        check_faces: random crops on which the mean of the new graph's two views must equal
            the original's answer (to 1e-5 crop units).

    Raises:
        TcnnError: ``onnx`` is missing, the model does not average its mirror or has no
            ``box_from_landmarks`` (the second view's box), or its graph is not one tcnn
            exports; one line.
    """
    try:
        import onnx
    except ImportError:
        raise TcnnError("stagger writes the model with onnx: pip install 'tcnn[train]'") from None
    import onnxruntime as ort

    from tcnn.card import read_card
    from tcnn.registry import resolve

    path = resolve(str(model))
    card = read_card(path)
    if card.staggered_mirror:
        raise TcnnError(f"{path}: already staggered")
    if not card.mirror_average:
        raise TcnnError(f"{path}: does not average its mirror image (nothing to split)")
    if card.box_from_landmarks is None:
        raise TcnnError(f"{path}: its card has no box_from_landmarks (the mirrored view's box)")
    graph = onnx.load(str(path))
    networks = split_views(graph, str(path))
    onnx.checker.check_model(graph)
    s = card.input_size
    x = np.random.default_rng(0).uniform(0, 255, (check_faces, 3, s, s)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    before = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(
        graph.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    want = before.run(None, {"image": x})[0]
    got = after.run(None, {"image": x, MIRRORED: x})[0]
    gap = float(np.abs((got[:check_faces] + got[check_faces:]) / 2 - want).max())
    if gap > 1e-5:
        raise TcnnError(f"{path}: the split graph's mirror average differs by {gap:.2g}")
    new = card.replace(
        name=name,
        purpose=purpose or f"{card.purpose}; staggered views",
        staggered_mirror=True,
        input=f"{card.input}; and {MIRRORED}: crops seen mirrored (any number)",
        output=f"{card.output}: the answers for image's crops, then for {MIRRORED}'s",
        source={
            **(card.source or {}),
            "staggered": {
                "from": card.name,
                "graph_digest": graph_digest(path),
                "rule": "the original graph's mirror average split into its two views: "
                f"'{MIRRORED}' takes the crops seen mirrored; no weight changed",
                "networks": networks,
                "check": f"the mean of the two views equals the original on {check_faces} "
                f"random crops to {gap:.1g} crop units",
                "tool": "tcnn stagger (tcnn.train.stagger.stagger_model)",
            },
        },
        metrics={},
    )
    save_model(graph, new, out)
    return new
