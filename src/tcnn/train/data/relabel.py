"""68-point labels from a shipped tcnn model: self-training on the unlabelled pool.

The students' mean (``tcnn68hid-int8``, calibrated to the human labels of aflw68's training
part) is nearer the human labels than dlib, the teacher the pseudo-labelled datasets came
from. Relabelling the same faces with it gives a new student targets in the human style
directly, with no per-source style correction.

Each relabelled dataset keeps its base dataset's faces (those with a face box), and each face
is placed from the box the base dataset's protocol gives it, twice (the detector's box and the
box the first answer implies: ``refine``) and averaged. Files:
``<cache>/relabel-<dataset>-v1.csv``, the pseudo-label layout
(:data:`~tcnn.train.data.formats.CONTINUOUS_HEADER`; paths relative to the data root).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tcnn.errors import TcnnError
from tcnn.files import cache_dir, write_text
from tcnn.imaging import load_image
from tcnn.train.data.formats import CONTINUOUS_HEADER
from tcnn.types import Box

#: The shipped model that labels the faces.
TEACHER = "tcnn68hid-int8"
#: Relabelled dataset -> the dataset whose faces (and face boxes) it takes.
RELABELLED = {
    "ytf68-train-hid68": "ytf68-train",
    "mtfl-train-hid68": "mtfl-train-fused68",
    "utkface-hid68": "utkface-dlib68",
}
#: Version of the relabelling recipe in the cache file names.
VERSION = 1
#: Faces labelled per call of the teacher (their images are held in memory meanwhile).
CHUNK = 1024


def relabel_file(name: str) -> Path:
    """The cached label CSV of the relabelled dataset ``name``."""
    return cache_dir() / f"relabel-{name}-v{VERSION}.csv"


def teacher_labels(
    faces: Sequence[tuple[Path, Box | None]],
    teacher: str = TEACHER,
    desc: str = "",
    progress: bool = True,
) -> np.ndarray:
    """``[N, 68, 2]`` landmarks of ``faces`` (image path, face box of the HOG protocol) placed
    by the shipped model ``teacher`` with ``refine``, in image pixels; a chunk of images at a
    time is held in memory."""
    from tcnn.predictor import LandmarkDetector

    if any(box is None for _, box in faces):
        raise TcnnError("teacher_labels: every face needs a box (drop the missed ones first)")
    det = LandmarkDetector(teacher, face_detector="dlib", refine=True)
    by_image: dict[Path, list[int]] = defaultdict(list)
    for i, (path, _) in enumerate(faces):
        by_image[Path(path)].append(i)
    order = [i for idx in by_image.values() for i in idx]
    points = np.full((len(faces), 68, 2), np.nan, np.float32)
    with tqdm(total=len(order), desc=desc or teacher, unit="face", disable=not progress) as bar:
        for start in range(0, len(order), CHUNK):
            chunk = order[start : start + CHUNK]
            images = {p: load_image(p) for p in {Path(faces[i][0]) for i in chunk}}
            items = [
                (images[Path(p)], box) for p, box in (faces[i] for i in chunk) if box is not None
            ]
            points[chunk] = det.landmarks_batch(items)
            bar.update(len(chunk))
    return points


def write_labels(
    out: Path, paths: Sequence[Path], points: np.ndarray, root: Path, what: str
) -> None:
    """Write ``points`` of the faces in ``paths`` as a label CSV (paths relative to ``root``),
    ``what`` (the faces and their teacher) in its comment line."""
    rows = [CONTINUOUS_HEADER, f"# {what}"]
    for path, pts in zip(paths, points):
        rel = os.path.relpath(path, root)
        rows.append(rel + "," + ",".join(f"{v:.3f}" for v in pts.reshape(-1)))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, "\n".join(rows) + "\n")
