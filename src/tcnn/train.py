"""Training: a typed config in, a run directory out.

The run directory holds ``config.toml``, ``checkpoint.pt`` (self-describing, resumable),
``metrics.jsonl`` (one line per epoch), ``loss.png``, and at the end ``model.onnx`` with its
model card ``model.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tcnn.config import TrainConfig, to_toml
from tcnn.convention import shift_labels
from tcnn.data.augment import Augment, CropSet, augment_batch, make_crops
from tcnn.data.datasets import DATASETS, Sample, load_dataset
from tcnn.errors import TcnnError
from tcnn.models.vanilla import InferenceNet, VanillaArch, VanillaCNN
from tcnn.schemes import Scheme, scheme_for
from tcnn.types import Box


def fill_missing_boxes(samples: Sequence[Sample], mode: str) -> list[Sample]:
    """Give faces the detector missed a box derived from their landmarks, or drop them.

    The box is placed relative to the landmarks' bounding box by the median relation measured
    on the faces the detector found, so it follows the detector's convention.
    """
    found = [s for s in samples if s.box is not None]
    if mode == "drop" or len(found) == len(samples):
        return found
    if mode != "landmarks":
        raise TcnnError(f"config missed: {mode!r} is not 'landmarks' or 'drop'")
    if not found:
        raise TcnnError("the face detector found none of the training faces")
    rel = np.median([s.box.landmark_relation(s.landmarks) for s in found if s.box], axis=0)
    out = []
    for s in samples:
        if s.box is None:
            s = Sample(s.path, s.landmarks, Box.from_landmarks(s.landmarks, rel), np.nan)
        out.append(s)
    return out


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def face_errors(pred: torch.Tensor, target: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """``[N]`` mean point distance over the normalising distance, from ``[N, K, 2]`` points."""
    a, b = scheme.normalisers[scheme.default_normaliser]
    norm = (target[:, list(a)].mean(1) - target[:, list(b)].mean(1)).norm(dim=-1)
    return (pred - target).norm(dim=-1).mean(-1) / norm.clamp(min=1e-3)


def normalised_loss(pred: torch.Tensor, target: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """:func:`face_errors` averaged over the batch (the training loss)."""
    return face_errors(pred, target, scheme).mean()


@torch.no_grad()
def predict_crops(net: torch.nn.Module, crops: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Run ``net`` over ``[N, 3, S, S]`` inputs in batches, in eval mode."""
    was = net.training
    net.eval()
    out = torch.cat([net(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    net.train(was)
    return out


def arch_of(cfg: TrainConfig) -> VanillaArch:
    return VanillaArch(
        points=DATASETS[cfg.data].points if cfg.data in DATASETS else 5,
        input_size=cfg.input_size,
        channels=cfg.channels,
        hidden=cfg.hidden,
        act=cfg.arch,
    )


def prepare(cfg: TrainConfig, progress: bool = True) -> tuple[CropSet, CropSet, dict[str, Any]]:
    """Load the training faces, split off validation faces, cut base crops."""
    samples = load_dataset(cfg.data, cfg.data_root or None, cfg.detector, progress, cfg.limit)
    samples = shift_labels(samples, cfg.label_shift)
    missed = sum(s.box is None for s in samples)
    samples = fill_missing_boxes(samples, cfg.missed)
    order = np.random.default_rng(cfg.seed).permutation(len(samples))
    n_val = max(1, int(len(samples) * cfg.val_fraction))
    val = [samples[i] for i in order[:n_val]]
    train = [samples[i] for i in order[n_val:]]
    kw = dict(
        size=cfg.input_size, scale=cfg.crop_scale, shift_y=cfg.crop_shift_y, progress=progress
    )
    info = {
        "faces": len(samples),
        "train_faces": len(train),
        "val_faces": len(val),
        "detector_missed": missed,
        "missed_boxes": cfg.missed,
    }
    return make_crops(train, **kw), make_crops(val, **kw), info  # type: ignore[arg-type]


@dataclass
class Loop:
    """What an optimisation loop needs besides the network and the data."""

    name: str
    epochs: int
    batch_size: int
    lr: float
    min_lr: float
    weight_decay: float
    aug: Augment
    scheme: Scheme


def fit(
    net: torch.nn.Module,
    train_set: CropSet,
    val_set: CropSet,
    loop: Loop,
    run: Path,
    state: dict[str, Any],
    resume: bool,
    gen: torch.Generator,
    progress: bool = True,
    sample_weights: torch.Tensor | None = None,
) -> None:
    """Adam with cosine decay on augmented batches; metrics, checkpoint and curve each epoch.

    Args:
        state: what the checkpoint saves besides the training state (architecture, config).
        sample_weights: ``[N]`` drawing weights for the faces of an epoch (uniform if None).
    """
    ckpt_path = run / "checkpoint.pt"
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=loop.lr, weight_decay=loop.weight_decay)
    steps = max(1, len(train_set) // loop.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=loop.epochs * steps, eta_min=loop.min_lr
    )
    start = 0
    if resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, weights_only=False)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        gen.set_state(saved["generator"])
        start = saved["epoch"]
    perm = torch.from_numpy(loop.scheme.flip_permutation())
    val_inputs = val_set.centre()
    bar = tqdm(
        range(start, loop.epochs),
        desc=f"training {loop.name}",
        disable=not progress,
        initial=start,
        total=loop.epochs,
        unit="epoch",
    )
    for epoch in bar:
        t0 = time.time()
        if sample_weights is None:
            order = torch.randperm(len(train_set), generator=gen)
        else:
            order = torch.multinomial(sample_weights, len(train_set), True, generator=gen)
        total = 0.0
        for i in range(steps):
            idx = order[i * loop.batch_size : (i + 1) * loop.batch_size]
            x, y = augment_batch(train_set.images[idx], train_set.points[idx], perm, loop.aug, gen)
            loss = normalised_loss(net(x), y, loop.scheme)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        val = float(normalised_loss(predict_crops(net, val_inputs), val_set.points, loop.scheme))
        row = {
            "epoch": epoch + 1,
            "train_loss": total / steps,
            "val_nme": val,
            "lr": sched.get_last_lr()[0],
            "seconds": round(time.time() - t0, 2),
        }
        bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{val:.4f}")
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        _save(
            ckpt_path,
            {
                **state,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "epoch": epoch + 1,
            },
        )
        plot_losses(run)


def start_run(run: Path, resume: bool) -> None:
    """Refuse to overwrite a finished or running run unless resuming."""
    if (run / "checkpoint.pt").exists() and not resume:
        raise TcnnError(f"{run}: already holds a run (use --resume, or another --set name=)")
    run.mkdir(parents=True, exist_ok=True)


def augment_of(cfg: TrainConfig) -> Augment:
    return Augment(
        cfg.rotate_deg,
        cfg.scale_jitter,
        cfg.shift_jitter,
        cfg.aspect_jitter,
        cfg.mirror,
        cfg.colour,
        cfg.gray,
    )


def train(
    cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Train a Vanilla CNN from ``cfg``; return the run directory."""
    run = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / cfg.name
    start_run(run, resume)
    torch.set_num_threads(cfg.threads)
    gen = seed_everything(cfg.seed)
    train_set, val_set, info = prepare(cfg, progress)
    net = VanillaCNN(arch_of(cfg))
    if cfg.init:
        net.load_state_dict(weights_from_onnx(cfg.init, net))
    else:
        centre = train_set.centre()
        net.mean.copy_(centre.mean(0))
        net.std.copy_(centre.std(0).clamp(min=1.0))
    (run / "config.toml").write_text(to_toml(cfg))
    loop = Loop(
        cfg.name,
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.min_lr,
        cfg.weight_decay,
        augment_of(cfg),
        scheme_for(net.arch.points),
    )
    state = {"arch": net.arch.to_dict(), "config": dataclasses.asdict(cfg), "data": info}
    fit(net, train_set, val_set, loop, run, state, resume, gen, progress)
    finish(run, progress=progress, train_set=train_set)
    return run


def weights_from_onnx(model: str, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` read from a tcnn ONNX model (a shipped name or a path).

    The exported graph keeps the Vanilla CNN's parameter names under ``net.``.

    Raises:
        TcnnError: when the model's weights do not fit ``net``'s architecture.
    """
    import onnx
    from onnx import numpy_helper

    from tcnn.models.registry import resolve

    path = resolve(model)
    inits = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    state = {}
    for key, value in net.state_dict().items():
        found = inits.get(f"net.{key}")
        if found is None or tuple(found.dims) != tuple(value.shape):
            raise TcnnError(f"{path}: no weights {key} {tuple(value.shape)} for config init")
        state[key] = torch.from_numpy(numpy_helper.to_array(found).copy())
    return state


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def config_of(state: dict[str, Any]) -> TrainConfig:
    """The training config saved in a checkpoint."""
    saved = dict(state["config"])
    saved["channels"] = tuple(saved["channels"])
    return TrainConfig(**saved)


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network of a checkpoint (Vanilla or Tweaked) from its saved arguments."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise TcnnError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
        net: Any = VanillaCNN(VanillaArch.from_dict(state["arch"]))
    except Exception as exc:  # torch.load raises many types for a damaged file
        raise TcnnError(f"{path}: not a tcnn checkpoint ({type(exc).__name__})") from None
    if state.get("kind") == "tweaked":
        from tcnn.models.tweaked import TweakArch, TweakedCNN
        from tcnn.tweak import make_router

        net = TweakedCNN(net, TweakArch(**state["tweak"]), make_router(state["router"]))
    net.load_state_dict(state["model"])
    net.eval()
    return net, state


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


def finish(
    run: Path,
    progress: bool = True,
    train_set: CropSet | None = None,
    out: Path | None = None,
    soft: bool | None = None,
    mirror: bool | None = None,
) -> Path:
    """Wrap the trained network for inference, export ONNX and write the model card.

    Args:
        out: the ONNX path (default ``run/model.onnx``).
        soft: override a Tweaked CNN's routing for this export (hard or soft).
        mirror: override the config's mirror averaging for this export.
    """
    from tcnn.export import export_model, model_card

    net, state = load_checkpoint(run)
    cfg = config_of(state)
    if mirror is not None:
        cfg = dataclasses.replace(cfg, mirror_average=mirror)
    if soft is not None and state.get("kind") == "tweaked":
        net.tweak = dataclasses.replace(net.tweak, soft=soft)
    scheme = scheme_for(net.arch.points)
    perm = scheme.flip_permutation().tolist() if cfg.mirror_average else None
    offset = (0.0, 0.0)
    if cfg.correct_offset:
        if train_set is None:
            train_set = prepare(cfg, progress)[0]
        offset = label_offset(InferenceNet(net, perm, (0.0, 0.0)).eval(), train_set)
    wrapped = InferenceNet(net, perm, offset).eval()
    name = state.get("tweak_config", {}).get("name") or cfg.name
    card = model_card(cfg, net, state["data"], offset, state["epoch"], name)
    return export_model(wrapped, card, out or run / "model.onnx")


def plot_losses(run: Path) -> None:
    """Write ``loss.png``: training loss and validation error per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tcnn.outputs import save_figure

    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [100 * r["train_loss"] for r in rows], label="train loss (augmented)")
    ax.plot(epochs, [100 * r["val_nme"] for r in rows], label="validation error")
    ax.set_xlabel("epoch")
    ax.set_ylabel("normalised mean error (%)")
    ax.set_title(run.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, run / "loss.png", dpi=100)
