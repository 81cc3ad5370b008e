"""Export of a run: the network wrapped for inference, ONNX with a parity check, its card.

:func:`export_run` turns a run's checkpoint into ``model.onnx`` (called at the end of training and
tweaking, and by ``tcnn export``); :func:`export_model` writes any network with a
:class:`~tcnn.card.ModelCard` embedded.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcnn.card import CARD_KEY, Crop, ModelCard, write_card
from tcnn.errors import TcnnError
from tcnn.files import atomic_path
from tcnn.schemes import scheme_for
from tcnn.train.config import TrainConfig
from tcnn.train.data.augment import CropSet
from tcnn.train.data.datasets import dataset_names
from tcnn.train.data.samples import box_relation, prepare, training_samples
from tcnn.train.models.vanilla import InferenceNet, predict_crops
from tcnn.train.runs import config_of, load_checkpoint

LICENCE = {
    "mtfl": "Trained on MTFL (CUHK LFW + web images): research use only, by the terms of the "
    "MTFL/CUHK datasets.",
    "ytf68": "Trained on ytf68 (YouTube Faces frames, Udacity 2018, MIT licence); the YouTube "
    "Faces images are for research use.",
    "300w": "Trained on 300-W: research use only, by the terms of the 300-W datasets.",
    "utkface": "Trained on UTKFace (crop_part1): non-commercial research use only.",
    "dlib68": "68-point pseudo-labels from dlib's shape_predictor_68_face_landmarks, trained "
    "on iBUG 300-W, whose licence excludes commercial use.",
    "aflw68": "Trained on aflw68's training part: AFLW images (research use only) with "
    "MERL-RAV's 68-point labels (published by MERL for research).",
}


CONVENTIONS = {
    "mtfl": "MTFL labels moved to continuous pixel coordinates: training rows value - scale/2, "
    "AFLW test rows value - 0.5 (1-based)",
    "ytf68": "ytf68 labels read as 0-based pixel positions: continuous = value + 0.5",
    "300w": "300-W .pts labels are 1-based: continuous = value - 0.5",
    "aflw68": "aflw68 labels are continuous pixel coordinates of the 80x80 crops already; "
    "self-occluded points have none and are left out of the loss",
    "dlib68": "dlib 68-point pseudo-labels stored in continuous pixel coordinates "
    "(tcnn.train.data.pseudo: (p + 0.5) / upscale of dlib's pixel indices)",
}


def data_notes(data: str, table: dict[str, str], default: str, sep: str) -> str:
    """``table``'s words for every dataset of ``data`` (``+``-joined) and its labels' source."""
    keys: list[str] = []
    for part in data.split("+"):
        for key in (part.strip().split("-")[0], "dlib68" if part.endswith("-dlib68") else ""):
            if key and key not in keys:
                keys.append(key)
    notes = [table[k] for k in keys if k in table]
    return sep.join(notes) if notes else default


def label_rule_note(cfg: TrainConfig) -> str:
    """The card's words for the label-convention rule applied to a run (if any)."""
    if not any(cfg.label_shift):
        return ""
    names = dataset_names(cfg.data)
    if len(cfg.label_shift) == 1:
        d = cfg.label_shift[0]
        moved = f"by {-d:+.4f} px on both axes, taking off d = {d:+.4f} px"
    else:
        moved = "on both axes, per source, " + ", ".join(
            f"{n} by {-d:+.4f} px (d = {d:+.4f})" for n, d in zip(names, cfg.label_shift)
        )
    return (
        f"; label-convention rule (tcnn.train.convention): the training labels were moved {moved}, "
        "the mean horizontal residual (label - prediction) of a mirror-trained network on its "
        "training faces; nothing is added back at export"
    )


def model_card(
    cfg: TrainConfig,
    net: Any,
    data: dict[str, Any],
    offset: tuple[float, float],
    epochs: int,
    name: str,
) -> ModelCard:
    """Everything needed to run the model correctly, and where it came from.

    Args:
        net: a VanillaCNN or a TweakedCNN (its ``tweak`` arguments go into the card).
        data: what :func:`tcnn.train.data.samples.prepare` recorded about the training faces (with
            ``box_from_landmarks``).
        offset: the label offset inside the graph, in crop units.
    """
    arch: dict[str, Any] = {"family": "vanilla", **net.arch.to_dict()}
    if hasattr(net, "tweak"):
        arch = {**arch, "family": "tweaked", "tweak": dataclasses.asdict(net.tweak)}
    info = {k: v for k, v in data.items() if k != "box_from_landmarks"}
    relation = data.get("box_from_landmarks")
    saved = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "data_root"}
    return ModelCard(
        name=name,
        points=net.arch.points,
        scheme=scheme_for(net.arch.points).name,
        input_size=net.arch.input_size,
        channel_order="RGB",
        crop=Crop(cfg.crop_scale, cfg.crop_shift_y),
        detector=cfg.detector,
        default_detector=cfg.default_detector,
        boxes=f"training crops from the {cfg.detector} detector's boxes on the training "
        "images (faces it missed: a box placed from the landmarks by the median relation), "
        "jittered in position, scale and aspect",
        coordinates="continuous pixel coordinates (pixel i covers [i, i+1)); "
        + data_notes(cfg.data, CONVENTIONS, "labels as given", "; ")
        + label_rule_note(cfg),
        mirror_average=cfg.mirror_average,
        offset=(round(offset[0], 6), round(offset[1], 6)),
        box_from_landmarks=tuple(relation) if relation is not None else None,
        architecture=arch,
        parameters=sum(p.numel() for p in net.parameters()),
        training={"data": cfg.data, **info, "epochs": epochs, "seed": cfg.seed, "config": saved},
        licence=data_notes(cfg.data, LICENCE, "see the training data's licence", " "),
    )


