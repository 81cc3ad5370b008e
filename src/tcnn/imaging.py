"""Image loading and face cropping, shared by training, evaluation and inference."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tcnn.errors import TcnnError
from tcnn.types import Box

__all__ = [
    "ImageLike",
    "crop_batch",
    "crop_resize",
    "load_image",
    "load_image_reduced",
]

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray

#: Largest image accepted, in pixels (about 10,000 x 10,000).
MAX_PIXELS = 100_000_000


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to ``[H, W, 3]`` uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        gray = np.clip(arr / max(float(arr.max()), 1e-12) * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))


def check_file(path: str | os.PathLike[str], kind: str) -> Path:
    """``path`` as a :class:`Path` once it names a non-empty file; one-line errors otherwise.

    Args:
        kind: what the file should be, for the message (``"an image"``, ``"a video"``).
    """
    path = Path(path)
    if not path.exists():
        raise TcnnError(f"{path}: no such file")
    if path.is_dir():
        raise TcnnError(f"{path}: is a folder, not {kind}")
    if path.stat().st_size == 0:
        raise TcnnError(f"{path}: empty file")
    return path


def load_image(image: ImageLike) -> np.ndarray:
    """Load an image as ``[H, W, 3]`` uint8 RGB.

    Accepts a path, a PIL image or a numpy array (``[H, W]`` gray, ``[H, W, 3]`` RGB or
    ``[H, W, 4]`` RGBA; uint8, uint16 or float in ``[0, 1]``). A file's or PIL image's EXIF
    orientation is applied (``ImageOps.exif_transpose``), so a phone photo comes upright, as a
    person sees it, and coordinates refer to that upright image. An animated image gives its
    first frame; CMYK and palette images are converted to RGB.

    Raises:
        TcnnError: naming the file or value and the cause.
    """
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if isinstance(image, Image.Image):
        _check_size(image.size, "image")
        return _to_rgb(_upright(image))
    return _read(check_file(image, "an image"), 0)[0]


def load_image_reduced(image: ImageLike, min_side: int) -> tuple[np.ndarray, int]:
    """:func:`load_image`, with a JPEG file decoded at a reduced size when that is enough.

    PIL's ``draft`` has the JPEG decoder scale the image down by 2, 4 or 8 in the DCT (much
    less work than decoding it whole); the largest factor whose image keeps its longer side at
    least ``min_side`` pixels is used. Other images and other formats load at full size.

    Returns:
        The ``[h, w, 3]`` uint8 RGB image and the factor ``r`` (1, 2, 4 or 8) from its pixels
        to the full image's: its pixel ``i`` covers the full image's ``[r i, r (i + 1))``.
    """
    if isinstance(image, (np.ndarray, Image.Image)):
        return load_image(image), 1
    return _read(check_file(image, "an image"), min_side)


def _read(path: Path, min_side: int) -> tuple[np.ndarray, int]:
    """A file as RGB, a JPEG decoded reduced down to ``min_side`` (0: full size), and the
    reduction factor."""
    try:
        with Image.open(path) as img:
            _check_size(img.size, str(path))
            w, h = img.size
            if min_side and img.format == "JPEG" and max(w, h) >= 2 * min_side:
                k = min_side / max(w, h)
                img.draft("RGB", (math.ceil(w * k), math.ceil(h * k)))
            factor = round(w / img.size[0])
            img.load()
            return _to_rgb(_upright(img)), factor
    except TcnnError:  # already one line naming the file (a ValueError, not an unreadable one)
        raise
    except UnidentifiedImageError:
        raise TcnnError(f"{path}: not an image file PIL can read") from None
    except Image.DecompressionBombError:
        raise TcnnError(
            f"{path}: image too large (over {MAX_PIXELS / 1e6:.0f} megapixels)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise TcnnError(f"{path}: unreadable image ({exc})") from None


def _upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says (unchanged without one)."""
    if img.getexif().get(0x0112, 1) == 1:
        return img
    return ImageOps.exif_transpose(img)


