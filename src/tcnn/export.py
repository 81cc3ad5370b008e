"""ONNX export with a parity check, and the model card embedded in the file."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcnn.config import TrainConfig
from tcnn.errors import TcnnError
from tcnn.models.registry import CARD_KEY
from tcnn.schemes import scheme_for

LICENCE = {
    "mtfl": "Trained on MTFL (CUHK LFW + web images): research use only, by the terms of the "
    "MTFL/CUHK datasets.",
    "ytf68": "Trained on ytf68 (YouTube Faces frames, Udacity 2018, MIT licence); the YouTube "
    "Faces images are for research use.",
    "300w": "Trained on 300-W: research use only, by the terms of the 300-W datasets.",
}


CONVENTIONS = {
    "mtfl": "MTFL labels moved to continuous pixel coordinates: training rows value - scale/2, "
    "AFLW test rows value - 0.5 (1-based)",
    "ytf68": "ytf68 labels read as 0-based pixel positions: continuous = value + 0.5",
    "300w": "300-W .pts labels are 1-based: continuous = value - 0.5",
}


def model_card(
    cfg: TrainConfig,
    net: Any,
    data: dict[str, Any],
    offset: tuple[float, float],
    epochs: int,
    name: str,
) -> dict[str, Any]:
    """Everything needed to run the model correctly, and where it came from.

    Args:
        net: a VanillaCNN or a TweakedCNN (its ``tweak`` arguments go into the card).
    """
    family = cfg.data.split("-")[0]
    arch: dict[str, Any] = {"family": "vanilla", **net.arch.to_dict()}
    if hasattr(net, "tweak"):
        arch = {**arch, "family": "tweaked", "tweak": dataclasses.asdict(net.tweak)}
    return {
        "name": name,
        "points": net.arch.points,
        "scheme": scheme_for(net.arch.points).name,
        "input_size": net.arch.input_size,
        "colour": "RGB",
        "input": "float32 [N, 3, S, S] pixel values 0-255; normalisation is inside the graph",
        "output": "float32 [N, K, 2] (x, y) in crop units, 0 to 1 across the crop",
        "crop": {
            "scale": cfg.crop_scale,
            "shift_y": cfg.crop_shift_y,
            "rule": "face box scaled about its centre, resized to S x S",
        },
        "detector": cfg.detector,
        "boxes": f"training crops from the {cfg.detector} detector's boxes on the training "
        "images (faces it missed: a box placed from the landmarks by the median relation), "
        "jittered in position, scale and aspect",
        "coordinates": "continuous pixel coordinates (pixel i covers [i, i+1)); "
        + CONVENTIONS.get(family, "labels as given"),
        "mirror_average": cfg.mirror_average,
        "offset": [round(v, 6) for v in offset],
        "architecture": arch,
        "parameters": sum(p.numel() for p in net.parameters()),
        "training": {
            "data": cfg.data,
            **data,
            "epochs": epochs,
            "seed": cfg.seed,
            "config": {k: v for k, v in vars(cfg).items() if k != "data_root"},
        },
        "licence": LICENCE.get(family, "see the training data's licence"),
        "metrics": {},
    }


def export_model(
    net: torch.nn.Module, card: dict[str, Any], path: str | Path, check: bool = True
) -> Path:
    """Export ``net`` (``[N, 3, S, S] -> [N, K, 2]``) to ONNX with ``card`` embedded.

    Writes ``path`` and ``path.json`` (the card, for people), both atomically, after checking
    that ONNX Runtime's output matches PyTorch's.
    """
    import onnx

    path = Path(path)
    s = card["input_size"]
    net = net.eval()
    tmp = path.with_name(path.name + ".tmp")
    example = torch.rand(2, 3, s, s) * 255
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
    entry.key, entry.value = CARD_KEY, json.dumps(card)
    onnx.save(model, str(tmp))
    if check:
        err = parity(net, tmp, s)
        if err > 1e-4:
            tmp.unlink()
            raise TcnnError(f"{path}: ONNX output differs from PyTorch by {err:.2e}")
    os.replace(tmp, path)
    write_card(card, path)
    return path


def write_card(card: dict[str, Any], onnx_path: Path) -> None:
    """Write the human-readable card beside the ONNX file."""
    side = onnx_path.with_suffix(".json")
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, side)


def parity(net: torch.nn.Module, onnx_path: str | Path, size: int, n: int = 8) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime on random crops."""
    import onnxruntime as ort

    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        ref = net(x).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})[0]
    return float(np.abs(ref - got).max())


def update_card(onnx_path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the card embedded in ``onnx_path`` and its ``.json`` (atomic)."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    entry = next((p for p in model.metadata_props if p.key == CARD_KEY), None)
    if entry is None:
        raise TcnnError(f"{path}: ONNX model without a tcnn model card")
    card = {**json.loads(entry.value), **fields}
    entry.value = json.dumps(card)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    write_card(card, path)
    return card
