"""The Tweaked CNN: a shared trunk, Gaussian-mixture routing, and K fine-tuned heads.

Read top to bottom: ``MixtureRouter`` turns the features that enter FC5 into cluster
posteriors (the Gaussian mixture, as tensor operations that export to ONNX);
``TweakedCNN`` runs the shared layers once, every head on the shared features, and mixes the
heads' outputs by the routing weights (hard: the most likely cluster only; soft: the
posterior).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tcnn.train.models.vanilla import VanillaCNN


@dataclass(frozen=True)
class TweakArch:
    """Tweak arguments, saved in every checkpoint.

    Attributes:
        k: number of clusters and heads.
        covariance: ``"diag"`` or ``"full"`` (full is fitted after PCA to ``pca_dim``).
        pca_dim: features kept before a full-covariance mixture (0: no PCA).
        tweak_conv4: copy Conv4 into every head too (otherwise only FC5 and FC6).
        soft: mix heads by the posterior instead of using the most likely one.
    """

    k: int = 8
    covariance: str = "diag"
    pca_dim: int = 0
    tweak_conv4: bool = True
    soft: bool = False


class MixtureRouter(nn.Module):
    """Gaussian-mixture posteriors of ``[N, F]`` features: ``[N, K]``.

    Holds the mixture as buffers: the optional PCA projection, the means, and the
    precisions' Cholesky factors (diagonal ``[K, D]`` or full ``[K, D, D]``) as scikit-learn
    stores them.
    """

    pca_mean: torch.Tensor
    pca: torch.Tensor
    means: torch.Tensor
    prec_chol: torch.Tensor
    log_const: torch.Tensor

    def __init__(
        self,
        weights: np.ndarray,
        means: np.ndarray,
        prec_chol: np.ndarray,
        pca_mean: np.ndarray | None = None,
        pca_components: np.ndarray | None = None,
    ):
        super().__init__()
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.full = prec_chol.ndim == 3
        d = means.shape[1]
        self.register_buffer("pca_mean", f(pca_mean if pca_mean is not None else np.zeros(d)))
        self.register_buffer(
            "pca", f(pca_components.T if pca_components is not None else np.eye(d))
        )
        self.register_buffer("means", f(means))
        self.register_buffer("prec_chol", f(prec_chol))
        log_det = (
            np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(1)
            if self.full
            else np.log(prec_chol).sum(1)
        )
        self.register_buffer(
            "log_const", f(np.log(weights) + log_det - 0.5 * d * np.log(2 * np.pi))
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        g = (features - self.pca_mean) @ self.pca
        if self.full:
            y = torch.einsum("nd,kde->nke", g, self.prec_chol)
            y = y - torch.einsum("kd,kde->ke", self.means, self.prec_chol)
        else:
            y = (g[:, None, :] - self.means) * self.prec_chol
        log_p = self.log_const - 0.5 * (y * y).sum(-1)
        return torch.softmax(log_p, dim=1)


def make_router(arrays: dict[str, np.ndarray]) -> MixtureRouter:
    """The router of a fitted mixture's arrays, as saved in a Tweaked CNN's checkpoint.

    Args:
        arrays: ``weights [K]``, ``means [K, D]``, ``prec_chol`` (``[K, D]`` or
            ``[K, D, D]``) and optionally ``pca_mean [F]``, ``pca_components [D, F]``.
    """
    return MixtureRouter(
        arrays["weights"],
        arrays["means"],
        arrays["prec_chol"],
        arrays.get("pca_mean"),
        arrays.get("pca_components"),
    )


def split_trunk(base: VanillaCNN) -> tuple[nn.Module, nn.Module]:
    """The trunk up to and including Pool3, and Conv4 (with activation and flatten)."""
    pools = [i for i, m in enumerate(base.trunk) if isinstance(m, nn.MaxPool2d)]
    cut = pools[-1] + 1
    return base.trunk[:cut], base.trunk[cut:]


class TweakedCNN(nn.Module):
    """Shared layers, a frozen routing copy of the base's Conv4, and K heads.

    Input and output as :class:`~tcnn.train.models.vanilla.VanillaCNN`.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, base: VanillaCNN, tweak: TweakArch, router: MixtureRouter) -> None:
        super().__init__()
        self.arch = base.arch
        self.tweak = tweak
        self.register_buffer("mean", base.mean.clone())
        self.register_buffer("std", base.std.clone())
        shared, conv4 = split_trunk(base)
        self.shared = copy.deepcopy(shared)
        self.route_conv4 = copy.deepcopy(conv4).requires_grad_(False)
        self.router = router
        self.conv4 = nn.ModuleList(
            [copy.deepcopy(conv4) for _ in range(tweak.k if tweak.tweak_conv4 else 1)]
        )
        self.heads = nn.ModuleList([copy.deepcopy(base.head) for _ in range(tweak.k)])

    def routing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared features ``[N, C, H, W]`` and cluster posteriors ``[N, K]``."""
        z = self.shared((x - self.mean) / self.std)
        self.route_conv4.eval()
        return z, self.router(self.route_conv4(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, post = self.routing(x)
        if self.tweak.soft:
            w = post
        else:
            w = (post == post.max(dim=1, keepdim=True).values).to(post.dtype)
            w = w / w.sum(dim=1, keepdim=True)
        feats = [c(z) for c in self.conv4]
        outs = torch.stack(
            [h(feats[i if len(feats) > 1 else 0]) for i, h in enumerate(self.heads)], dim=1
        )
        return (w[:, :, None] * outs).sum(1).view(-1, self.arch.points, 2)
