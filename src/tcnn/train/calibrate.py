"""Calibrating a model to a labelling style: per-point offsets fitted on training labels.

Annotators of different datasets put a landmark in different places on the same face (the
jaw line's height, the eye corner's inside or outside). A model trained mostly on one style
(dlib's pseudo-labels) keeps it; this fits the mean per-point offset between a dataset's human
labels and the model's answers on that dataset's faces, in the model's crop units (the same
crop, from the model's own detector's boxes, that it sees at inference), and writes a copy of
the model whose graph adds those offsets to its output. The rule is stated in the new card and
uses the named dataset only: fit it on training labels (``aflw68-train``), never on a set that
is then reported.

The *shape* calibration (``--shape``, :func:`fit_shape`) goes one step further: the offset of
each point may depend on the whole answer (a turned face's jaw sits differently against
people's labels than a frontal one's). It is a linear map: the correction is a ridge regression
of ``(label - answer)`` on the first :data:`COMPONENTS` principal components of the answer (all
68 points, crop units), fitted on the named dataset's faces with the boxes the model meets (its
card's detector, and its default detector's boxes mapped onto them), and added inside the graph
as one matrix product. Like the offsets, it uses the named dataset only.

Needs ``onnx`` (the ``train`` extra); the calibrated model runs anywhere, like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import check_unstaggered
from tcnn.codec import to_crop
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.registry import load_model, resolve
from tcnn.train.data.datasets import load_dataset

#: The graph's output before the calibration is added.
RAW = "landmarks_uncalibrated"
#: Principal components of the answer that the shape calibration reads.
COMPONENTS = 16
#: The shape calibration's ridge penalty, per face, on each component's weight (crop units).
RIDGE = 0.03


def fit_offsets(model: str, data: str, root: str | Path | None = None) -> tuple[np.ndarray, int]:
    """The mean ``(label - answer)`` per point over ``data``'s faces, in crop units.

    Faces are placed from the model card's detector's boxes (the faces it finds); points
    without a location (``NaN``) are left out of their point's mean.

    Returns:
        ``[K, 2]`` offsets in crop units (0 to 1 across the crop) and the faces used.

    Raises:
        TcnnError: the model and the dataset disagree on the points, or no face was found.
    """
    loaded = load_model(model)
    answers, labels = answers_and_labels(model, data, root, loaded.card.detector)
    return np.nanmean(labels - answers, axis=0), len(answers)


def answers_and_labels(
    model: str, data: str, root: str | Path | None, detector: str
) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s answers and ``data``'s labels, ``[N, K, 2]`` each in crop units, on the faces
    ``detector`` finds, its boxes mapped onto the boxes of the model card's detector.

    Raises:
        TcnnError: the model and the dataset disagree on the points, or no face was found.
    """
    from tcnn.detect import box_map
    from tcnn.predictor import LandmarkDetector

    loaded = load_model(model)
    lm = LandmarkDetector(model=str(loaded.path), face_detector=loaded.card.detector)
    samples = [s for s in load_dataset(data, root, detector) if s.box is not None]
    if not samples:
        raise TcnnError(f"calibrate: the {detector} detector found no face of {data}")
    if samples[0].landmarks.shape[0] != loaded.points:
        raise TcnnError(
            f"calibrate: {data} has {samples[0].landmarks.shape[0]} points, the model "
            f"{loaded.points}"
        )
    mapping = box_map(detector, loaded.card.detector)
    answers, labels = [], []
    for start in range(0, len(samples), 256):
        chunk = samples[start : start + 256]
        boxes = [mapping(s.box) if mapping else s.box for s in chunk if s.box is not None]
        items = [(load_image(s.path), b) for s, b in zip(chunk, boxes)]
        points = lm.landmarks_batch(items)
        regions = [loaded.card.crop.region(b, img.shape) for img, b in items]
        answers.append(to_crop(points, regions))
        labels.append(to_crop(np.stack([s.landmarks for s in chunk]), regions))
    return np.concatenate(answers), np.concatenate(labels)


