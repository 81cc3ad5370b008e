"""Shared benchmark helpers: machine description, timing, dlib's shape predictor."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.detect import dlib_models_dir
from tcnn.imaging import load_image
from tcnn.types import Box

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU, cores and package versions, recorded with every result."""
    import dlib
    import onnxruntime

    cpu = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "dlib": dlib.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def rate(fn: Callable[[], int], repeats: int = 3) -> float:
    """Best items per second over ``repeats`` calls of ``fn`` (which returns its item count)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


class DlibShapePredictor:
    """dlib's 68-point shape predictor on given boxes (dlib 68-point model file)."""

    def __init__(self) -> None:
        import dlib

        self.dlib = dlib
        self.path = Path(dlib_models_dir()) / "shape_predictor_68_face_landmarks.dat"
        self.predictor = dlib.shape_predictor(str(self.path))

    def __call__(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """``[68, 2]`` float32 as dlib gives them (integer pixel positions)."""
        rect = self.dlib.rectangle(int(round(box.left)), int(round(box.top)),
                                   int(round(box.right)) - 1, int(round(box.bottom)) - 1)
        shape = self.predictor(rgb, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float32)


def load_images(samples: list[Any]) -> list[np.ndarray]:
    return [load_image(s.path) for s in samples]


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"
