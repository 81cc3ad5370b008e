"""Synthetic test videos with known truth, made from real face photos.

A *sprite* is a real photo (or a part of it) with a feathered alpha edge. Each frame places
sprites on a smooth background with known similarity transforms (source pixels -> frame pixels,
continuous coordinates) and adds sensor noise. The truth of a frame is the raw pipeline's
landmarks on the undistorted source photo, moved by that frame's transform.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tcnn.imaging import load_image
from tcnn.predictor import LandmarkDetector

SIZE = (640, 480)
FPS = 30.0


@dataclass
class Sprite:
    """A face photo to move around.

    Attributes:
        rgba: ``[H, W, 4]`` uint8, alpha feathered at the edges.
        truth: points -> ``[K, 2]`` landmarks in the sprite's pixels (raw pipeline, undistorted).
        face: the detector's face box side in the sprite, pixels.
        centre: the face box centre in the sprite, continuous pixels.
    """

    name: str
    rgba: np.ndarray
    truth: dict[int, np.ndarray]
    face: float
    centre: tuple[float, float]


def make_sprite(
    path: str, detectors: dict[int, LandmarkDetector], margin: float | None = None
) -> Sprite:
    """A sprite of the photo at ``path``; ``margin`` crops it to that many face sizes around the
    face (``None``: the whole photo)."""
    rgb = load_image(path)
    faces = {k: d.detect(rgb) for k, d in detectors.items()}
    first = faces[next(iter(faces))]
    if not first:
        raise SystemExit(f"{path}: the detector finds no face to build a sprite from")
    box = first[0].box
    ox, oy = 0.0, 0.0
    if margin is not None:
        cx, cy = box.center
        half = margin * box.width / 2
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(rgb.shape[1], int(cx + half)), min(rgb.shape[0], int(cy + half))
        rgb, ox, oy = rgb[y0:y1, x0:x1], float(x0), float(y0)
    h, w = rgb.shape[:2]
    feather = max(4.0, 0.06 * min(h, w))
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    edge = np.minimum.reduce([xs, ys, w - xs, h - ys]) / feather
    alpha = (np.clip(edge, 0, 1) * 255).astype(np.uint8)
    truth = {k: f[0].landmarks - np.float32([ox, oy]) for k, f in faces.items()}
    cx, cy = box.center
    return Sprite(path, np.dstack([rgb, alpha]), truth, box.width, (cx - ox, cy - oy))


def similarity(centre: tuple[float, float], at: tuple[float, float], scale: float, deg: float):
    """2x3 matrix taking sprite point ``centre`` to frame point ``at``, scaled and turned."""
    a = math.radians(deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    m = np.array([[c, -s], [s, c]])
    t = np.array(at) - m @ np.array(centre)
    return np.hstack([m, t[:, None]])


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def background(seed: int = 0) -> Image.Image:
    """A smooth colour gradient with soft blobs (no face-like structure)."""
    w, h = SIZE
    ys, xs = np.mgrid[0:h, 0:w] / max(w, h)
    rng = np.random.default_rng(seed)
    bg = np.stack([90 + 60 * xs, 110 + 40 * ys, 130 - 30 * xs + 20 * np.sin(6 * ys)], axis=2)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.05, 0.2)
        bg += rng.uniform(-25, 25) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / r**2)[..., None]
    return Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).convert("RGBA")


def render(
    sprites: list[Sprite],
    poses: list[np.ndarray],
    bg: Image.Image,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One ``[480, 640, 3]`` frame: ``sprites`` placed by 2x3 ``poses`` (later ones in front)."""
    frame = bg.copy()
    for sp, m in zip(sprites, poses):
        full = np.vstack([m, [0, 0, 1]])
        inv = np.linalg.inv(full)[:2].ravel()
        layer = Image.fromarray(sp.rgba, "RGBA").transform(
            SIZE, Image.Transform.AFFINE, tuple(inv), resample=Image.Resampling.BILINEAR
        )
        frame = Image.alpha_composite(frame, layer)
    rgb = np.asarray(frame.convert("RGB"), np.float32)
    if noise > 0:
        rgb = rgb + rng.normal(0, noise, rgb.shape)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


