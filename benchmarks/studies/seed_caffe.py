"""The seed's released Caffe model: its own pipeline against tcnn's, on MTFL AFLW with HOG boxes.

The seed's pipeline as ``../shared/data/seed-vanillacnn/README.md`` states it, reimplemented
here without Caffe: the dlib box (inclusive pixel indices) clipped to the image, its pixels
resized to 40x40 by OpenCV's ``cv2.resize`` (INTER_LINEAR; when OpenCV is not installed, the
same bilinear sampling rounded to nearest: tcnn's own sampler, up to ties), BGR, standardised by
the mean and std images, and the network's output ``p`` in [-0.5, 0.5] mapped back as ``left +
(p + 0.5) * width``, a 0-based pixel index (+ 0.5: continuous pixels, the labels' MTFL 1-based
values - 0.5). The network is the converted ONNX graph (``tests/test_caffe.py`` checks it
against a numpy forward pass). Each ``seed: ...`` row changes one step of that pipeline; the
``tcnn`` rows are ``tcnn evaluate`` of the converted model, with its card as ``tcnn
convert-caffe`` writes it and with ``crop.clip`` off (the card before clipping was added).

Run: ``python benchmarks/studies/seed_caffe.py [--limit N]`` (writes
benchmarks/results/seed_caffe.json).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import write_result
from tcnn.card import update_card
from tcnn.imaging import crop_resize, load_image
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.schemes import FIVE
from tcnn.train.caffe import convert_caffe
from tcnn.train.data.datasets import default_root, load_dataset
from tcnn.train.evaluate import evaluate
from tcnn.types import Box

Resize = Callable[[np.ndarray], np.ndarray]


def numpy_resize(patch: np.ndarray, rounding: bool = True, size: int = 40) -> np.ndarray:
    """``cv2.resize(patch, (size, size))`` without OpenCV: each output pixel centre sampled
    bilinearly (edge pixels repeated), ``[size, size, 3]`` uint8.

    Rounded to nearest (``rounding``), this is tcnn's own crop sampler (``crop_resize`` without
    antialiasing, over the whole patch), so the package's implementation serves. Truncated is PIL's
    affine sampler, which tcnn's converted model used before: a measured variant here, no longer a
    rule of the package, so its sampling stays in this script.
    """
    if rounding:
        h, w = patch.shape[:2]
        return crop_resize(patch, Box(0, 0, w, h), size, antialias=False)

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n - 1), src - i0

    y0, y1, fy = axis(patch.shape[0])
    x0, x1, fx = axis(patch.shape[1])
    p = patch.astype(np.float64)
    rows = p[y0] * (1 - fy)[:, None, None] + p[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.floor(out).astype(np.uint8)


def opencv_resize() -> tuple[Resize, str]:
    """OpenCV's resize when installed, else :func:`numpy_resize`; and its name."""
    try:
        import cv2
    except ImportError:
        return numpy_resize, "numpy bilinear, rounded (OpenCV not installed)"
    return (lambda patch: cv2.resize(patch, (40, 40))), f"OpenCV {cv2.__version__} cv2.resize"


def seed_points(
    bgr: np.ndarray,
    rect: tuple[int, int, int, int],
    resize: Resize,
    clip: bool = True,
    inclusive: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's crop of one face: ``(crop [40, 40, 3] BGR, origin (x, y), size (w, h))``.

    ``rect`` is dlib's ``(left, top, right, bottom)``, inclusive indices. ``inclusive=False``
    takes ``image[top:bottom, left:right]``, the slice in the seed's ``copyCroppedByBBox``;
    ``clip=False`` pads the image with black instead of clipping the box.
    """
    h, w = bgr.shape[:2]
    left, top, right, bottom = rect
    if not inclusive:
        right, bottom = right - 1, bottom - 1
    if clip:
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, w - 1), min(bottom, h - 1)
        patch = bgr[top : bottom + 1, left : right + 1]
    else:
        pad = max(0, -left, -top, right - w + 1, bottom - h + 1)
        big = np.pad(bgr, ((pad, pad), (pad, pad), (0, 0)))
        patch = big[top + pad : bottom + 1 + pad, left + pad : right + 1 + pad]
    size = np.array([right - left + 1, bottom - top + 1], np.float32)
    return resize(np.ascontiguousarray(patch)), np.array([left, top], np.float32), size


def run_seed(
    session: Any, images: list[np.ndarray], rects: list[tuple[int, int, int, int]], **kw: Any
) -> np.ndarray:
    """The seed pipeline's points ``[N, 5, 2]`` as 0-based pixel indices."""
    crops, origins, sizes = zip(*(seed_points(im, r, **kw) for im, r in zip(images, rects)))
    x = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2)
    units = session.run(None, {"image": np.ascontiguousarray(x)})[0]  # 0-1 across the crop
    return np.stack(origins)[:, None] + units * np.stack(sizes)[:, None]


