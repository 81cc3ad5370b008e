"""The training faces of a config: dataset, boxes for faces the detector missed, base crops."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcnn.errors import TcnnError
from tcnn.train.config import TrainConfig
from tcnn.train.convention import restyle, shift_labels
from tcnn.train.data.augment import CropSet, make_crops
from tcnn.train.data.datasets import Sample, dataset_names, load_dataset
from tcnn.types import Box


def box_relation(samples: Sequence[Sample]) -> tuple[float, float, float]:
    """The median ``(dx, dy, size)`` relation of the detector's boxes to the landmarks.

    Measured on the samples the detector found (:meth:`tcnn.types.Box.landmark_relation`);
    :meth:`tcnn.types.Box.from_landmarks` inverts it. A model card's ``box_from_landmarks``.

    Raises:
        TcnnError: the detector found none of the faces.
    """
    rel = [s.box.landmark_relation(s.landmarks) for s in samples if s.box is not None]
    if not rel:
        raise TcnnError("the face detector found none of the training faces")
    dx, dy, size = np.median(np.asarray(rel), axis=0)
    return round(float(dx), 6), round(float(dy), 6), round(float(size), 6)


def fill_missing_boxes(samples: Sequence[Sample], mode: str) -> list[Sample]:
    """Give faces the detector missed a box derived from their landmarks, or drop them.

    The box is placed relative to the landmarks' bounding box by the median relation measured
    on the faces the detector found (:func:`box_relation`), so it follows the detector's
    convention.

    Args:
        mode: ``"landmarks"`` (place a box) or ``"drop"`` (leave the face out).
    """
    found = [s for s in samples if s.box is not None]
    if mode == "drop" or len(found) == len(samples):
        return found
    if mode != "landmarks":
        raise TcnnError(f"config missed: {mode!r} is not 'landmarks' or 'drop'")
    rel = box_relation(found)
    out = []
    for s in samples:
        if s.box is None:
            s = replace(s, box=Box.from_landmarks(s.landmarks, rel), score=np.nan)
        out.append(s)
    return out


def source_shifts(cfg: TrainConfig) -> tuple[float, ...]:
    """``cfg.label_shift`` for each source of ``cfg.data``, in its order (one value serves all).

    Raises:
        TcnnError: neither one value nor one per source.
    """
    names = dataset_names(cfg.data)
    shifts = cfg.label_shift or (0.0,)
    if len(shifts) == 1:
        shifts = shifts * len(names)
    if len(shifts) != len(names):
        raise TcnnError(
            f"label_shift: {len(cfg.label_shift)} values for {len(names)} datasets in "
            f"{cfg.data!r}; give one value, or one per dataset"
        )
    return shifts


def training_samples(cfg: TrainConfig, progress: bool = True) -> list[Sample]:
    """The faces of ``cfg.data`` (first ``cfg.limit``) with ``cfg.detector``'s boxes (cached).

    The labels are moved by ``-cfg.label_shift`` px on both axes (the label-convention rule,
    :mod:`tcnn.train.convention`): one shift for every source, or one per source of a ``+`` union.
    """
    names = dataset_names(cfg.data)
    shifts = source_shifts(cfg)
    styles = cfg.label_style or ("",) * len(names)
    if len(styles) != len(names):
        raise TcnnError(
            f"label_style: {len(styles)} entries for {len(names)} datasets in {cfg.data!r}; "
            'give one per dataset ("" for none)'
        )
    root = cfg.data_root or None
    out: list[Sample] = []
    for name, shift, style in zip(names, shifts, styles):
        samples = shift_labels(load_dataset(name, root, cfg.detector, progress, cfg.limit), shift)
        if style and samples:
            offsets = read_style(style, name)
            if len(offsets) != len(samples[0].landmarks):
                raise TcnnError(
                    f"label_style {style}: {len(offsets)} points, {name} has "
                    f"{len(samples[0].landmarks)}"
                )
            samples = restyle(samples, offsets)
        out += samples
    return out


def read_style(path: str, source: str) -> np.ndarray:
    """The ``[K, 2]`` per-point offsets of a style file (``benchmarks/studies/label_style.py``)."""
    try:
        data = json.loads(Path(path).read_text())
        offsets = np.asarray(data["offsets"], np.float64)
    except FileNotFoundError:
        raise TcnnError(f"label_style {path}: no such file") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TcnnError(f"label_style {path}: not a style file ({exc})") from None
    if data.get("source") != source:
        raise TcnnError(f"label_style {path}: measured on {data.get('source')!r}, not {source!r}")
    if offsets.ndim != 2 or offsets.shape[1] != 2:
        raise TcnnError(f"label_style {path}: offsets must be [K, 2], not {list(offsets.shape)}")
    return offsets


def split(samples: Sequence[Sample], cfg: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """The training and the held-out validation faces of ``samples`` (``cfg.val_fraction`` of
    them, at least one, drawn by ``cfg.seed``): the split a run of ``cfg`` trains on."""
    order = np.random.default_rng(cfg.seed).permutation(len(samples))
    n_val = max(1, int(len(samples) * cfg.val_fraction))
    return [samples[i] for i in order[n_val:]], [samples[i] for i in order[:n_val]]


def prepare(cfg: TrainConfig, progress: bool = True) -> tuple[CropSet, CropSet, dict[str, Any]]:
    """Load the training faces, split off validation faces, cut base crops.

    Returns:
        The training and validation crops, and what the run's card records about them: face
        counts, the faces the detector missed, and ``box_from_landmarks`` (measured on the
        training faces the detector found, :func:`box_relation`).
    """
    source_weights([], cfg)  # a wrong source_weights fails before the faces are read
    samples = training_samples(cfg, progress)
    missed = sum(s.box is None for s in samples)
    relation = box_relation(samples)
    train, val = split(fill_missing_boxes(samples, cfg.missed), cfg)
    kw: dict[str, Any] = dict(
        size=cfg.input_size, scale=cfg.crop_scale, shift_y=cfg.crop_shift_y, progress=progress
    )
    info = {
        "faces": len(samples),
        "train_faces": len(train),
        "val_faces": len(val),
        "detector_missed": missed,
        "missed_boxes": cfg.missed,
        "box_from_landmarks": list(relation),
    }
    train_set = make_crops(train, **kw)
    train_set.weights = source_weights(train, cfg)
    return train_set, make_crops(val, **kw), info


def source_weights(samples: Sequence[Sample], cfg: TrainConfig) -> torch.Tensor | None:
    """``[N]`` each face's drawing weight, its source's ``cfg.source_weights`` entry (``None``
    when the config gives none: every face equally often).

    Raises:
        TcnnError: neither no value nor one positive value per source.
    """
    if not cfg.source_weights:
        return None
    names = dataset_names(cfg.data)
    if len(cfg.source_weights) != len(names) or min(cfg.source_weights) <= 0:
        raise TcnnError(
            f"source_weights: give one positive weight per dataset in {cfg.data!r} "
            f"({len(names)}), not {list(cfg.source_weights)}"
        )
    weight = dict(zip(names, cfg.source_weights))
    return torch.tensor([weight[s.source] for s in samples], dtype=torch.float64)
