"""Training: a typed config in, a run directory out.

The run directory holds ``config.toml``, ``checkpoint.pt`` (self-describing, resumable),
``metrics.jsonl`` (one line per epoch), ``loss.png``, and at the end ``model.onnx`` with its
model card ``model.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tcnn.errors import TcnnError
from tcnn.files import write_text
from tcnn.schemes import Scheme, scheme_for
from tcnn.train.config import Augment, Optim, TrainConfig, to_toml
from tcnn.train.data.augment import CropSet, augment_batch
from tcnn.train.data.datasets import dataset_points
from tcnn.train.data.samples import prepare
from tcnn.train.export import export_run
from tcnn.train.models.vanilla import VanillaArch, VanillaCNN, predict_crops
from tcnn.train.runs import save_checkpoint, start_run


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def point_errors(pred: torch.Tensor, target: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """``[N, K]`` point distances over the face's normalising distance; ``NaN`` where unlabelled.

    A target point without a location (``NaN``: aflw68's self-occluded points) gives no
    gradient.
    """
    located = ~torch.isnan(target).any(-1)
    target = torch.where(located[..., None], target, pred.detach())
    a, b = scheme.normalisers[scheme.default_normaliser]
    norm = (target[:, list(a)].mean(1) - target[:, list(b)].mean(1)).norm(dim=-1)
    dist = (pred - target).norm(dim=-1) / norm.clamp(min=1e-3)[:, None]
    return torch.where(located, dist, torch.nan)


def face_errors(pred: torch.Tensor, target: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """``[N]`` mean point distance over the normalising distance, from ``[N, K, 2]`` points.

    Points without a location in the target are left out of their face's mean.
    """
    return face_mean(point_errors(pred, target, scheme))


def face_mean(values: torch.Tensor) -> torch.Tensor:
    """``[N]`` mean over the located (not ``NaN``) points of ``[N, K]`` values."""
    located = ~torch.isnan(values)
    total = torch.where(located, values, torch.zeros_like(values)).sum(-1)
    return total / located.sum(-1).clamp(min=1)


def wing(d: torch.Tensor, width: float, curvature: float) -> torch.Tensor:
    """The Wing loss of distances ``d``: ``width * ln(1 + d / curvature)`` below ``width``,
    ``d - C`` above it, ``C`` making the two meet."""
    c = width - width * math.log1p(width / curvature)
    return torch.where(d < width, width * torch.log1p(d / curvature), d - c)


def normalised_loss(
    pred: torch.Tensor, target: torch.Tensor, scheme: Scheme, wing_shape: tuple[float, ...] = ()
) -> torch.Tensor:
    """The training loss: :func:`face_errors` averaged over the batch, or with ``wing_shape``
    (width, curvature) the :func:`wing` of each point's error, averaged the same way."""
    d = point_errors(pred, target, scheme)
    if wing_shape:
        width, curvature = wing_shape
        d = wing(d, width, curvature)
    return face_mean(d).mean()


def arch_of(cfg: TrainConfig) -> VanillaArch:
    return VanillaArch(
        points=dataset_points(cfg.data),
        input_size=cfg.input_size,
        channels=cfg.channels,
        hidden=cfg.hidden,
        activation=cfg.activation,
        trunk=cfg.trunk,
    )


@dataclass
class Loop:
    """What an optimisation loop needs besides the network and the data."""

    name: str
    optim: Optim
    augment: Augment
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
    o = loop.optim
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    steps = max(1, len(train_set) // o.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=o.epochs * steps, eta_min=o.min_lr
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
        range(start, o.epochs),
        desc=f"training {loop.name}",
        disable=not progress,
        initial=start,
        total=o.epochs,
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
            idx = order[i * o.batch_size : (i + 1) * o.batch_size]
            x, y = augment_batch(
                train_set.images[idx], train_set.points[idx], perm, loop.augment, gen
            )
            loss = normalised_loss(net(x), y, loop.scheme, o.wing)
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
        save_checkpoint(
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


def train(
    cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Train a Vanilla CNN from ``cfg``; return the run directory."""
    run = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / cfg.name
    try:
        net = VanillaCNN(arch_of(cfg))
    except ValueError as exc:  # an architecture the config names that cannot be built
        raise TcnnError(f"config {cfg.name}: {exc}") from None
    start_run(run, resume)
    torch.set_num_threads(cfg.threads)
    gen = seed_everything(cfg.seed)
    train_set, val_set, info = prepare(cfg, progress)
    if cfg.init:
        net.load_state_dict(initial_weights(cfg.init, net))
    else:
        centre = train_set.centre()
        net.mean.copy_(centre.mean(0))
        net.std.copy_(centre.std(0).clamp(min=1.0))
    write_text(run / "config.toml", to_toml(cfg))
    loop = Loop(cfg.name, cfg.optim, cfg.augment, scheme_for(net.arch.points))
    state = {"arch": net.arch.to_dict(), "config": dataclasses.asdict(cfg), "data": info}
    fit(net, train_set, val_set, loop, run, state, resume, gen, progress, train_set.weights)
    export_run(run, progress=progress, train_set=train_set)
    return run


def initial_weights(source: str, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` for config ``init``: a run folder, its ``checkpoint.pt``, or
    a tcnn ONNX model (:func:`weights_from_onnx`).

    A BatchNorm network's export folds its BatchNorm layers into the convolutions, so its
    ONNX file cannot restart training: give its run folder (or checkpoint) instead.

    Raises:
        TcnnError: when the source is missing or its weights do not fit ``net``.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.is_file():
            raise TcnnError(f"config init {source}: the run folder has no checkpoint.pt")
    if path.suffix != ".pt":
        return weights_from_onnx(source, net)
    if not path.is_file():
        raise TcnnError(f"config init {source}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    except Exception as e:  # torch raises many kinds of error on a bad file
        raise TcnnError(f"config init {source}: not a tcnn checkpoint ({e})") from None
    want = net.state_dict()
    for key, value in want.items():
        found = state.get(key)
        if found is None or tuple(found.shape) != tuple(value.shape):
            raise TcnnError(f"{path}: no weights {key} {tuple(value.shape)} for config init")
    return {k: state[k] for k in want}


def weights_from_onnx(model: str, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` read from a tcnn ONNX model (a shipped name or a path).

    The exported graph keeps the Vanilla CNN's parameter names under ``net.``.

    Raises:
        TcnnError: when the model's weights do not fit ``net``'s architecture.
    """
    import onnx
    from onnx import numpy_helper

    from tcnn.registry import resolve

    path = resolve(model)
    graph = onnx.load(str(path)).graph
    if getattr(getattr(net, "arch", None), "activation", "") == "relu":
        return folded_weights(path, graph, net)
    inits = {i.name: i for i in graph.initializer}
    state = {}
    for key, value in net.state_dict().items():
        found = inits.get(f"net.{key}")
        if found is None or tuple(found.dims) != tuple(value.shape):
            folded = (
                "; its BatchNorm was folded at export: give its run folder"
                if any(k.startswith("onnx::") for k in inits)
                else ""
            )
            raise TcnnError(
                f"{path}: no weights {key} {tuple(value.shape)} for config init{folded}"
            )
        state[key] = torch.from_numpy(numpy_helper.to_array(found).copy())
    return state


def folded_weights(path: Path, graph: Any, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of a ``"relu"`` Vanilla CNN read from a ``"bnrelu"`` model's ONNX graph.

    The export folded each convolution's BatchNorm into it; FC5's BatchNorm is folded here
    the same way (its running statistics, as at inference), so the ReLU network computes what
    the graph computes and can train on from there.

    Raises:
        TcnnError: when the graph's layers do not fit ``net``.
    """
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    norms = [n for n in graph.node if n.op_type == "BatchNormalization"]
    values: list[np.ndarray] = [inits.get("net.mean"), inits.get("net.std")]  # type: ignore[list-item]
    for node in convs:
        values += [inits[node.input[1]], inits[node.input[2]]]
    if len(gemms) == 2 and len(norms) == 1:
        gamma, beta, mu, var = (inits[n] for n in norms[0].input[1:5])
        eps = next((a.f for a in norms[0].attribute if a.name == "epsilon"), 1e-5)
        g = gamma / np.sqrt(var + eps)
        w5, b5 = inits[gemms[0].input[1]], inits[gemms[0].input[2]]
        values += [w5 * g[:, None], (b5 - mu) * g + beta]
        values += [inits[gemms[1].input[1]], inits[gemms[1].input[2]]]
    want = net.state_dict()
    if len(values) != len(want) or any(v is None for v in values):
        raise TcnnError(f"{path}: its layers do not fit a relu Vanilla CNN for config init")
    state = {}
    for (key, target), value in zip(want.items(), values):
        if tuple(value.shape) != tuple(target.shape):
            raise TcnnError(f"{path}: no weights {key} {tuple(target.shape)} for config init")
        state[key] = torch.from_numpy(value.astype(np.float32))
    return state


def plot_losses(run: Path) -> None:
    """Write ``loss.png``: training loss and validation error per epoch."""
    from matplotlib.figure import Figure

    from tcnn.files import save_figure

    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(epochs, [100 * r["train_loss"] for r in rows], label="train loss (augmented)")
    ax.plot(epochs, [100 * r["val_nme"] for r in rows], label="validation error")
    ax.set_xlabel("epoch")
    ax.set_ylabel("normalised mean error (%)")
    ax.set_title(run.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, run / "loss.png", dpi=100)
