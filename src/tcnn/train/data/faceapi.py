"""face-api.js's 68-point landmark network as a second pseudo-label teacher (training only).

The weights are those of the npm package ``@vladmandic/face-api`` (MIT licence,
``model/face_landmark_68_model.bin`` with its ``-weights_manifest.json``): 8-bit quantised
tensors, read here and dequantised (``q * scale + min``). Nothing of them is copied into this
repository or shipped; install the package where :func:`model_dir` looks::

    npm install --prefix ~/.cache/tcnn @vladmandic/face-api@1.7.15

The network, rebuilt in torch from the manifest's tensor names: four dense blocks (the first
opens with a plain 3x3 stride-2 convolution, the others with a depthwise-separable one; each
block adds up the outputs of its four convolutions, ReLU after each sum), TensorFlow's "same"
padding (stride 2: one row and column after, none before), global average over the 7x7 map,
one fully connected layer to 136 values: the 68 points as fractions of the 112x112 input.
Its input is RGB minus the mean ``(122.782, 117.001, 104.298)``, over 255.

Crop rule (measured on training faces only): a square of ``SCALE`` times the longer side of a
dlib HOG box, its centre moved down by ``SHIFT_Y`` of the square's side, resized without
antialiasing. On 600 MTFL training faces (HOG boxes) a grid over 1.0-1.3 and -0.05-0.15 gave
the least 5-point error against the human points at 1.2 and 0.1 (5.6% of the eye distance
direct, 5.1% flip-averaged; dlib's flip-averaged label: 4.9%; the mean of the two: 4.1%).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.errors import TcnnError
from tcnn.imaging import crop_resize
from tcnn.types import Box

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
MODEL = "face_landmark_68_model"
SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
SCALE = 1.2
SHIFT_Y = 0.1


def model_dir() -> Path:
    """The package's ``model`` folder: ``$TCNN_FACEAPI_DIR``, else ``node_modules`` under the
    working directory or ``~/.cache/tcnn``.

    Raises:
        TcnnError: when none holds the 68-point model, naming the install command.
    """
    env = os.environ.get("TCNN_FACEAPI_DIR")
    tail = Path("node_modules") / PACKAGE / "model"
    places = [Path(env)] if env else [Path.cwd() / tail, Path.home() / ".cache/tcnn" / tail]
    for place in places:
        if (place / f"{MODEL}-weights_manifest.json").is_file():
            return place
    raise TcnnError(
        f"face-api.js weights not found in {', '.join(map(str, places))}: run "
        f"'npm install --prefix ~/.cache/tcnn {PACKAGE}@{VERSION}' or set TCNN_FACEAPI_DIR"
    )


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    """The dequantised float32 tensors of the 68-point model, by their manifest names."""
    manifest = folder / f"{MODEL}-weights_manifest.json"
    groups = json.loads(manifest.read_text())
    out: dict[str, np.ndarray] = {}
    for group in groups:
        raw = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            q = w.get("quantization")
            n = int(np.prod(w["shape"]))
            if q is None or q["dtype"] != "uint8":
                raise TcnnError(f"{manifest}: {w['name']} is not uint8-quantised")
            values = np.frombuffer(raw, np.uint8, n, offset).astype(np.float32)
            out[w["name"]] = (values * q["scale"] + q["min"]).reshape(w["shape"])
            offset += n
        if offset != len(raw):
            raise TcnnError(f"{manifest}: tensors take {offset} bytes, the files hold {len(raw)}")
    return out


class FaceApi68:
    """The network on ``[B, 112, 112, 3]`` RGB crops -> ``[B, 68, 2]`` fractions of the crop.

    Args:
        weights: :func:`load_weights`'s tensors (default: from :func:`model_dir`).
    """

    def __init__(self, weights: dict[str, np.ndarray] | None = None) -> None:
        import torch

        w = load_weights(model_dir()) if weights is None else weights
        self.torch = torch
        t = {k: torch.from_numpy(v.copy()) for k, v in w.items()}
        self.params: dict[str, torch.Tensor] = {}
        for name, v in t.items():
            if name.endswith("/filters"):  # [kh, kw, in, out]
                v = v.permute(3, 2, 0, 1)
            elif name.endswith("/depthwise_filter"):  # [kh, kw, in, 1]
                v = v.permute(2, 3, 0, 1)
            elif name.endswith("/pointwise_filter"):  # [1, 1, in, out]
                v = v.permute(3, 2, 0, 1)
            elif name.endswith("/bias") and not name.startswith("fc"):
                v = v[None, :, None, None]
            self.params[name] = v.contiguous()

    def _conv(self, x: Any, name: str, stride: int) -> Any:
        f = self.torch.nn.functional
        p = self.params
        pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)
        x = f.pad(x, pad)
        if f"{name}/filters" in p:
            x = f.conv2d(x, p[f"{name}/filters"], stride=stride)
        else:
            dw = p[f"{name}/depthwise_filter"]
            x = f.conv2d(
                f.conv2d(x, dw, stride=stride, groups=dw.shape[0]), p[f"{name}/pointwise_filter"]
            )
        return x + p[f"{name}/bias"]

    def _block(self, x: Any, name: str) -> Any:
        relu = self.torch.relu
        total = relu(self._conv(x, f"{name}/conv0", 2))
        inner = total
        for i in (1, 2, 3):  # each convolution sees the ReLU of the sum of those before it
            total = total + self._conv(inner, f"{name}/conv{i}", 1)
            inner = relu(total)
        return inner

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(crops, np.float32))
            x = ((x - torch.tensor(MEAN_RGB)) / 255).permute(0, 3, 1, 2)
            for i in range(4):
                x = self._block(x, f"dense{i}")
            x = x.mean(dim=(2, 3))
            y = x @ self.params["fc/weights"] + self.params["fc/bias"]
        return y.numpy().reshape(-1, 68, 2).astype(np.float64)


def crop_square(box: Box) -> Box:
    """The teacher's input region for a dlib HOG ``box`` (the module's crop rule)."""
    cx, cy = box.center
    side = SCALE * max(box.width, box.height)
    cy += SHIFT_Y * side
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def place(net: FaceApi68, images: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
    """The teacher's 68 points for each ``(image, box)``: ``[N, 68, 2]``, continuous pixels."""
    regions = [crop_square(b) for b in boxes]
    crops = np.stack(
        [crop_resize(img, r, SIZE, antialias=False) for img, r in zip(images, regions)]
    )
    units = net(crops)
    origin = np.array([[r.left, r.top] for r in regions])[:, None]
    side = np.array([r.width for r in regions])[:, None, None]
    return origin + units * side