def check_shape_settings(components: int, ridge: float) -> None:
    """Raise a one-line :class:`TcnnError` for shape calibration settings that cannot work."""
    if components < 1:
        raise TcnnError(f"shape calibration: components {components} must be 1 or more")
    if not ridge >= 0:
        raise TcnnError(f"shape calibration: ridge {ridge} must be 0 or more")


def shape_correction(
    answers: np.ndarray, labels: np.ndarray, components: int = COMPONENTS, ridge: float = RIDGE
) -> tuple[np.ndarray, np.ndarray]:
    """The linear map from an answer to its correction, fitted by ridge regression.

    Args:
        answers, labels: ``[N, K, 2]`` crop units (``labels`` ``NaN`` where a point has no
            location: that coordinate's regression leaves the face out).
        components: principal components of the answers the correction reads.
        ridge: penalty per face on each component's weight (the constant is not penalised).

    Returns:
        ``matrix`` ``[2K, 2K]`` and ``bias`` ``[K, 2]``: the corrected answer is
        ``answer + (answer.reshape(2K) @ matrix).reshape(K, 2) + bias``.

    Raises:
        TcnnError: fewer faces than components + 2, or a negative penalty.
    """
    check_shape_settings(components, ridge)
    n, k = len(answers), int(components)
    if n < k + 2:
        raise TcnnError(f"shape calibration: {n} faces cannot fit {components} components")
    x = answers.reshape(n, -1).astype(np.float64)
    residual = (labels - answers).reshape(n, -1).astype(np.float64)
    centre = x.mean(axis=0)
    basis = np.linalg.svd(x - centre, full_matrices=False)[2][:k]  # [k, 2K]
    design = np.c_[(x - centre) @ basis.T, np.ones(n)]
    penalty = ridge * np.eye(k + 1)
    penalty[-1, -1] = 0.0
    weights = np.zeros((k + 1, residual.shape[1]))
    for j in range(residual.shape[1]):
        ok = np.isfinite(residual[:, j])
        d = design[ok]
        weights[:, j] = np.linalg.solve(d.T @ d + ok.sum() * penalty, d.T @ residual[ok, j])
    matrix = basis.T @ weights[:-1]
    bias = weights[-1] - centre @ matrix
    return matrix, bias.reshape(-1, 2)


