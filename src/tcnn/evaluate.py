"""Evaluation on a named dataset with a detector's boxes, and CED plots."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tcnn.data.datasets import DATASETS, Sample, load_dataset
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import SIXTY_EIGHT, scheme_for, to_five


@dataclass
class EvalResult:
    """Errors of one model on one dataset.

    Attributes:
        errors: ``[N]`` per-face normalised errors (fractions) of the faces evaluated.
        pred, gt: ``[N, K, 2]`` in pixels.
        missed: faces the detector did not find (not evaluated, counted here).
    """

    model: str
    data: str
    normaliser: str
    protocol: str
    errors: np.ndarray
    pred: np.ndarray
    gt: np.ndarray
    missed: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        s = summarise(self.errors)
        return {
            "model": self.model,
            "data": self.data,
            "normaliser": self.normaliser,
            "faces": len(self.errors),
            "missed": self.missed,
            "protocol": self.protocol,
            **{k: round(100 * v, 3) for k, v in s.items()},
            "seconds": round(self.seconds, 2),
        }


def predict_samples(
    detector: LandmarkDetector, samples: list[Sample], batch: int = 256, progress: bool = True
) -> np.ndarray:
    """Landmarks ``[N, K, 2]`` for samples that all have boxes, ``batch`` faces at a time."""
    out = []
    with tqdm(total=len(samples), desc="landmarks", disable=not progress, unit="face") as bar:
        for i in range(0, len(samples), batch):
            chunk = samples[i : i + batch]
            items = [(load_image(s.path), s.box) for s in chunk if s.box is not None]
            if len(items) != len(chunk):
                raise ValueError("predict_samples needs samples that all have a box")
            out.append(detector.landmarks_batch(items))
            bar.update(len(chunk))
    return np.concatenate(out)


def evaluate(
    model: str | os.PathLike[str] | None,
    data: str,
    root: str | None = None,
    detector: str = "dlib",
    normaliser: str | None = None,
    progress: bool = True,
    limit: int = 0,
) -> EvalResult:
    """Evaluate ``model`` on ``data`` with the boxes ``detector`` finds.

    A 68-point model on a 5-point dataset is scored on its 5 derived points
    (:func:`tcnn.schemes.to_five`).

    Args:
        limit: read only the first ``limit`` faces of the dataset (0: all).
    """
    spec = DATASETS.get(data)
    if spec is None:
        raise TcnnError(f"unknown dataset {data!r} (known: {', '.join(DATASETS)})")
    lm = LandmarkDetector(model, points=spec.points, detector=detector)
    if lm.model.points not in (spec.points, 68):
        raise TcnnError(
            f"model {lm.model.path.name} has {lm.model.points} points; {data} has {spec.points}"
        )
    samples = load_dataset(data, root, detector, progress=progress, limit=limit)
    found = [s for s in samples if s.box is not None]
    if not found:
        raise TcnnError(f"the {detector} detector found none of the {len(samples)} faces of {data}")
    t0 = time.perf_counter()
    pred = predict_samples(lm, found, progress=progress)
    seconds = time.perf_counter() - t0
    if lm.model.points == 68 and spec.points == 5:
        pred = to_five(pred)
    gt = np.stack([s.landmarks for s in found])
    scheme = scheme_for(spec.points)
    norm_key = normaliser or scheme.default_normaliser
    errors = nme(pred, gt, normalising_distance(gt, scheme, norm_key))
    protocol = (
        f"boxes from the {detector} detector (upsample {spec.upsample}); "
        f"{len(samples) - len(found)} of {len(samples)} faces missed and not scored"
    )
    return EvalResult(
        lm.model.card.name,
        data,
        norm_key,
        protocol,
        errors,
        pred,
        gt,
        len(samples) - len(found),
        seconds,
    )


def plot_ced(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    xlabel: str = "normalised mean error (%)",
    limit: float = 0.10,
) -> Path:
    """Plot CED curves (share of faces under each error) of several methods on one PNG."""
    from matplotlib.figure import Figure

    from tcnn.metrics import auc, ced
    from tcnn.outputs import save_figure

    path = Path(path)
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    for label, errors in curves.items():
        x, y = ced(errors, limit)
        ax.plot(
            100 * x,
            100 * y,
            label=f"{label} (mean {100 * np.mean(errors):.2f}%, "
            f"AUC {100 * auc(errors, limit):.1f})",
        )
    ax.set_xlim(0, 100 * limit)
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("faces (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def evaluate_300w(
    model: str | os.PathLike[str] | None, root: str, detector: str = "dlib", progress: bool = True
) -> list[dict[str, Any]]:
    """300-W's common, challenging and full test sets, inter-ocular and inter-pupil.

    The common and challenging sets are each run once; the full set is their union.

    Returns:
        One summary per (subset, normaliser), errors in percent.
    """
    parts = {
        name: evaluate(model, f"300w-{name}", root, detector, progress=progress)
        for name in ("common", "challenging")
    }
    subsets = {**{n: [r] for n, r in parts.items()}, "full": list(parts.values())}
    rows = []
    for subset, results in subsets.items():
        pred = np.concatenate([r.pred for r in results])
        gt = np.concatenate([r.gt for r in results])
        for key in ("inter-ocular", "inter-pupil"):
            errors = nme(pred, gt, normalising_distance(gt, SIXTY_EIGHT, key))
            rows.append(
                {
                    "subset": subset,
                    "normaliser": key,
                    "faces": len(errors),
                    "missed": sum(r.missed for r in results),
                    **{k: round(100 * v, 3) for k, v in summarise(errors).items()},
                }
            )
    return rows
