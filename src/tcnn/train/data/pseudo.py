"""68-point pseudo-labelled datasets: the teacher's answers filtered, cached and written.

The teacher (:mod:`tcnn.train.data.teacher`: dlib's 68-point predictor, direct and mirrored)
labels every face of a dataset; the filters (:mod:`tcnn.train.data.filters`: flip
disagreement, and error against the human points where there are any) choose the faces kept.
The two-teacher datasets (:data:`MIXED`) average dlib's labels with face-api.js's
(:mod:`tcnn.train.data.mixed`) and keep dlib's faces.

Files: ``<cache>/pseudo-<dataset>-v1.csv``, the ytf68 layout (``path,x0,y0,...,x67,y67``, paths
relative to the data root) in continuous pixel coordinates, kept faces only, and beside it
``pseudo-<dataset>-v1.stats.csv`` with every face's measurements and whether it was kept, and
``pseudo-<dataset>-v1.raw.npz`` with the teacher's answers (so that the filters can change
without a new run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from tcnn.errors import TcnnError
from tcnn.files import atomic_path, write_text
from tcnn.train.data.filters import Result, Thresholds, measure, summary
from tcnn.train.data.formats import CONTINUOUS_HEADER
from tcnn.train.data.mixed import TWO_TEACHERS, mix, second_teacher
from tcnn.train.data.teacher import Label, Source, label_source
from tcnn.types import Box

#: MTFL's training labels sit this many px right of and below the image features (the
#: label-convention rule's measurement, ``label_shift`` of ``configs/vanilla5.toml``).
MTFL_SHIFT = -0.3267
#: Version of the labelling recipe in the cache file names: change it when the recipe changes.
VERSION = 1


def write_result(result: Result, labels_csv: Path, root: Path) -> None:
    """The kept faces' labels (ytf68 layout, continuous) and every face's stats beside it."""
    rows = [CONTINUOUS_HEADER, f"# {summary(result)}"]
    stats = ["path,box_source,flip,human,human_direct,kept"]
    for lab, (path, _), flip, human, direct, kept in zip(
        result.labels,
        result.source.items,
        result.flip,
        result.human,
        result.human_direct,
        result.kept,
    ):
        rel = os.path.relpath(path, root)
        stats.append(f"{rel},{lab.box_source},{flip:.5f},{human:.5f},{direct:.5f},{int(kept)}")
        pts = lab.points
        if kept and pts is not None:
            rows.append(rel + "," + ",".join(f"{v:.3f}" for v in pts.reshape(-1)))
    labels_csv.parent.mkdir(parents=True, exist_ok=True)
    write_text(labels_csv.with_suffix(".stats.csv"), "\n".join(stats) + "\n")
    write_text(labels_csv, "\n".join(rows) + "\n")


def save_raw(path: Path, labels: list[Label], seconds: float) -> None:
    """Every face's teacher answers, so that the filters can change without a new run."""
    nan = np.full((68, 2), np.nan, np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A file object: given a path, numpy would add ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            direct=np.stack([nan if lab.direct is None else lab.direct for lab in labels]),
            flipped=np.stack([nan if lab.flipped is None else lab.flipped for lab in labels]),
            box=np.array([lab.box.as_tuple() if lab.box else (np.nan,) * 4 for lab in labels]),
            box_source=np.array([lab.box_source for lab in labels]),
            seconds=np.float64(seconds),
        )


def load_raw(path: Path, count: int) -> tuple[list[Label], float]:
    """The answers :func:`save_raw` wrote (``count`` faces expected)."""
    with np.load(path) as z:
        if len(z["direct"]) != count:
            raise TcnnError(f"{path}: {len(z['direct'])} faces, the dataset has {count}; delete it")
        labels = [
            Label(d, f, Box(*b) if src != "none" else None, str(src))
            if src != "none"
            else Label(None, None, None, "none")
            for d, f, b, src in zip(z["direct"], z["flipped"], z["box"], z["box_source"])
        ]
        return labels, float(z["seconds"])


def cached_answers(
    raw: Path, count: int, run: Callable[[], list[Label]]
) -> tuple[list[Label], float]:
    """A teacher's answers from ``raw`` (:func:`load_raw`), or ``run()`` timed and saved there."""
    if raw.exists():
        return load_raw(raw, count)
    start = time.perf_counter()
    labels = run()
    seconds = time.perf_counter() - start
    save_raw(raw, labels, seconds)
    return labels, seconds


