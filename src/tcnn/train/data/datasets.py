"""Named datasets with their face-box protocol, and face boxes from a detector (cached)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tcnn.detect import FaceDetector, make_detector
from tcnn.errors import TcnnError
from tcnn.files import cache_dir, write_text
from tcnn.imaging import load_image
from tcnn.retina import int8_weights
from tcnn.train.data import pseudo, relabel
from tcnn.train.data.formats import (
    Annotation,
    read_300w,
    read_aflw68,
    read_mtfl,
    read_pseudo68,
    read_ytf68,
)
from tcnn.train.data.fusion import fuse_five
from tcnn.types import Box


def default_root() -> Path:
    """Where named datasets are read from when no root is given: ``$TCNN_DATA`` or
    ``../shared/data`` (read at each call, so setting ``$TCNN_DATA`` later takes effect)."""
    return Path(os.environ.get("TCNN_DATA") or "../shared/data")


_300W_TRAIN = ("lfpw/trainset", "helen/trainset", "afw")
_300W_COMMON = ("lfpw/testset", "helen/testset")
_300W_CHALLENGING = ("ibug",)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name: how to read it, its points, and its face-box protocol.

    Attributes:
        upsample: how many times dlib doubles the image when finding the faces.
        needs_root: the user must give ``--root`` (no default folder).
        normaliser: the protocol's normaliser (a key of the scheme's ``normalisers``);
            ``None``: the scheme's default.
        scoring: which points are scored, when not all of them (said with every result).
    """

    name: str
    points: int
    read: Callable[[Path], list[Annotation]]
    upsample: int
    needs_root: bool = False
    description: str = ""
    normaliser: str | None = None
    scoring: str = ""