def fit_shape(
    model: str,
    data: str,
    root: str | Path | None = None,
    components: int = COMPONENTS,
    ridge: float = RIDGE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """:func:`shape_correction` fitted on ``data``'s faces with the boxes the model meets: its
    card's detector's and, when it differs, its default detector's (mapped).

    Returns:
        ``matrix``, ``bias`` and what the fit saw: the faces per detector (``faces``) and the
        mean length of the correction it makes on them (``mean_correction``, crop units).
    """
    card = load_model(model).card
    detectors = list(dict.fromkeys([card.detector, card.default_detector or card.detector]))
    pairs = {d: answers_and_labels(model, data, root, d) for d in detectors}
    answers = np.concatenate([a for a, _ in pairs.values()])
    labels = np.concatenate([b for _, b in pairs.values()])
    matrix, bias = shape_correction(answers, labels, components, ridge)
    moved = (answers.reshape(len(answers), -1) @ matrix).reshape(answers.shape) + bias
    info = {
        "faces": {d: len(a) for d, (a, _) in pairs.items()},
        "mean_correction": float(np.linalg.norm(moved, axis=-1).mean()),
    }
    return matrix, bias, info


def write_calibrated(
    model: str,
    offsets: np.ndarray,
    out: str | Path,
    name: str,
    note: dict[str, Any],
    matrix: np.ndarray | None = None,
) -> Path:
    """A copy of ``model`` whose graph adds ``offsets`` (``[K, 2]`` crop units) to its output,
    and with ``matrix`` (``[2K, 2K]``) the answer's linear correction too (see
    :func:`shape_correction`); its card renamed ``name`` and its ``training`` extended by
    ``calibration: note``."""
    import onnx
    from onnx import helper, numpy_helper

    from tcnn.card import update_card
    from tcnn.files import atomic_path

    path = resolve(model)
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    final = [n for n in graph.node if "landmarks" in n.output]
    if len(final) != 1 or any(i.name == "calibration" for i in graph.initializer):
        raise TcnnError(f"{path}: not an uncalibrated tcnn landmark model")
    final[0].output[list(final[0].output).index("landmarks")] = RAW
    graph.initializer.append(
        numpy_helper.from_array(offsets.astype(np.float32)[None], "calibration")
    )
    if matrix is None:
        graph.node.append(helper.make_node("Add", [RAW, "calibration"], ["landmarks"]))
    else:
        points = offsets.shape[0]
        graph.initializer.extend(
            [
                numpy_helper.from_array(matrix.astype(np.float32), "calibration_matrix"),
                numpy_helper.from_array(np.array([-1, 2 * points], np.int64), "calibration_flat"),
                numpy_helper.from_array(np.array([-1, points, 2], np.int64), "calibration_points"),
            ]
        )
        graph.node.extend(
            [
                helper.make_node("Reshape", [RAW, "calibration_flat"], ["calibration_in"]),
                helper.make_node("MatMul", ["calibration_in", "calibration_matrix"], ["cal_mix"]),
                helper.make_node("Reshape", ["cal_mix", "calibration_points"], ["cal_shift"]),
                helper.make_node("Add", [RAW, "cal_shift"], ["cal_moved"]),
                helper.make_node("Add", ["cal_moved", "calibration"], ["landmarks"]),
            ]
        )
    onnx.checker.check_model(graph_model)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(graph_model.SerializeToString())
    card = load_model(out).card
    update_card(out, name=name, training={**card.training, "calibration": note})
    return out


def calibrate(
    model: str,
    data: str,
    out: str | Path,
    name: str = "",
    root: str | Path | None = None,
    shape: bool = False,
    components: int = COMPONENTS,
    ridge: float = RIDGE,
) -> Path:
    """Fit ``model``'s per-point offsets (with ``shape``: its linear shape correction) on
    ``data`` and write the calibrated model to ``out``."""
    loaded = load_model(model)
    card = loaded.card
    check_unstaggered(card, loaded.path, "calibrate")
    if not shape:
        offsets, faces = fit_offsets(model, data, root)
        note = {
            "data": data,
            "faces": faces,
            "rule": f"per-point mean (label - answer) over the faces of {data} found by the "
            f"{card.detector} detector, in crop units, added to every answer inside the graph "
            "(tcnn.train.calibrate; points without a location left out)",
            "mean_offset": round(float(np.linalg.norm(offsets, axis=1).mean()), 6),
            "from_model": card.name,
        }
        return write_calibrated(model, offsets, out, name or f"{card.name}-{data}", note)
    check_shape_settings(components, ridge)  # before the faces are read
    matrix, bias, info = fit_shape(model, data, root, components, ridge)
    found = info["faces"]
    note = {
        "data": data,
        "faces": found,
        "rule": f"linear shape correction: ridge regression (penalty {ridge} per face) of "
        f"(label - answer) on the first {components} principal components of the answer (all "
        f"points, crop units) over the faces of {data} found by "
        f"{' and '.join(found)} (boxes mapped onto {card.detector}'s), added to every answer "
        "inside the graph (tcnn.train.calibrate.fit_shape; coordinates without a location "
        "left out of their regression)",
        "components": components,
        "ridge": ridge,
        "mean_correction": round(info["mean_correction"], 6),
        "from_model": card.name,
    }
    return write_calibrated(model, bias, out, name or f"{card.name}-{data}", note, matrix)
