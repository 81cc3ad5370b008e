"""Tweaking: cluster a trained Vanilla CNN's FC5 inputs, fine-tune one head per cluster.

``tweak(cfg)`` reads the base run, fits the Gaussian mixture on the base's features of the
training faces, builds a :class:`~tcnn.train.models.tweaked.TweakedCNN` and fine-tunes it with the
base's augmentation. Every augmented face is routed again by the frozen router, so a rotated
or mirrored face trains the head of the cluster it now falls in (the paper's per-cluster
augmentation); ``balance`` also oversamples small clusters.

Routing reads the shared layers' output through a frozen copy of the base's Conv4. With
``train_trunk`` the shared layers are fine-tuned too, so the clusters drift with them (the
same at training and at inference); with ``train_trunk = false`` the routing stays exactly
the mixture that was fitted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcnn.errors import TcnnError
from tcnn.files import write_text
from tcnn.schemes import scheme_for
from tcnn.train.config import TweakConfig, to_toml
from tcnn.train.data.augment import CropSet
from tcnn.train.data.samples import prepare
from tcnn.train.export import export_run
from tcnn.train.loop import Loop, face_errors, fit, seed_everything
from tcnn.train.models.tweaked import TweakArch, TweakedCNN, make_router
from tcnn.train.models.vanilla import VanillaCNN, predict_crops
from tcnn.train.runs import config_of, load_checkpoint, start_run


def base_features(base: VanillaCNN, crops: CropSet) -> np.ndarray:
    """The features entering FC5 (``[N, F]``) of un-augmented crops."""
    embed = _Embed(base)
    return predict_crops(embed, crops.centre()).numpy()


class _Embed(torch.nn.Module):
    def __init__(self, base: VanillaCNN) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.embed(x)


def fit_router(features: np.ndarray, cfg: TweakConfig) -> dict[str, np.ndarray]:
    """Fit PCA (when ``pca_dim``) and a Gaussian mixture; return its arrays."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    if cfg.covariance not in ("diag", "full"):
        raise TcnnError(f"config covariance: {cfg.covariance!r} is not 'diag' or 'full'")
    arrays: dict[str, np.ndarray] = {}
    x = features
    if cfg.pca_dim:
        pca = PCA(cfg.pca_dim, random_state=cfg.seed).fit(x)
        arrays["pca_mean"], arrays["pca_components"] = pca.mean_, pca.components_
        x = pca.transform(x)
    gmm = GaussianMixture(
        cfg.k,
        covariance_type=cfg.covariance,
        reg_covar=1e-4,
        random_state=cfg.seed,
        max_iter=300,
        n_init=1,
    ).fit(x)
    arrays.update(weights=gmm.weights_, means=gmm.means_, prec_chol=gmm.precisions_cholesky_)
    return arrays


def clusters_of(net: TweakedCNN, crops: CropSet) -> np.ndarray:
    """Most likely cluster of each un-augmented crop: ``[N]`` int."""
    router = _Router(net)
    return predict_crops(router, crops.centre()).argmax(1).numpy()


