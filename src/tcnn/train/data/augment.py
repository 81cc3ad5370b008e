"""Training crops and batch augmentation (mirror, rotation, scale, translation, colour,
colour casts and exposure).

Each training face is cut once, antialiased, into a *base* crop of twice the model's region at
twice the input size, so the model's ``S x S`` crop is its centre at the same scale as at
inference. Augmentation then samples a jittered ``S x S`` crop from the base crop for a whole
batch at once with ``grid_sample``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tcnn.codec import Crop, crop_region, to_crop
from tcnn.imaging import crop_resize, load_image
from tcnn.train.config import Augment
from tcnn.train.data.datasets import Sample


@dataclass
class CropSet:
    """Base crops of a set of faces.

    Attributes:
        images: ``[N, 3, 2S, 2S]`` uint8 RGB.
        points: ``[N, K, 2]`` float32 landmarks in centred crop units of the model's region
            (``pixel / S - 0.5``): the model's target with no augmentation; ``NaN`` where a
            point has no location.
        weights: ``[N]`` how often each face is drawn relative to the others in an epoch
            (the config's ``source_weights``); ``None``: uniformly.
    """

    images: torch.Tensor
    points: torch.Tensor
    weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def centre(self) -> torch.Tensor:
        """The un-augmented ``[N, 3, S, S]`` model inputs (float)."""
        s = self.images.shape[-1] // 4
        return self.images[:, :, s : 3 * s, s : 3 * s].float()


def make_crops(
    samples: Sequence[Sample], size: int, scale: float, shift_y: float, progress: bool = True
) -> CropSet:
    """Cut the base crop of every sample (all must have a box)."""
    images = np.zeros((len(samples), 2 * size, 2 * size, 3), np.uint8)
    points = np.zeros((len(samples), len(samples[0].landmarks), 2), np.float32)
    cache: dict[str, np.ndarray] = {}
    rule = Crop(scale, shift_y)
    for i, s in enumerate(tqdm(samples, desc="cutting crops", disable=not progress, unit="face")):
        assert s.box is not None
        key = str(s.path)
        if key not in cache:
            cache = {key: load_image(s.path)}
        region = rule.region(s.box)
        images[i] = crop_resize(cache[key], crop_region(region, 2.0), 2 * size)
        points[i] = to_crop(s.landmarks, region) - 0.5
    return CropSet(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(points)
    )


def augment_batch(
    images: torch.Tensor,
    points: torch.Tensor,
    flip_perm: torch.Tensor,
    aug: Augment,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample jittered model inputs from base crops.

    Args:
        images: ``[B, 3, 2S, 2S]`` uint8 base crops.
        points: ``[B, K, 2]`` centred crop units.
        flip_perm: ``[K]`` point permutation under a mirror.

    Returns:
        ``[B, 3, S, S]`` float inputs (0-255) and ``[B, K, 2]`` their targets.
    """
    b = images.shape[0]
    size = images.shape[-1] // 2

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) * (hi - lo) + lo

    angle = u(-aug.rotate_deg, aug.rotate_deg) * (math.pi / 180)
    scale = 1.0 + u(-aug.scale_jitter, aug.scale_jitter)
    aspect = 1.0 + u(-aug.aspect_jitter, aug.aspect_jitter)
    sx, sy = scale * aspect, scale / aspect
    flip = (
        (torch.rand(b, generator=generator) < 0.5)
        if aug.mirror
        else torch.zeros(b, dtype=torch.bool)
    )
    fx = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output crop normalised coords q in [-1, 1] -> base normalised coords p = A q + t.
    a = torch.zeros(b, 2, 2)
    a[:, 0, 0], a[:, 0, 1] = 0.5 * sx * cos * fx, -0.5 * sy * sin
    a[:, 1, 0], a[:, 1, 1] = 0.5 * sx * sin * fx, 0.5 * sy * cos
    shift = aug.shift_jitter
    t = torch.stack([u(-shift, shift), u(-shift, shift)], dim=1)
    grid = F.affine_grid(
        torch.cat([a, t[:, :, None]], dim=2), [b, 3, size, size], align_corners=False
    )
    out = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    # Targets: base normalised p = points (centred units of the model region) because the
    # base crop is twice the region: p = 2 * c / 2 = c ... in base units the region spans
    # [-0.5, 0.5], so p = c. Then q = A^-1 (p - t), and centred output units are q / 2.
    p = points - t[:, None, :]
    q = torch.linalg.solve(a[:, None], p[..., None]).squeeze(-1) / 2
    q = torch.where(flip[:, None, None], q[:, flip_perm], q)
    out = _colour(out, aug, generator)
    return out, q


def _colour(x: torch.Tensor, aug: Augment, generator: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]
    if aug.channel_gain > 0:
        u = (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1) * aug.channel_gain
        x = (x * torch.exp(u)).clamp(0, 255)
    if aug.gamma > 0:
        g = torch.exp((torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * aug.gamma)
        x = 255.0 * (x / 255.0).clamp(min=0) ** g
    if aug.colour_jitter <= 0 and aug.gray <= 0:
        return x
    r = lambda: (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * aug.colour_jitter  # noqa: E731
    gray = x.mean(dim=1, keepdim=True)
    sat = (1 + r()).clamp(min=0)
    to_gray = torch.rand(b, 1, 1, 1, generator=generator) < aug.gray
    sat = torch.where(to_gray, torch.zeros_like(sat), sat)
    x = gray + (x - gray) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + r()) + mean * (1 + r())
    return x.clamp(0, 255)