def cache_file(name: str) -> Path:
    """The pseudo-label CSV of dataset ``name`` in the data cache."""
    from tcnn.files import cache_dir

    return cache_dir() / f"pseudo-{name}-v{VERSION}.csv"


def make_pseudo(
    name: str,
    root: Path,
    thresholds: Thresholds | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Result:
    """Pseudo-label dataset ``name`` (see :data:`SOURCES`) and write its cached CSV.

    The teacher's answers are cached too (``.raw.npz``): with them, only the filters run.
    ``thresholds``: the filters, :class:`Thresholds`' defaults when ``None``.
    """
    try:
        make_source, shift = SOURCES[name]
    except KeyError:
        raise TcnnError(
            f"no pseudo-labelled dataset {name!r} (known: {', '.join(SOURCES)})"
        ) from None
    source = make_source(root)
    path = cache_file(name)
    labels, seconds = cached_answers(
        path.with_suffix(".raw.npz"),
        len(source.items),
        lambda: label_source(source, progress, workers),
    )
    result = measure(source, labels, thresholds or Thresholds(), shift, seconds)
    write_result(result, path, root)
    return result


def make_mixed(name: str, root: Path, progress: bool = True) -> Result:
    """Pseudo-label ``name`` (a key of :data:`MIXED`) with both teachers and write its CSV.

    The label of a face is the mean of dlib's label (:func:`make_pseudo` of the base dataset)
    and face-api.js's flip-averaged answer on the same box; the faces kept are exactly dlib's,
    so that a run on either file holds out the same faces. The ``styled`` datasets first move
    face-api.js's points into dlib's style: by each point's mean offset from dlib's, in eye
    distances, over the dataset's faces (training faces only).
    """
    if name not in MIXED:
        raise TcnnError(f"no two-teacher dataset {name!r} (known: {', '.join(MIXED)})")
    base, styled = MIXED[name]
    dlib = make_pseudo(base, root, progress=progress)
    raw = cache_file(base.removesuffix("-dlib68") + "-mix68").with_suffix(".faceapi.raw.npz")
    second, seconds = cached_answers(
        raw, len(dlib.labels), lambda: second_teacher(dlib.source, dlib.labels, progress)
    )
    mixed = mix(dlib.labels, second, styled)
    shift = SOURCES[base][1]
    teachers = TWO_TEACHERS + (" (face-api.js moved into dlib's style)" if styled else "")
    result = measure(dlib.source, mixed, dlib.thresholds, shift, dlib.seconds + seconds)
    result = replace(result, kept=dlib.kept, teachers=teachers)
    write_result(result, cache_file(name), root)
    return result


def pseudo_dataset(name: str, root: Path) -> Path:
    """The cached pseudo-label CSV of ``name``, made first (with a progress bar) if missing."""
    path = cache_file(name)
    if not path.exists():
        made = make_mixed(name, root) if name in MIXED else make_pseudo(name, root)
        print(summary(made))
    return path


def utkface_source(root: Path) -> Source:
    """UTKFace's 200x200 crops (``utkface/crop_part1``), upscaled 2x."""
    folder = root / "utkface" / "crop_part1"
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise TcnnError(f"{folder}: no .jpg files (expected UTKFace's crop_part1)")
    return Source("utkface", 2, [(f, None) for f in files])


def mtfl_source(root: Path) -> Source:
    """MTFL's 10,000 training faces (80x80) with their 5 human points, upscaled 4x."""
    from tcnn.train.data.formats import read_mtfl

    anns = read_mtfl(root / "mtfl" / "train_landmarks5_bbox.txt")
    return Source("mtfl-train", 4, [(a.path, a.landmarks) for a in anns])


#: The pseudo-labelled datasets: how to list their faces, and their human labels' offset.
SOURCES: dict[str, tuple[Callable[[Path], Source], float]] = {
    "mtfl-train-dlib68": (mtfl_source, MTFL_SHIFT),
    "utkface-dlib68": (utkface_source, 0.0),
}
#: The two-teacher datasets (:func:`make_mixed`).
MIXED: dict[str, tuple[str, bool]] = {
    "mtfl-train-mix68": ("mtfl-train-dlib68", False),
    "utkface-mix68": ("utkface-dlib68", False),
    "mtfl-train-mixstyled68": ("mtfl-train-dlib68", True),
    "utkface-mixstyled68": ("utkface-dlib68", True),
}
