"""Evaluation on a named dataset with a detector's boxes, and CED plots."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tcnn.detect import renamed_face_detector
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.metrics import nme, normalising_distance, region_errors, summarise
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import SIXTY_EIGHT, Scheme, scheme_for, to_five
from tcnn.train.data.datasets import DATASETS, Sample, load_dataset


@dataclass
class EvalResult:
    """Errors of one model on one dataset.

    Attributes:
        errors: ``[N]`` per-face normalised errors (fractions) of the faces evaluated.
        pred, gt: ``[N, K, 2]`` in pixels.
        missed: faces the detector did not find (not evaluated, counted here).
        scoring: which points were scored, when not all (the dataset's protocol).
        groups: ``[N]`` each face's group (aflw68: pose), empty when the dataset has none.
        regions: region name -> ``[N]`` errors over its points, for datasets with groups.
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
    scoring: str = ""
    groups: list[str] = field(default_factory=list)
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        s = summarise(self.errors)
        out: dict[str, Any] = {
            "model": self.model,
            "data": self.data,
            "normaliser": self.normaliser,
            "normaliser_points": normaliser_points(scheme_for(self.gt.shape[1]), self.normaliser),
            "faces": len(self.errors),
            "missed": self.missed,
            "protocol": self.protocol,
            **{k: round(100 * v, 3) for k, v in s.items()},
            "seconds": round(self.seconds, 2),
        }
        if self.scoring:
            out["scoring"] = self.scoring
        if self.regions:
            out["by_region"] = {
                k: round(100 * float(np.nanmean(v)), 3) for k, v in self.regions.items()
            }
        if self.groups:
            groups = np.array(self.groups)
            out["by_group"] = {
                g: {
                    "faces": int((groups == g).sum()),
                    "mean": round(100 * float(self.errors[groups == g].mean()), 3),
                }
                for g in dict.fromkeys(self.groups)
            }
        return out

    def report(self) -> str:
        """The summary as the lines ``tcnn evaluate`` prints (:func:`format_summary`)."""
        return format_summary(self.summary())


def format_summary(summary: Mapping[str, Any]) -> str:
    """A :meth:`EvalResult.summary` as readable lines, errors in percent.

    A ``ced_png`` entry (the path of a CED plot added to the summary) is named last.
    """
    lines = [
        f"{summary['model']} on {summary['data']} ({summary['normaliser']} normalisation: "
        f"{summary['normaliser_points']} of the labels)",
        f"  faces evaluated  {summary['faces']}   missed by the detector {summary['missed']}",
        f"  mean error       {summary['mean']:.2f}%   median {summary['median']:.2f}%",
        f"  failures > 8%    {summary['failure_8']:.2f}%   > 10% {summary['failure_10']:.2f}%",
        f"  AUC at 10%       {summary['auc_10']:.2f}",
        f"  boxes            {summary['protocol']}",
    ]
    if "scoring" in summary:
        lines.append(f"  scoring          {summary['scoring']}")
    if "by_region" in summary:
        parts = ", ".join(f"{k} {v:.2f}%" for k, v in summary["by_region"].items())
        lines.append(f"  by part          {parts}")
    if "by_group" in summary:
        groups = ", ".join(
            f"{k} {v['mean']:.2f}% ({v['faces']})" for k, v in summary["by_group"].items()
        )
        lines.append(f"  by group         {groups}")
    if "ced_png" in summary:
        lines.append(f"  CED curve        {summary['ced_png']}")
    return "\n".join(lines)


def normaliser_points(scheme: Scheme, key: str) -> str:
    """The points a normaliser measures between, in words: ``"mean of 36-41 to mean of 42-47"``."""

    def side(idx: tuple[int, ...]) -> str:
        return str(idx[0]) if len(idx) == 1 else f"mean of {idx[0]}-{idx[-1]}"

    a, b = scheme.normalisers[key]
    return f"{side(a)} to {side(b)}"


def predict_samples(
    detector: LandmarkDetector, samples: list[Sample], batch: int = 256, progress: bool = True
) -> np.ndarray:
    """Landmarks ``[N, K, 2]`` for samples that all have boxes, ``batch`` faces at a time.

    The samples' boxes come from ``detector``'s face detector; they are mapped onto the model's
    box convention when the two differ (``LandmarkDetector.box_map``).
    """
    out = []
    with tqdm(total=len(samples), desc="landmarks", disable=not progress, unit="face") as bar:
        for i in range(0, len(samples), batch):
            chunk = samples[i : i + batch]
            items = [(load_image(s.path), detector.model_box(s.box)) for s in chunk if s.box]
            if len(items) != len(chunk):
                raise ValueError("predict_samples needs samples that all have a box")
            out.append(detector.landmarks_batch(items))
            bar.update(len(chunk))
    return np.concatenate(out)


def evaluate(
    model: str | os.PathLike[str] | None,
    data: str,
    root: str | None = None,
    face_detector: str | None = None,
    normaliser: str | None = None,
    progress: bool = True,
    limit: int = 0,
    refine: bool = False,
    *,
    detector: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``data`` with the boxes the face detector ``face_detector`` finds
    (its name: ``"retinaface"``, ``"dlib"``, ``"dlib-cnn"``).

    ``face_detector=None`` uses the detector of the model card (the boxes it was trained on).

    A 68-point model on a 5-point dataset is scored on its 5 derived points
    (:func:`tcnn.schemes.to_five`). Ground-truth points without a location (``NaN``: aflw68's
    self-occluded points) are not scored; the dataset's normaliser is used unless one is named.

    Args:
        normaliser: a key of the dataset's scheme's ``normalisers`` (``None``: the dataset's).
        limit: read only the first ``limit`` faces of the dataset (0: all).
        refine: place each face twice and average (:class:`tcnn.predictor.LandmarkDetector`).
        detector: the former name of ``face_detector``; deprecated (a ``DeprecationWarning``),
            to be removed in the next release.

    Raises:
        TcnnError: an unknown dataset or normaliser, or a negative ``limit`` (before any work),
            a model of other points, missing data, or a detector that finds no face.
    """
    face_detector = renamed_face_detector(face_detector, detector, "evaluate")
    spec = DATASETS.get(data)
    if spec is None:
        raise TcnnError(f"unknown dataset {data!r} (known: {', '.join(DATASETS)})")
    scheme = scheme_for(spec.points)
    norm_key = normaliser or spec.normaliser or scheme.default_normaliser
    if norm_key not in scheme.normalisers:  # before the model, the data and the detector run
        known = ", ".join(scheme.normalisers)
        raise TcnnError(f"normaliser {norm_key!r}: {data} ({spec.points} points) has {known}")
    if limit < 0:
        raise TcnnError(f"limit {limit}: must be 0 (all faces) or more")
    lm = LandmarkDetector(model, points=spec.points, face_detector=face_detector, refine=refine)
    if lm.model.points not in (spec.points, 68):
        raise TcnnError(
            f"model {lm.model.path.name} has {lm.model.points} points; {data} has {spec.points}"
        )
    face_detector = lm.face_detector
    samples = load_dataset(data, root, face_detector, progress=progress, limit=limit)
    found = [s for s in samples if s.box is not None]
    if not found:
        raise TcnnError(
            f"the {face_detector} detector found none of the {len(samples)} faces of {data}"
        )
    t0 = time.perf_counter()
    pred = predict_samples(lm, found, progress=progress)
    seconds = time.perf_counter() - t0
    if lm.model.points == 68 and spec.points == 5:
        pred = to_five(pred)
    gt = np.stack([s.landmarks for s in found])
    norm = normalising_distance(gt, scheme, norm_key)
    errors = nme(pred, gt, norm)
    protocol = (
        f"boxes from the {face_detector} detector (upsample {spec.upsample}); "
        f"{len(samples) - len(found)} of {len(samples)} faces missed and not scored"
    )
    scoring = ""
    if spec.scoring:
        located = int(np.isfinite(gt).all(axis=-1).sum())
        scoring = f"{spec.scoring} ({located:,} of {gt.shape[0] * gt.shape[1]:,} points scored)"
    groups = [s.group for s in found] if any(s.group for s in found) else []
    regions = region_errors(pred, gt, norm, scheme.regions) if groups else {}
    return EvalResult(
        lm.model.card.name + (" (refine)" if refine else ""),
        data,
        norm_key,
        protocol,
        errors,
        pred,
        gt,
        len(samples) - len(found),
        seconds,
        scoring,
        groups,
        regions,
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

    from tcnn.files import save_figure
    from tcnn.metrics import auc, ced

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
    model: str | os.PathLike[str] | None,
    root: str,
    face_detector: str | None = None,
    progress: bool = True,
    refine: bool = False,
    *,
    detector: str | None = None,
) -> list[dict[str, Any]]:
    """300-W's common, challenging and full test sets, inter-ocular and inter-pupil, with the
    boxes of the face detector named ``face_detector`` (as :func:`evaluate`; ``detector`` is
    its deprecated former name).

    The common and challenging sets are each run once; the full set is their union.

    Returns:
        One summary per (subset, normaliser), errors in percent (:func:`format_300w` prints
        them as a table).
    """
    face_detector = renamed_face_detector(face_detector, detector, "evaluate_300w")
    parts = {
        name: evaluate(model, f"300w-{name}", root, face_detector, progress=progress, refine=refine)
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


def format_300w(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`evaluate_300w` as a table, one line per subset and normaliser."""
    lines = [
        f"{'subset':<12} {'normaliser':<13} {'faces':>5} {'missed':>6} {'mean':>7} "
        f"{'median':>7} {'fail>8%':>8} {'fail>10%':>9} {'AUC@10%':>8}"
    ]
    lines += [
        f"{r['subset']:<12} {r['normaliser']:<13} {r['faces']:>5} {r['missed']:>6} "
        f"{r['mean']:>6.2f}% {r['median']:>6.2f}% {r['failure_8']:>7.2f}% "
        f"{r['failure_10']:>8.2f}% {r['auc_10']:>8.2f}"
        for r in rows
    ]
    return "\n".join(lines)
