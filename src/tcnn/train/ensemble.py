"""Several landmark models as one: the mean of their answers in one ONNX graph (``tcnn ensemble``).

Models trained apart err apart: on aflw68's held-out part, the mean of ``tcnn68h``'s answers
and those of a network trained from scratch at 64 px (``configs/tcnn68i.toml``) was 0.25 points
more accurate than either (docs/training.md). This module joins such models into one file that
runs like any other: one input, the members' graphs side by side, their outputs averaged.

The members must cut the same crop from the same boxes (crop rule, detector, channel order,
scheme); they may differ in input size. The ensemble's input is the largest member's size, and
a smaller member gets it resized inside the graph (ONNX ``Resize``, linear with antialiasing:
opset 18). Each member keeps everything its own graph holds (mirror averaging, its calibrated
offsets), so the mean is taken in crop units, where all members agree on what a point means.
Members may differ in mirror averaging (a member without it costs half as much): the card's
``mirror_average`` is true only when every member averages, and ``source.ensemble`` says which do.

Needs ``onnx`` (``pip install 'tcnn[train]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import ModelCard, graph_digest, save_model
from tcnn.errors import TcnnError

#: The opset of the joined graph: ``Resize`` with ``antialias`` needs 18.
OPSET = 18

#: Card fields every member must share (what a crop and a point mean).
SHARED = ("points", "scheme", "crop", "channel_order", "detector")


def ensemble_models(
    models: list[str | Path],
    out: str | Path,
    name: str,
    purpose: str = "",
    default_detector: str | None = None,
) -> ModelCard:
    """Write the model whose answer is the mean of ``models``' answers.

    Args:
        models: two or more shipped names or tcnn ``.onnx`` paths.
        out: the ensemble's ``.onnx`` path (its card is written beside it as ``.json``).
        name: the ensemble's name.
        purpose: its card's purpose sentence (default: the members named).
        default_detector: the face detector its users get when they name none (the card's
            ``default_detector``); ``None``: the first member's that names one, else none
            (the detector of the training boxes).

    Returns:
        The ensemble's card.

    Raises:
        TcnnError: ``onnx`` is missing, fewer than two models, a member is not a tcnn model, or
            the members cut different crops; one line.
    """
    try:
        import onnx
        from onnx import compose, helper
    except ImportError:
        raise TcnnError("ensemble writes the model with onnx: pip install 'tcnn[train]'") from None
    from tcnn.card import check_unstaggered, read_card
    from tcnn.detect import check_face_detector
    from tcnn.registry import resolve

    if len(models) < 2:
        raise TcnnError(f"an ensemble needs two models or more, got {len(models)}")
    paths = [resolve(str(m)) for m in models]
    cards = [read_card(p) for p in paths]
    for p, c in zip(paths, cards):
        check_unstaggered(c, p, "ensemble")
    first = cards[0]
    for card in cards[1:]:
        for field in SHARED:
            if getattr(card, field) != getattr(first, field):
                raise TcnnError(
                    f"{card.name} and {first.name} differ in {field} "
                    f"({getattr(card, field)!r} against {getattr(first, field)!r}): "
                    "an ensemble's members must cut the same crop"
                )
    size = max(c.input_size for c in cards)
    nodes: list[Any] = []
    if any(c.input_size != size for c in cards):  # the resized members' sizes start with it
        nodes.append(helper.make_node("Shape", ["image"], ["batch_and_channels"], start=0, end=2))
    initializers: list[Any] = []
    outputs = []
    for i, (path, card) in enumerate(zip(paths, cards)):
        member = onnx.load(str(path))
        if [t.name for t in member.graph.input] != ["image"]:
            raise TcnnError(f"{path}: not a tcnn landmark graph (its input is not 'image')")
        member = compose.add_prefix(member, f"m{i}_")
        feed = f"m{i}_image"
        if card.input_size == size:
            nodes.append(helper.make_node("Identity", ["image"], [feed]))
        else:
            side = f"m{i}_side"
            initializers.append(
                onnx.numpy_helper.from_array(np.array([card.input_size] * 2, np.int64), side)
            )
            nodes += [
                helper.make_node("Concat", ["batch_and_channels", side], [f"m{i}_sizes"], axis=0),
                helper.make_node(
                    "Resize",
                    ["image", "", "", f"m{i}_sizes"],
                    [feed],
                    mode="linear",
                    antialias=1,
                    coordinate_transformation_mode="half_pixel",
                ),
            ]
        nodes += list(member.graph.node)
        initializers += list(member.graph.initializer)
        outputs.append(member.graph.output[0].name)
    weight = onnx.numpy_helper.from_array(np.array(1.0 / len(outputs), np.float32), "mean_weight")
    nodes += [
        helper.make_node("Sum", outputs, ["sum_of_answers"]),
        helper.make_node("Mul", ["sum_of_answers", "mean_weight"], ["landmarks"]),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, size, size])],
        [
            helper.make_tensor_value_info(
                "landmarks", onnx.TensorProto.FLOAT, ["batch", first.points, 2]
            )
        ],
        [*initializers, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    members = [
        {"name": c.name, "graph_digest": graph_digest(p), "mirror_average": c.mirror_average}
        for c, p in zip(cards, paths)
    ]
    known = [c.box_from_landmarks for c in cards if c.box_from_landmarks is not None]
    relation = (
        tuple(round(float(v), 6) for v in np.mean(known, axis=0))
        if len(known) == len(cards)
        else None
    )
    data = {str(c.training.get("data", "")) for c in cards}
    if default_detector is None:
        default_detector = next((c.default_detector for c in cards if c.default_detector), "")
    elif default_detector:
        check_face_detector(default_detector)
    card = first.replace(
        name=name,
        default_detector=default_detector,
        input_size=size,
        purpose=purpose or "the mean of " + ", ".join(c.name for c in cards),
        box_from_landmarks=relation,
        mirror_average=all(c.mirror_average for c in cards),
        architecture={
            "family": "ensemble",
            "members": [c.architecture for c in cards],
            "input_size": size,
        },
        parameters=sum(c.parameters for c in cards),
        # the shared training data, for what reads it (tcnn quantize's calibration faces)
        training={
            "data": data.pop() if len(data) == 1 else "",
            "members": [c.training for c in cards],
        },
        source={
            "ensemble": members,
            "rule": "the mean of the members' answers in crop units; a member whose input "
            "is smaller gets the crop resized inside the graph (linear, antialiased)",
            "tool": "tcnn ensemble (tcnn.train.ensemble.ensemble_models)",
        },
        metrics={},
    )
    save_model(model, card, out)
    return card