class _Router(torch.nn.Module):
    def __init__(self, net: TweakedCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.routing(x)[1]


def balance_weights(clusters: np.ndarray, k: int, minimum: int) -> torch.Tensor:
    """Drawing weights so each cluster gets at least ``minimum`` faces an epoch on average."""
    sizes = np.bincount(clusters, minlength=k).astype(np.float64)
    boost = np.maximum(1.0, minimum / np.maximum(sizes, 1.0))
    return torch.from_numpy(boost[clusters])


def tweak(
    cfg: TweakConfig, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Build and fine-tune a Tweaked CNN from the Vanilla run ``cfg.base``."""
    base, base_state = load_checkpoint(cfg.base)
    if base_state.get("kind", "vanilla") != "vanilla":
        raise TcnnError(f"{cfg.base}: not a Vanilla CNN run (tweak a Vanilla run)")
    bcfg = config_of(base_state)
    name = cfg.name or f"{Path(cfg.base).name}-k{cfg.k}"
    cfg = dataclasses.replace(cfg, name=name)
    run = Path(run_dir) if run_dir is not None else Path(cfg.out_dir) / name
    start_run(run, resume)
    torch.set_num_threads(cfg.threads)
    gen = seed_everything(cfg.seed)
    train_set, val_set, info = prepare(bcfg, progress)
    router = fit_router(base_features(base, train_set), cfg)
    arch = TweakArch(cfg.k, cfg.covariance, cfg.pca_dim, cfg.tweak_conv4, cfg.soft)
    net = TweakedCNN(base, arch, make_router(router))
    if not cfg.train_trunk:
        net.shared.requires_grad_(False)
    clusters = clusters_of(net, train_set)
    info = {**info, "cluster_sizes": np.bincount(clusters, minlength=cfg.k).tolist()}
    weights = balance_weights(clusters, cfg.k, cfg.balance) if cfg.balance else None
    write_text(run / "config.toml", to_toml(cfg))
    loop = Loop(name, cfg.optim, bcfg.augment, scheme_for(base.arch.points))
    state: dict[str, Any] = {
        "kind": "tweaked",
        "arch": base.arch.to_dict(),
        "tweak": dataclasses.asdict(arch),
        "router": router,
        "config": dataclasses.asdict(bcfg),
        "tweak_config": dataclasses.asdict(cfg),
        "data": info,
    }
    fit(net, train_set, val_set, loop, run, state, resume, gen, progress, weights)
    export_run(run, progress=progress, train_set=train_set)
    return run


def cluster_table(run: str | Path, progress: bool = True) -> dict[str, Any]:
    """Per cluster: training faces, mean face image, validation faces and error.

    Returns:
        ``sizes [K]``, ``means [K, S, S, 3]`` uint8, ``val_sizes [K]``, ``val_error [K]``
        (fractions; nan for a cluster with no validation face).
    """
    net, state = load_checkpoint(run)
    if state.get("kind") != "tweaked":
        raise TcnnError(f"{run}: not a Tweaked CNN run (make one with tcnn tweak)")
    train_set, val_set, _ = prepare(config_of(state), progress)
    k = net.tweak.k
    train_c, val_c = clusters_of(net, train_set), clusters_of(net, val_set)
    centre = train_set.centre()
    means = np.zeros((k, *centre.shape[2:], 3), np.uint8)
    for c in range(k):
        if (train_c == c).any():
            img = centre[torch.from_numpy(train_c == c)].mean(0).permute(1, 2, 0)
            means[c] = img.round().clamp(0, 255).byte().numpy()
    scheme = scheme_for(net.arch.points)
    err = face_errors(predict_crops(net, val_set.centre()), val_set.points, scheme).numpy()
    val_error = np.array(
        [err[val_c == c].mean() if (val_c == c).any() else np.nan for c in range(k)]
    )
    return {
        "sizes": np.bincount(train_c, minlength=k),
        "means": means,
        "val_sizes": np.bincount(val_c, minlength=k),
        "val_error": val_error,
    }


def cluster_sheet(run: str | Path, out: str | Path, progress: bool = True) -> Path:
    """The paper's picture: each cluster's mean face with its size and validation error."""
    from matplotlib.figure import Figure

    from tcnn.files import save_figure

    t = cluster_table(run, progress)
    k = len(t["sizes"])
    cols = min(k, 8)
    rows = (k + cols - 1) // cols
    fig = Figure(figsize=(1.6 * cols, 2.15 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for c, ax in enumerate(axes.flat):
        ax.axis("off")
        if c >= k:
            continue
        ax.imshow(t["means"][c])
        err = t["val_error"][c]
        err_text = "-" if np.isnan(err) else f"{100 * err:.1f}%"
        ax.set_title(
            f"#{c}: {t['sizes'][c]} faces\nval {err_text} ({t['val_sizes'][c]})", fontsize=7
        )
    fig.suptitle(f"{Path(run).name}: mean training face of each cluster", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out)