DATASETS = {
    s.name: s
    for s in (
        DatasetSpec(
            "mtfl-train",
            5,
            lambda r: read_mtfl(r / "mtfl/train_landmarks5_bbox.txt"),
            2,
            description="MTFL training set, 10,000 faces (CUHK LFW + web)",
        ),
        DatasetSpec(
            "mtfl-aflw",
            5,
            lambda r: read_mtfl(r / "mtfl/test_aflw_landmarks5.txt"),
            2,
            description="MTFL AFLW test set, 2,995 faces",
        ),
        DatasetSpec(
            "ytf68-train",
            68,
            lambda r: read_ytf68(r / "ytf68/train_landmarks68.csv"),
            1,
            description="ytf68 training set, 3,531 faces",
        ),
        DatasetSpec(
            "mtfl-train-dlib68",
            68,
            lambda r: _pseudo68(r, "mtfl-train-dlib68"),
            2,
            description="MTFL training faces with dlib 68-point pseudo-labels (made on first use)",
        ),
        DatasetSpec(
            "mtfl-train-fused68",
            68,
            lambda r: _fused68(r),
            2,
            description="mtfl-train-dlib68 moved onto MTFL's human 5 points (label fusion)",
        ),
        DatasetSpec(
            "mtfl-train-mix68",
            68,
            lambda r: _pseudo68(r, "mtfl-train-mix68"),
            2,
            description="MTFL training faces, the mean of dlib's and face-api.js's 68 points",
        ),
        DatasetSpec(
            "mtfl-train-fused-mix68",
            68,
            lambda r: _fused68(r, "mtfl-train-mix68"),
            2,
            description="mtfl-train-mix68 moved onto MTFL's human 5 points (label fusion)",
        ),
        DatasetSpec(
            "utkface-mix68",
            68,
            lambda r: _pseudo68(r, "utkface-mix68"),
            1,
            description="UTKFace crop_part1, the mean of dlib's and face-api.js's 68 points",
        ),
        DatasetSpec(
            "mtfl-train-fused-mixstyled68",
            68,
            lambda r: _fused68(r, "mtfl-train-mixstyled68"),
            2,
            description="as mtfl-train-fused-mix68, face-api.js moved into dlib's style first",
        ),
        DatasetSpec(
            "utkface-mixstyled68",
            68,
            lambda r: _pseudo68(r, "utkface-mixstyled68"),
            1,
            description="as utkface-mix68, face-api.js moved into dlib's style first",
        ),
        DatasetSpec(
            "utkface-dlib68",
            68,
            lambda r: _pseudo68(r, "utkface-dlib68"),
            1,
            description="UTKFace crop_part1 with dlib 68-point pseudo-labels (made on first use)",
        ),
        DatasetSpec(
            "ytf68-train-hid68",
            68,
            lambda r: _relabelled(r, "ytf68-train-hid68"),
            1,
            description="ytf68-train's faces labelled by tcnn68hid-int8 (made on first use)",
        ),
        DatasetSpec(
            "mtfl-train-hid68",
            68,
            lambda r: _relabelled(r, "mtfl-train-hid68"),
            2,
            description="mtfl-train-fused68's faces labelled by tcnn68hid-int8",
        ),
        DatasetSpec(
            "utkface-hid68",
            68,
            lambda r: _relabelled(r, "utkface-hid68"),
            1,
            description="utkface-dlib68's faces labelled by tcnn68hid-int8",
        ),
        DatasetSpec(
            "ytf68-test",
            68,
            lambda r: read_ytf68(r / "ytf68/test_landmarks68.csv"),
            1,
            description="ytf68 test set, 770 faces",
        ),
        DatasetSpec(
            "aflw68",
            68,
            lambda r: read_aflw68(r / "aflw68/test_landmarks68.csv", r / "mtfl"),
            2,
            description="MTFL AFLW test faces with MERL-RAV's 68 points, 1,031 faces",
            normaliser="inter-pupil",
            scoring="visible and externally occluded points scored, self-occluded ones skipped",
        ),
        DatasetSpec(
            "aflw68-train",
            68,
            lambda r: aflw68_part(r, "train"),
            2,
            description="aflw68's training part (about half: AFLW image ids by AFLW68_SPLIT)",
            normaliser="inter-pupil",
            scoring="visible and externally occluded points scored, self-occluded ones skipped",
        ),
        DatasetSpec(
            "aflw68-test",
            68,
            lambda r: aflw68_part(r, "test"),
            2,
            description="aflw68's held-out part (the other AFLW image ids): every reported "
            "aflw68 figure of a model that learnt from aflw68-train",
            normaliser="inter-pupil",
            scoring="visible and externally occluded points scored, self-occluded ones skipped",
        ),
        DatasetSpec(
            "300w-train",
            68,
            lambda r: read_300w(r, _300W_TRAIN),
            1,
            True,
            "300-W training set (LFPW train, HELEN train, AFW), 3,148 faces",
        ),
        DatasetSpec(
            "300w-common",
            68,
            lambda r: read_300w(r, _300W_COMMON),
            1,
            True,
            "300-W common test set (LFPW test, HELEN test), 554 faces",
        ),
        DatasetSpec(
            "300w-challenging",
            68,
            lambda r: read_300w(r, _300W_CHALLENGING),
            1,
            True,
            "300-W challenging test set (iBUG), 135 faces",
        ),
        DatasetSpec(
            "300w-full",
            68,
            lambda r: read_300w(r, _300W_COMMON + _300W_CHALLENGING),
            1,
            True,
            "300-W full test set, 689 faces",
        ),
    )
}


#: The fixed split of aflw68 by AFLW image id (the ``imageNNNNN`` of the file name): a face is
#: in the held-out part ("test") when the SHA-256 of its id, read as an integer, is even, else
#: in the training part. Faces cut from one AFLW photo always land in the same part.
AFLW68_SPLIT = "sha256(AFLW image id) even: aflw68-test (held out), odd: aflw68-train"