Path_ = Callable[[int], tuple[tuple[float, float], float, float]]


def paths(face: float, frames: int) -> dict[str, Path_]:
    """Named motions: frame -> (centre, scale, degrees) for a face of ``face`` pixels on screen.

    Translation peaks at 20% of the face size per frame; zoom and rotation peak at 7% of the face
    size per frame at the face's edge.
    """
    w, h = SIZE
    c = (w / 2, h / 2)
    amp = 200.0
    period = 2 * math.pi * amp / (0.20 * face)  # peak speed 0.2 face sizes / frame

    def still(t: int):
        return c, 1.0, 0.0

    def translate(t: int):
        ph = 2 * math.pi * t / period
        return (c[0] + amp * math.sin(ph), c[1] + 0.25 * amp * math.sin(2 * ph)), 1.0, 0.0

    def zoom(t: int):
        return c, 1.0 + 0.3 * math.sin(2 * math.pi * t / 30.0), 0.0

    def rotate(t: int):
        return c, 1.0, 25.0 * math.sin(2 * math.pi * t / 40.0)

    def mixed(t: int):
        ph = 2 * math.pi * t / (1.5 * period)
        at = (c[0] + amp * math.sin(ph), c[1] + 0.3 * amp * math.cos(ph))
        return at, 1.0 + 0.2 * math.sin(2 * math.pi * t / 45.0), 15.0 * math.sin(ph)

    return {"still": still, "translate": translate, "zoom": zoom, "rotate": rotate, "mixed": mixed}


@dataclass
class Clip:
    """A synthetic video: frames and, per face, its truth for each scheme.

    Attributes:
        frames: ``[H, W, 3]`` uint8 RGB frames.
        truth: points -> ``[F, N, K, 2]`` truth landmarks per frame and face.
    """

    name: str
    frames: list[np.ndarray]
    truth: dict[int, np.ndarray]


def single_clip(
    name: str, sprite: Sprite, motion: Path_, frames: int, on_screen: float, noise: float, seed: int
) -> Clip:
    """One face moved along ``motion``; the face is ``on_screen`` pixels wide at scale 1."""
    rng = np.random.default_rng(seed)
    bg = background(seed)
    base = on_screen / sprite.face
    out, truth = [], {k: [] for k in sprite.truth}
    for t in range(frames):
        at, scale, deg = motion(t)
        m = similarity(sprite.centre, at, base * scale, deg)
        out.append(render([sprite], [m], bg, noise, rng))
        for k, pts in sprite.truth.items():
            truth[k].append(apply(m, pts)[None])
    return Clip(name, out, {k: np.stack(v) for k, v in truth.items()})


def crossing_clip(
    name: str, a: Sprite, b: Sprite, frames: int, on_screen: float, offset: float, noise: float
) -> Clip:
    """Two faces crossing horizontally in opposite directions; ``b`` passes in front.

    Args:
        offset: vertical distance between the two faces' centres, in face sizes (below 1, the
            front face hides part of the other at the crossing).
    """
    rng = np.random.default_rng(1)
    bg = background(1)
    w, h = SIZE
    x0, x1 = 0.5 * on_screen + 20, w - 0.5 * on_screen - 20
    out, truth = [], {k: [] for k in a.truth}
    for t in range(frames):
        u = t / (frames - 1)
        ya, yb = h / 2 - offset * on_screen / 2, h / 2 + offset * on_screen / 2
        ma = similarity(a.centre, (x0 + (x1 - x0) * u, ya), on_screen / a.face, 0.0)
        mb = similarity(b.centre, (x1 - (x1 - x0) * u, yb), on_screen / b.face, 0.0)
        out.append(render([a, b], [ma, mb], bg, noise, rng))
        for k in truth:
            truth[k].append(np.stack([apply(ma, a.truth[k]), apply(mb, b.truth[k])]))
    return Clip(name, out, {k: np.stack(v) for k, v in truth.items()})
