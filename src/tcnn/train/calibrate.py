"""Calibrating a model to a labelling style: per-point offsets fitted on training labels.

Annotators of different datasets put a landmark in different places on the same face (the
jaw line's height, the eye corner's inside or outside). A model trained mostly on one style
(dlib's pseudo-labels) keeps it; this fits the mean per-point offset between a dataset's human
labels and the model's answers on that dataset's faces, in the model's crop units (the same
crop, from the model's own detector's boxes, that it sees at inference), and writes a copy of
the model whose graph adds those offsets to its output. The rule is stated in the new card and
uses the named dataset only: fit it on training labels (``aflw68-train``), never on a set that
is then reported.

Needs ``onnx`` (the ``train`` extra); the calibrated model runs anywhere, like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tcnn.codec import to_crop
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.registry import load_model, resolve
from tcnn.train.data.datasets import load_dataset

#: The graph's output before the calibration is added.
RAW = "landmarks_uncalibrated"


def fit_offsets(model: str, data: str, root: str | Path | None = None) -> tuple[np.ndarray, int]:
    """The mean ``(label - answer)`` per point over ``data``'s faces, in crop units.

    Faces are placed from the model card's detector's boxes (the faces it finds); points
    without a location (``NaN``) are left out of their point's mean.

    Returns:
        ``[K, 2]`` offsets in crop units (0 to 1 across the crop) and the faces used.

    Raises:
        TcnnError: the model and the dataset disagree on the points, or no face was found.
    """
    from tcnn.predictor import LandmarkDetector

    loaded = load_model(model)
    lm = LandmarkDetector(model=str(loaded.path), face_detector=loaded.card.detector)
    samples = [s for s in load_dataset(data, root, loaded.card.detector) if s.box is not None]
    if not samples:
        raise TcnnError(f"calibrate: the {loaded.card.detector} detector found no face of {data}")
    if samples[0].landmarks.shape[0] != loaded.points:
        raise TcnnError(
            f"calibrate: {data} has {samples[0].landmarks.shape[0]} points, the model "
            f"{loaded.points}"
        )
    diffs = []
    for start in range(0, len(samples), 256):
        chunk = samples[start : start + 256]
        items = [(load_image(s.path), s.box) for s in chunk]
        answers = lm.landmarks_batch(items)  # type: ignore[arg-type]
        regions = [loaded.card.crop.region(s.box, img.shape) for s, (img, _) in zip(chunk, items)]  # type: ignore[arg-type]
        labels = np.stack([s.landmarks for s in chunk])
        diffs.append(to_crop(labels, regions) - to_crop(answers, regions))
    return np.nanmean(np.concatenate(diffs), axis=0), len(samples)


def write_calibrated(
    model: str, offsets: np.ndarray, out: str | Path, name: str, note: dict[str, Any]
) -> Path:
    """A copy of ``model`` whose graph adds ``offsets`` (``[K, 2]`` crop units) to its output;
    its card renamed ``name`` and its ``training`` extended by ``calibration: note``."""
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
    graph.node.append(helper.make_node("Add", [RAW, "calibration"], ["landmarks"]))
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
) -> Path:
    """Fit ``model``'s per-point offsets on ``data`` and write the calibrated model to ``out``."""
    offsets, faces = fit_offsets(model, data, root)
    card = load_model(model).card
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