def aflw68_part_of(path: str | Path) -> str:
    """``"test"`` or ``"train"``: the part of aflw68 a face's image belongs to (AFLW68_SPLIT).

    Raises:
        TcnnError: when the file name holds no AFLW image id (``imageNNNNN``).
    """
    found = re.search(r"image\d+", Path(path).name)
    if found is None:
        raise TcnnError(f"{path}: no AFLW image id (imageNNNNN) in the file name")
    digest = int(hashlib.sha256(found.group(0).encode()).hexdigest(), 16)
    return "test" if digest % 2 == 0 else "train"


def aflw68_part(root: Path, part: str) -> list[Annotation]:
    """The faces of aflw68 in ``part`` (``"train"`` or ``"test"``) by :data:`AFLW68_SPLIT`."""
    faces = read_aflw68(root / "aflw68/test_landmarks68.csv", root / "mtfl")
    return [a for a in faces if aflw68_part_of(a.path) == part]


def _pseudo68(root: Path, name: str) -> list[Annotation]:
    """The pseudo-labelled faces of ``name``: the cached file, made first if missing."""
    return read_pseudo68(pseudo.pseudo_dataset(name, root), root)


def _relabelled(root: Path, name: str) -> list[Annotation]:
    """The faces of ``name`` labelled by a shipped model (:mod:`tcnn.train.data.relabel`): the
    cached file, made first if missing from the base dataset's faces that have a box."""
    path = relabel.relabel_file(name)
    if not path.exists():
        base = relabel.RELABELLED[name]
        faces = [s for s in load_dataset(base, root) if s.box is not None]
        points = relabel.teacher_labels(
            [(s.path, s.box) for s in faces], desc=f"relabelling {base} ({relabel.TEACHER})"
        )
        what = f"{name}: {len(faces)} faces of {base}, labelled by {relabel.TEACHER}"
        relabel.write_labels(path, [s.path for s in faces], points, root, what)
    return read_pseudo68(path, root)


def _fused68(root: Path, name: str = "mtfl-train-dlib68") -> list[Annotation]:
    """MTFL training faces: the pseudo-labels of ``name`` moved onto the human 5 points
    (:func:`tcnn.train.data.fusion.fuse_five`), the human points corrected by the label rule
    first."""
    human = {a.path: a.landmarks for a in read_mtfl(root / "mtfl/train_landmarks5_bbox.txt")}
    out = []
    for a in _pseudo68(root, name):
        five = human[a.path] - pseudo.MTFL_SHIFT
        out.append(replace(a, landmarks=fuse_five(a.landmarks, five)))
    return out


def dataset_names(data: str) -> list[str]:
    """The datasets ``data`` names: one name, or several joined by ``+``."""
    names = [n.strip() for n in data.split("+")]
    for n in names:
        if n not in DATASETS:
            raise TcnnError(f"unknown dataset {n!r} (known: {', '.join(DATASETS)})")
    return names


def dataset_points(data: str) -> int:
    """The landmark count of ``data`` (every dataset of a ``+`` union must agree)."""
    points = {DATASETS[n].points for n in dataset_names(data)}
    if len(points) > 1:
        raise TcnnError(f"datasets {data!r} mix landmark schemes ({sorted(points)} points)")
    return points.pop()


@dataclass(frozen=True, eq=False)
class Sample:
    """An annotation with the face box a detector gave for it (``None`` when it was missed).

    ``flags`` and ``group`` are the annotation's (:class:`~tcnn.train.data.formats.Annotation`);
    ``source`` names the dataset it came from.
    """

    path: Path
    landmarks: np.ndarray
    box: Box | None
    score: float
    flags: np.ndarray | None = None
    group: str = ""
    source: str = ""