def _check_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise TcnnError(
            f"{name}: image too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f})"
        )
    if w == 0 or h == 0:
        raise TcnnError(f"{name}: image has zero size ({w}x{h})")


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise TcnnError(f"image array: expected [H, W], [H, W, 3] or [H, W, 4], got {arr.shape}")
    _check_size((arr.shape[1], arr.shape[0]), "image array")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise TcnnError(f"image array: unsupported dtype {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)


def crop_resize(image: np.ndarray, region: Box, size: int, antialias: bool = True) -> np.ndarray:
    """Cut ``region`` out of an ``[H, W, 3]`` image and resize it to ``size x size``.

    The resize is antialiased (PIL's bilinear filter widens when shrinking); with
    ``antialias=False`` each output pixel centre is sampled bilinearly instead and rounded, as
    OpenCV's ``cv2.resize`` (INTER_LINEAR) does (the seed's pipeline). Parts of the region
    outside the image are black. Only the region's pixels are copied, so this is cheap on large
    photos.

    Returns:
        ``[size, size, 3]`` uint8 (read-only).
    """
    data = _crop_bytes(image, region, size, antialias)
    return np.frombuffer(data, np.uint8).reshape(size, size, 3)


def crop_batch(
    pairs: Sequence[tuple[np.ndarray, Box]], size: int, antialias: bool = True
) -> np.ndarray:
    """:func:`crop_resize` of each ``(image, region)`` pair, the same pixels, in one array.

    Returns:
        ``[N, size, size, 3]`` uint8 (read-only).
    """
    data = b"".join([_crop_bytes(img, r, size, antialias) for img, r in pairs])
    return np.frombuffer(data, np.uint8).reshape(len(pairs), size, size, 3)


def _crop_bytes(image: np.ndarray, region: Box, size: int, antialias: bool) -> bytes:
    """The ``size x size`` RGB crop as raw bytes (row by row, 3 bytes a pixel).

    Antialiased, per face this is PIL's C resampler plus a few Python calls: the patch goes to
    PIL as bytes (``Image.frombytes``) and comes back as bytes, without ``fromarray``'s or
    ``asarray``'s array-interface round trips, which cost as much as the resize itself on small
    faces. Without antialiasing it is :func:`_sample_bilinear` in numpy.
    """
    h, w = image.shape[:2]
    x0, y0 = math.floor(region.left), math.floor(region.top)
    x1, y1 = math.ceil(region.right), math.ceil(region.bottom)
    if not (region.right > region.left and region.bottom > region.top):
        raise TcnnError(f"face box {_fmt(region)} has zero size")
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise TcnnError(f"face box {_fmt(region)} lies outside the {w}x{h} image")
    patch = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        padded = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        padded[
            max(-y0, 0) : max(-y0, 0) + patch.shape[0], max(-x0, 0) : max(-x0, 0) + patch.shape[1]
        ] = patch
        patch = padded
    rel = (region.left - x0, region.top - y0, region.right - x0, region.bottom - y0)
    if not antialias:
        return _sample_bilinear(patch, rel, size)
    pil = Image.frombytes("RGB", (x1 - x0, y1 - y0), patch.tobytes())
    return pil.resize((size, size), Image.Resampling.BILINEAR, box=rel).tobytes()


def _sample_bilinear(patch: np.ndarray, rel: tuple[float, float, float, float], size: int) -> bytes:
    """OpenCV's ``cv2.resize`` (INTER_LINEAR) of the part ``rel`` of ``patch``, as raw bytes.

    Crop pixel ``j``'s centre, ``rel[0] + (j + 0.5) * width / size`` in continuous pixels, is
    sampled bilinearly between the patch's pixel centres (edge pixels repeated) and rounded to
    the nearest integer, as OpenCV does (up to its fixed-point arithmetic, which differs by one
    level in about an eighth of the pixels). PIL's affine transform, used before, truncates
    instead: its crops were 0.37 levels darker on average.
    """

    def axis(start: float, stop: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = start + (np.arange(size) + 0.5) * ((stop - start) / size) - 0.5
        src = np.clip(src, 0.0, n - 1)
        i0 = np.floor(src).astype(np.intp)
        return i0, np.minimum(i0 + 1, n - 1), src - i0

    y0, y1, fy = axis(rel[1], rel[3], patch.shape[0])
    x0, x1, fx = axis(rel[0], rel[2], patch.shape[1])
    # The 2S x 2S neighbours (rows y0 then y1, columns x0 then x1), weighted down, then across.
    near = patch[np.ix_(np.concatenate([y0, y1]), np.concatenate([x0, x1]))].astype(np.float64)
    near *= np.concatenate([1 - fy, fy])[:, None, None]
    rows = near[:size] + near[size:]
    rows *= np.concatenate([1 - fx, fx])[None, :, None]
    out = rows[:, :size] + rows[:, size:]
    out += 0.5
    return out.astype(np.uint8).tobytes()  # the values + 0.5 truncated: rounded to nearest


def _fmt(box: Box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box.as_tuple()) + ")"