def export_model(
    net: torch.nn.Module, card: ModelCard, path: str | Path, check: bool = True
) -> Path:
    """Export ``net`` (``[N, 3, S, S] -> [N, K, 2]``) to ONNX with ``card`` embedded.

    Writes ``path`` and ``path.json`` (the card, for people), both atomically, after checking
    that ONNX Runtime's output matches PyTorch's.
    """
    import onnx

    path = Path(path)
    s = card.input_size
    net = net.eval()
    example = torch.rand(2, 3, s, s) * 255
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                str(tmp),
                input_names=["image"],
                output_names=["landmarks"],
                dynamic_axes={"image": {0: "batch"}, "landmarks": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = CARD_KEY, card.to_json()
        onnx.save(model, str(tmp))
        if check:
            err = parity(net, tmp, s)
            if err > 1e-4:
                raise TcnnError(f"{path}: ONNX output differs from PyTorch by {err:.2e}")
    write_card(card, path)
    return path


def parity(net: torch.nn.Module, onnx_path: str | Path, size: int, n: int = 8) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime on random crops."""
    import onnxruntime as ort

    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        ref = net(x).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})[0]
    return float(np.abs(ref - got).max())


def label_offset(net: torch.nn.Module, crops: CropSet) -> tuple[float, float]:
    """Mean ``(target - prediction)`` on un-augmented training crops, in crop units.

    With mirror augmentation a network cannot learn a constant horizontal label offset (the
    mirror flips it); this measures it on training faces so it can be added back.

    Args:
        net: an :class:`InferenceNet` with zero offset (output in 0-1 crop units).
    """
    pred = predict_crops(net, crops.centre())
    d = (crops.points + 0.5 - pred).reshape(-1, 2).mean(0)
    return float(d[0]), float(d[1])


def graph_offset(
    cfg: TrainConfig,
    net: torch.nn.Module,
    perm: list[int] | None,
    train_set: CropSet | None,
    progress: bool = True,
) -> tuple[float, float]:
    """The offset the exported graph adds to every point (crop units): the one place it is set.

    ``cfg.correct_offset``: the labels' mean offset measured on the training faces
    (:func:`label_offset`); otherwise none.
    """
    if not cfg.correct_offset:
        return 0.0, 0.0
    if train_set is None:
        train_set = prepare(cfg, progress)[0]
    return label_offset(InferenceNet(net, perm, (0.0, 0.0)).eval(), train_set)


def export_run(
    run: Path,
    progress: bool = True,
    train_set: CropSet | None = None,
    out: Path | None = None,
    soft: bool | None = None,
    mirror: bool | None = None,
) -> Path:
    """Wrap a run's trained network for inference, export ONNX and write the model card.

    Args:
        train_set: the run's training crops, if at hand (else cut again when needed).
        out: the ONNX path (default ``run/model.onnx``).
        soft: override a Tweaked CNN's routing for this export (hard or soft).
        mirror: override the config's mirror averaging for this export.
    """
    net, state = load_checkpoint(run)
    cfg = config_of(state)
    if mirror is not None:
        cfg = dataclasses.replace(cfg, mirror_average=mirror)
    if soft is not None and state.get("kind") == "tweaked":
        net.tweak = dataclasses.replace(net.tweak, soft=soft)
    scheme = scheme_for(net.arch.points)
    perm = scheme.flip_permutation().tolist() if cfg.mirror_average else None
    offset = graph_offset(cfg, net, perm, train_set, progress)
    wrapped = InferenceNet(net, perm, offset).eval()
    data = dict(state["data"])
    if "box_from_landmarks" not in data:  # a run saved before the card recorded it
        data["box_from_landmarks"] = list(box_relation(training_samples(cfg, progress)))
    name = state.get("tweak_config", {}).get("name") or cfg.name
    card = model_card(cfg, net, data, offset, state["epoch"], name)
    return export_model(wrapped, card, out or run / "model.onnx")