def load_dataset(
    name: str,
    root: str | Path | None = None,
    face_detector: str = "dlib",
    progress: bool = True,
    limit: int = 0,
) -> list[Sample]:
    """Read the dataset ``name`` and find each face's box with the face detector named
    ``face_detector`` (cached on disk).

    Args:
        name: a dataset, or several joined by ``+`` (``"ytf68-train+utkface-dlib68"``): read
            one after the other, each with its own boxes, concatenated in that order.
        limit: keep only the first ``limit`` faces of each dataset (0: all).
    """
    names = dataset_names(name)
    dataset_points(name)
    if len(names) > 1:
        return [s for n in names for s in load_dataset(n, root, face_detector, progress, limit)]
    spec = DATASETS[name]
    if root is None:
        if spec.needs_root:
            raise TcnnError(f"dataset {name!r} needs --root (the folder that holds it)")
        root = default_root()
    root = Path(root)
    if not root.is_dir():
        raise TcnnError(
            f"dataset {name!r}: data folder {root} not found; pass --root FOLDER, the folder "
            "that holds it (or set TCNN_DATA); see docs/datasets.md for where to get it"
        )
    annotations = spec.read(root)
    if limit:
        annotations = annotations[:limit]
    boxes = find_boxes(annotations, face_detector, spec.upsample, progress=progress)
    return [
        Sample(a.path, a.landmarks, b, s, a.flags, a.group, name)
        for a, (b, s) in zip(annotations, boxes)
    ]


def match_box(
    landmarks: np.ndarray, detections: Sequence[tuple[Box, float]]
) -> tuple[Box | None, float]:
    """The detection that holds the face: it contains the landmarks' centroid, nearest centre.

    The centroid is of the located points (``NaN`` points, without a location, are left out).
    Returns ``(None, nan)`` when no detection contains the centroid (a missed face).
    """
    cx, cy = np.nanmean(landmarks, axis=0)
    best: tuple[Box | None, float] = (None, float("nan"))
    best_d = np.inf
    for box, score in detections:
        if box.left <= cx <= box.right and box.top <= cy <= box.bottom:
            bx, by = box.center
            d = (bx - cx) ** 2 + (by - cy) ** 2
            if d < best_d:
                best, best_d = (box, score), d
    return best


_WORKER: dict[str, FaceDetector] = {}


def _detect_one(args: tuple[str, int, str]) -> list[tuple[list[float], float]]:
    face_detector, upsample, path = args
    key = f"{face_detector}:{upsample}"
    if key not in _WORKER:
        _WORKER[key] = make_detector(face_detector, upsample=upsample)
    dets = _WORKER[key](load_image(path))
    return [(list(b.as_tuple()), s) for b, s in dets]


def find_boxes(
    annotations: Sequence[Annotation],
    face_detector: str,
    upsample: int,
    progress: bool = True,
    workers: int | None = None,
) -> list[tuple[Box | None, float]]:
    """Run the face detector named ``face_detector`` on every image once and match a box to
    each annotation.

    Detections are cached per image list and detector settings, so a second run is instant.
    """
    paths = sorted({str(a.path) for a in annotations})
    digest = hashlib.sha1("\n".join(paths).encode()).hexdigest()[:16]
    tag = face_detector
    if face_detector == "retinaface-int8":  # its graph is made here: a new recipe, a new cache
        tag += "-" + hashlib.sha1(int8_weights()).hexdigest()[:8]
    cache = cache_dir() / f"boxes-{tag}-up{upsample}-{digest}.json"
    detections: dict[str, list[tuple[list[float], float]]]
    if cache.exists():
        detections = json.loads(cache.read_text())
    else:
        workers = workers or min(os.cpu_count() or 1, 4)
        jobs = [(face_detector, upsample, p) for p in paths]
        with ProcessPoolExecutor(workers) as pool:
            results = list(
                tqdm(
                    pool.map(_detect_one, jobs, chunksize=32),
                    total=len(jobs),
                    desc=f"finding faces ({face_detector})",
                    disable=not progress,
                    unit="img",
                )
            )
        detections = dict(zip(paths, results))
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text(cache, json.dumps(detections))
    out = []
    for a in annotations:
        dets = [(Box(*b), s) for b, s in detections[str(a.path)]]
        out.append(match_box(a.landmarks, dets))
    return out
