"""Shared benchmark helpers: machine description, timing, dlib's shape predictor."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.detect import box_map, dlib_models_dir
from tcnn.imaging import load_image
from tcnn.train.data.datasets import Sample, load_dataset
from tcnn.types import Box

#: The repository root and the committed results folder (benchmarks/results).
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
#: The shared data folder beside the repository (../shared/data).
DATA = ROOT.parent / "shared" / "data"


def git_commit() -> str:
    """The tcnn commit the benchmark ran at, ``+dirty`` when tracked files had changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(ort_threads: int | None = None) -> dict[str, Any]:
    """CPU, cores, load, versions, thread counts and the tcnn commit, recorded with every result.

    Args:
        ort_threads: the ONNX Runtime intra-op threads the benchmark's sessions use (``None``:
            ONNX Runtime's default, one per physical core).
    """
    import dlib
    import onnxruntime
    import PIL

    cpu = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    torch_threads = None
    if "torch" in sys.modules:  # only when the benchmark uses torch (importing it is slow)
        torch_threads = sys.modules["torch"].get_num_threads()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "dlib": dlib.__version__,
        "pillow": PIL.__version__,
        "torch": _version("torch"),
        "tcnn_commit": git_commit(),
        "threads": {
            "onnxruntime_intra_op": ort_threads if ort_threads else "default (physical cores)",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch_threads,
        },
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


def speed(lm: Any, images: list[np.ndarray], boxes: list[Box], n1: int = 1000) -> dict[str, float]:
    """Landmark stage faces/s at batch 1 and 256 (crop + network + mapping)."""
    pairs = list(zip(images, boxes))

    def batch1() -> int:
        for img, b in pairs[:n1]:
            lm.landmarks(img, [b])
        return min(n1, len(pairs))

    def batch256() -> int:
        for i in range(0, len(pairs) - 255, 256):
            lm.landmarks_batch(pairs[i : i + 256])
        return (len(pairs) // 256) * 256

    return {"faces_per_s_batch1": rate(batch1), "faces_per_s_batch256": rate(batch256)}


class DlibShapePredictor:
    """dlib's 68-point shape predictor on given boxes (dlib 68-point model file)."""

    def __init__(self) -> None:
        import dlib

        self.dlib = dlib
        self.path = Path(dlib_models_dir()) / "shape_predictor_68_face_landmarks.dat"
        self.predictor = dlib.shape_predictor(str(self.path))

    def __call__(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """``[68, 2]`` float32 in continuous pixel coordinates.

        dlib gives integer 0-based pixel positions; a pixel's centre is ``i + 0.5``.
        """
        rect = self.dlib.rectangle(
            round(box.left),
            round(box.top),
            round(box.right) - 1,
            round(box.bottom) - 1,
        )
        shape = self.predictor(rgb, rect)
        pts = [[shape.part(i).x, shape.part(i).y] for i in range(68)]
        return np.array(pts, np.float32) + 0.5


def predict_all(
    lm: Any, images: list[np.ndarray], boxes: list[Box], detector: str = "dlib"
) -> np.ndarray:
    """Landmarks of every face, 256 faces a batch: ``[N, K, 2]`` pixels.

    ``boxes`` come from ``detector`` (dlib HOG for :func:`found_faces`); they are mapped onto
    the boxes the model was trained on when the two differ (``tcnn.detect.box_map``).
    """
    mapping = box_map(detector, lm.model.card.detector)
    if mapping is not None:
        boxes = [mapping(b) for b in boxes]
    return np.concatenate(
        [
            lm.landmarks_batch(list(zip(images[i : i + 256], boxes[i : i + 256])))
            for i in range(0, len(images), 256)
        ]
    )


#: A model spec's suffix for ``LandmarkDetector(refine=True)``: ``"tcnn68+refine"``.
REFINE = "+refine"


def landmark_detector(spec: str, **kwargs: Any) -> tuple[Any, str]:
    """``LandmarkDetector`` of a model spec (a shipped name or ``.onnx`` path, with
    :data:`REFINE` appended to refine) and its row label: the card's name, `` (refine)`` added.

    ``kwargs`` go to ``LandmarkDetector`` (points, face_detector, ...).
    """
    from tcnn.predictor import LandmarkDetector

    refine = spec.endswith(REFINE)
    lm = LandmarkDetector(spec.removesuffix(REFINE), refine=refine, **kwargs)
    return lm, lm.model.card.name + (" (refine)" if refine else "")


def with_refined(names: list[str]) -> list[str]:
    """Each model spec, then each again refined: the default rows of the benchmarks."""
    return [*names, *(n + REFINE for n in names)]


def load_images(samples: list[Any]) -> list[np.ndarray]:
    return [load_image(s.path) for s in samples]


@dataclass
class Faces:
    """The faces of a dataset that the detector found, loaded for a benchmark.

    Attributes:
        total: faces in the dataset, found or not.
        gt: ``[N, K, 2]`` ground truth of the found faces, continuous pixels.
    """

    total: int
    samples: list[Sample]
    images: list[np.ndarray]
    boxes: list[Box]
    gt: np.ndarray


def found_faces(name: str, limit: int = 0) -> Faces:
    """Load dataset ``name`` with dlib HOG boxes; keep the faces found (the first ``limit``)."""
    samples = load_dataset(name)
    found = [s for s in samples if s.box is not None]
    if limit:
        found = found[:limit]
    return Faces(
        len(samples),
        found,
        load_images(found),
        [s.box for s in found if s.box],
        np.stack([s.landmarks for s in found]),
    )


def command() -> str:
    """The command line of this run, to retype at the repository root.

    ``python benchmarks/DIR/NAME.py ARGS`` (what ``python -m benchmarks NAME ARGS`` runs too),
    after ``nice -n N`` when the process runs niced.
    """
    script = Path(sys.argv[0]).resolve()
    shown = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]
    niceness = os.nice(0)
    nice = ["nice", "-n", str(niceness)] if niceness else []
    return shlex.join([*nice, "python", shown, *sys.argv[1:]])


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``results/NAME.json`` (write-then-rename).

    Adds ``command()`` and ``machine()`` when the result has none (a run that updates part of a
    committed result keeps the command that produced the rest).
    """
    from tcnn.files import write_text

    result = result if "command" in result else {"command": command(), **result}
    result = result if "machine" in result else {**result, "machine": machine()}
    return write_text(RESULTS / f"{name}.json", json.dumps(result, indent=1) + "\n")


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"