def row(name: str, pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    s = summarise(nme(pred, gt, normalising_distance(gt, FIVE)))
    out = {"pipeline": name, **{k: round(100 * float(s[k]), 3) for k in ("mean", "median")}}
    out["failure_10"] = round(100 * float(s["failure_10"]), 3)
    print(f"{name:72s} {out['mean']:6.3f}% {out['median']:6.3f}% {out['failure_10']:6.2f}%")
    return out


def tcnn_row(name: str, model: Path, limit: int) -> dict[str, Any]:
    s = evaluate(model, "mtfl-aflw", face_detector="dlib", progress=False, limit=limit).summary()
    out = {"pipeline": name, **{k: s[k] for k in ("mean", "median", "failure_10")}}
    print(f"{name:72s} {s['mean']:6.3f}% {s['median']:6.3f}% {s['failure_10']:6.2f}%")
    return out


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", default=str(default_root() / "seed-vanillacnn"))
    ap.add_argument("--limit", type=int, default=0, help="the first N faces of the list only")
    args = ap.parse_args()
    seed = Path(args.seed)
    samples = [s for s in load_dataset("mtfl-aflw", limit=args.limit) if s.box is not None]
    gt = np.stack([s.landmarks for s in samples])  # MTFL's 1-based values - 0.5
    images = [np.ascontiguousarray(load_image(s.path)[:, :, ::-1]) for s in samples]  # BGR
    rects = [
        (int(b.left), int(b.top), int(b.right) - 1, int(b.bottom) - 1)
        for b in (s.box for s in samples)
        if b is not None
    ]
    crossing = sum(
        r[0] < 0 or r[1] < 0 or r[2] >= im.shape[1] or r[3] >= im.shape[0]
        for r, im in zip(rects, images)
    )
    resize, resize_name = opencv_resize()
    print(f"{len(samples)} faces, {crossing} boxes cross the image's edge; resize: {resize_name}")
    with tempfile.TemporaryDirectory() as tmp:
        model = convert_caffe(
            seed / "vanillaCNN.caffemodel",
            seed / "trainMean.png",
            seed / "trainSTD.png",
            Path(tmp) / "seed.onnx",
        )
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        base = run_seed(session, images, rects, resize=resize)
        rows = [
            row("seed: its pipeline (box clipped, pixels inclusive, cv2.resize)", base + 0.5, gt),
            row(
                "seed: box not clipped (outside the image black)",
                run_seed(session, images, rects, resize=resize, clip=False) + 0.5,
                gt,
            ),
            row(
                "seed: image[top:bottom, left:right] (the seed code's slice)",
                run_seed(session, images, rects, resize=resize, inclusive=False) + 0.5,
                gt,
            ),
            row(
                "seed: resize truncating instead of rounding (PIL's affine sampler)",
                run_seed(session, images, rects, resize=lambda p: numpy_resize(p, False)) + 0.5,
                gt,
            ),
            row(
                "seed: not clipped and truncating (tcnn's converted model before)",
                run_seed(
                    session, images, rects, resize=lambda p: numpy_resize(p, False), clip=False
                )
                + 0.5,
                gt,
            ),
            row("seed: outputs read as continuous pixels (no + 0.5)", base, gt),
            row("seed: outputs against MTFL's 1-based labels as written", base, gt + 0.5),
            tcnn_row("tcnn evaluate, card as converted (crop.clip on)", model, args.limit),
        ]
        unclipped = Path(tmp) / "seed-noclip.onnx"
        shutil.copy(model, unclipped)
        card = update_card(unclipped, name="seed-caffe-noclip")
        update_card(unclipped, crop={**card.to_dict()["crop"], "clip": False})
        rows.append(tcnn_row("tcnn evaluate, crop.clip off", unclipped, args.limit))
    write_result(
        "seed_caffe",
        {
            "data": "mtfl-aflw",
            "boxes": "dlib HOG, upsample 2",
            "faces": len(samples),
            "boxes_crossing_the_edge": crossing,
            "limit": args.limit,
            "resize": resize_name,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
