"""68-point pseudo-labels from a teacher (dlib's shape predictor), filtered by flip consistency.

The teacher is dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat`` from
``face-recognition-models``, trained on iBUG 300-W) on a dlib HOG face box. dlib places points
on integer pixel indices, so each image is first upscaled ``factor`` times (bilinear) and a
point ``p`` of the upscaled image maps back to the continuous position ``(p + 0.5) / factor``.

Each face is labelled twice: on the image and on its mirror (the mirrored box; the points
un-mirrored with the 68-point flip permutation of :mod:`tcnn.schemes`). Their disagreement, per
face the mean point distance over the eye distance, flags faces the teacher is unsure of; the
label is the mean of the two answers. On MTFL the teacher's 5 points are also compared with the
human ones.

Files: ``<cache>/pseudo-<dataset>-v1.csv``, the ytf68 layout (``path,x0,y0,...,x67,y67``, paths
relative to the data root) in continuous pixel coordinates, kept faces only, and beside it
``pseudo-<dataset>-v1.stats.csv`` with every face's measurements and whether it was kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from tcnn.detect import RETINA_TO_HOG, _import_dlib, dlib_models_dir, make_detector
from tcnn.errors import TcnnError
from tcnn.files import atomic_path, write_text
from tcnn.imaging import load_image
from tcnn.schemes import SIXTY_EIGHT, to_five
from tcnn.train.data.formats import CONTINUOUS_HEADER
from tcnn.types import Box

#: MTFL's training labels sit this many px right of and below the image features (the
#: label-convention rule's measurement, ``label_shift`` of ``configs/vanilla5.toml``).
MTFL_SHIFT = -0.3267
#: Version of the labelling recipe in the cache file names: change it when the recipe changes.
VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """The filters a face must pass to be kept.

    Attributes:
        flip: most flip disagreement (mean point distance between the direct and the
            un-mirrored flipped answer, over the eye distance).
        flip_retina: most flip disagreement of a face whose box came from RetinaFace (HOG
            missed it): such faces are harder, and more of them are wrong at the same
            disagreement (on MTFL, 9% of those with flip <= 0.05 are over 0.10 against the human
            points, 2% at flip <= 0.03, against 1.8% of HOG-box faces at flip <= 0.05).
        human: most mean 5-point error against human labels (over their eye distance), when
            the dataset has them.
    """

    flip: float = 0.05
    flip_retina: float = 0.03
    human: float = 0.10


@dataclass(frozen=True)
class Source:
    """A dataset to pseudo-label.

    Attributes:
        factor: upscaling before the teacher runs (dlib gives integer pixel positions).
        items: ``(image path, human 5 points [5, 2] or None)`` per face; with human points
            the face box is the detection that holds them, else the one nearest the centre.
    """

    name: str
    factor: int
    items: list[tuple[Path, np.ndarray | None]]


@dataclass(frozen=True)
class Label:
    """The teacher's answer for one face (continuous pixels of the original image).

    Attributes:
        direct: ``[68, 2]`` on the image.
        flipped: ``[68, 2]`` on the mirrored image, un-mirrored.
        box: the face box given to the teacher, original image pixels.
        box_source: ``"hog"``, ``"retinaface"`` (HOG missed; RetinaFace's box mapped onto
            HOG's convention) or ``"none"`` (no face found: no points).
    """

    direct: np.ndarray | None
    flipped: np.ndarray | None
    box: Box | None
    box_source: str

    @property
    def points(self) -> np.ndarray | None:
        """The label: the mean of the direct and un-mirrored flipped answers, ``[68, 2]``."""
        if self.direct is None or self.flipped is None:
            return None
        return ((self.direct + self.flipped) / 2).astype(np.float32)


def eye_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (means of 36-41 and 42-47): ``[..., 68, 2] -> [...]``."""
    five = to_five(points68)
    return np.linalg.norm(five[..., 0, :] - five[..., 1, :], axis=-1)


def flip_disagreement(direct: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Per face mean point distance over the eye distance: ``[N, 68, 2]`` twice -> ``[N]``."""
    d = np.linalg.norm(direct - flipped, axis=-1).mean(-1)
    return d / np.maximum(eye_distance(direct), 1e-6)


def human_error(points68: np.ndarray, human5: np.ndarray) -> np.ndarray:
    """Mean 5-point error against human points over their eye distance: -> ``[N]``.

    Args:
        points68: ``[N, 68, 2]`` the teacher's points (reduced with :func:`tcnn.schemes.to_five`).
        human5: ``[N, 5, 2]`` the human points, same pixels and convention.
    """
    err = np.linalg.norm(to_five(points68) - human5, axis=-1).mean(-1)
    return err / np.maximum(np.linalg.norm(human5[:, 0] - human5[:, 1], axis=-1), 1e-6)


def unmirror(points: np.ndarray, width: float) -> np.ndarray:
    """Points found on an image mirrored left-right, back on the image: ``[68, 2]``.

    Continuous coordinates: ``x -> width - x``, then the flip permutation restores the order.
    """
    out = np.asarray(points, np.float64).copy()
    out[:, 0] = width - out[:, 0]
    return out[SIXTY_EIGHT.flip_permutation()]


def mirror_box(box: Box, width: float) -> Box:
    """``box`` on the image mirrored left-right (``width`` wide), continuous pixels."""
    return Box(width - box.right, box.top, width - box.left, box.bottom)


def pick_box(
    detections: Sequence[Box], size: tuple[int, int], hint: np.ndarray | None
) -> Box | None:
    """The detection that holds the face: with ``hint`` (points ``[K, 2]``) the one holding
    their centroid, nearest centre; else the largest that holds the image centre, else the
    largest. ``size`` is ``(width, height)``."""
    if not detections:
        return None
    if hint is not None:
        cx, cy = hint.mean(axis=0)
    else:
        cx, cy = size[0] / 2, size[1] / 2
    inside = [b for b in detections if b.left <= cx <= b.right and b.top <= cy <= b.bottom]
    if hint is not None:
        if not inside:
            return None
        return min(inside, key=lambda b: (b.center[0] - cx) ** 2 + (b.center[1] - cy) ** 2)
    return max(inside or list(detections), key=lambda b: b.width * b.height)


class Teacher:
    """dlib's 68-point shape predictor on dlib HOG boxes, direct and mirrored.

    Args:
        factor: upscaling (bilinear) before HOG and the predictor run.
    """

    def __init__(self, factor: int) -> None:
        dlib = _import_dlib()
        self.dlib = dlib
        self.factor = factor
        self.hog = dlib.get_frontal_face_detector()
        path = os.path.join(dlib_models_dir(), "shape_predictor_68_face_landmarks.dat")
        self.predictor = dlib.shape_predictor(path)
        self._retina: Any = None

    def _shape(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The predictor's 68 integer pixel positions on ``image`` for ``box`` (its pixels)."""
        rect = self.dlib.rectangle(
            round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1
        )
        shape = self.predictor(image, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)

    def find_box(self, rgb: np.ndarray, big: np.ndarray, hint: np.ndarray | None) -> Label:
        """The face box in the original image's pixels, with its source (no points yet)."""
        f = self.factor
        size = (rgb.shape[1], rgb.shape[0])
        rects = self.hog(big, 0)
        hog = [
            Box(r.left() / f, r.top() / f, (r.right() + 1) / f, (r.bottom() + 1) / f) for r in rects
        ]
        box = pick_box(hog, size, hint)
        if box is not None:
            return Label(None, None, box, "hog")
        if self._retina is None:
            self._retina = make_detector("retinaface")
        retina = [RETINA_TO_HOG(b) for b, _ in self._retina(rgb)]
        box = pick_box(retina, size, hint)
        return Label(None, None, box, "retinaface" if box is not None else "none")

    def __call__(self, rgb: np.ndarray, hint: np.ndarray | None = None) -> Label:
        """Label the face of ``rgb`` (``[H, W, 3]`` uint8); ``hint``: its known points."""
        f = self.factor
        h, w = rgb.shape[:2]
        big = np.asarray(Image.fromarray(rgb).resize((w * f, h * f), Image.Resampling.BILINEAR))
        found = self.find_box(rgb, big, hint)
        if found.box is None:
            return found
        b = found.box
        big_box = Box(b.left * f, b.top * f, b.right * f, b.bottom * f)
        direct = (self._shape(big, big_box) + 0.5) / f
        mirrored = np.ascontiguousarray(big[:, ::-1])
        wb = w * f
        flipped = unmirror(self._shape(mirrored, mirror_box(big_box, wb)) + 0.5, wb) / f
        return Label(direct.astype(np.float32), flipped.astype(np.float32), b, found.box_source)


_TEACHERS: dict[int, Teacher] = {}


def _label_one(args: tuple[int, str, np.ndarray | None]) -> Label:
    factor, path, hint = args
    if factor not in _TEACHERS:
        _TEACHERS[factor] = Teacher(factor)
    return _TEACHERS[factor](load_image(path), hint)


def label_source(source: Source, progress: bool = True, workers: int | None = None) -> list[Label]:
    """Run the teacher on every face of ``source`` (in ``workers`` processes; 1: this one)."""
    workers = workers or min(os.cpu_count() or 1, 4)
    jobs = [(source.factor, str(p), h) for p, h in source.items]
    bar = dict(
        total=len(jobs),
        desc=f"pseudo-labelling {source.name} (dlib 68)",
        disable=not progress,
        unit="face",
    )
    if workers == 1:
        return [_label_one(j) for j in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(_label_one, jobs, chunksize=16), **bar))


@dataclass(frozen=True)
class Result:
    """Labels with their measurements: every face, and which were kept.

    Attributes:
        flip: ``[N]`` flip disagreement (nan where no face was found).
        human: ``[N]`` 5-point error of the label against the human points (nan without).
        human_direct: ``[N]`` the same for the direct answer alone.
        kept: ``[N]`` bool.
    """

    source: Source
    labels: list[Label]
    flip: np.ndarray
    human: np.ndarray
    human_direct: np.ndarray
    kept: np.ndarray
    thresholds: Thresholds
    seconds: float
    teachers: str = "teacher dlib shape_predictor_68_face_landmarks"


def measure(
    source: Source,
    labels: list[Label],
    thresholds: Thresholds,
    human_shift: float = 0.0,
    seconds: float = 0.0,
) -> Result:
    """Flip disagreement and human agreement per face, and the faces the filters keep.

    Args:
        human_shift: the human labels' offset (the label-convention rule): they sit
            ``human_shift`` px right of and below the image features, so ``human - human_shift``
            is compared with the teacher.
    """
    n = len(labels)
    flip = np.full(n, np.nan)
    human = np.full(n, np.nan)
    human_direct = np.full(n, np.nan)
    for i, (lab, (_, hint)) in enumerate(zip(labels, source.items)):
        if lab.direct is None or lab.flipped is None:
            continue
        flip[i] = flip_disagreement(lab.direct[None], lab.flipped[None])[0]
        if hint is not None:
            pts = lab.points
            assert pts is not None
            ref = (hint - human_shift)[None]
            human[i] = human_error(pts[None], ref)[0]
            human_direct[i] = human_error(lab.direct[None], ref)[0]
    retina = np.array([lab.box_source == "retinaface" for lab in labels], bool)
    limit = np.where(retina, min(thresholds.flip, thresholds.flip_retina), thresholds.flip)
    with np.errstate(invalid="ignore"):
        kept = np.isfinite(flip) & (flip <= limit)
        kept &= ~(human > thresholds.human)
    return Result(source, labels, flip, human, human_direct, kept, thresholds, seconds)


def write_result(result: Result, labels_csv: Path, root: Path) -> None:
    """The kept faces' labels (ytf68 layout, continuous) and every face's stats beside it."""
    rows = [CONTINUOUS_HEADER, f"# {_summary(result)}"]
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


def _summary(result: Result) -> str:
    src = [lab.box_source for lab in result.labels]
    t = result.thresholds
    return (
        f"{result.source.name}: {int(result.kept.sum())} of {len(src)} faces kept "
        f"(boxes: {src.count('hog')} hog, {src.count('retinaface')} retinaface, "
        f"{src.count('none')} none; filters flip <= {t.flip} (retinaface boxes "
        f"{min(t.flip, t.flip_retina)}), human <= {t.human}); "
        f"{result.teachers} on x{result.source.factor} bilinear "
        f"upscale, label = mean of direct and un-mirrored flipped; {result.seconds:.0f} s"
    )


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
    thresholds: Thresholds = Thresholds(),
    progress: bool = True,
    workers: int | None = None,
) -> Result:
    """Pseudo-label dataset ``name`` (see :data:`SOURCES`) and write its cached CSV.

    The teacher's answers are cached too (``.raw.npz``): with them, only the filters run.
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
    result = measure(source, labels, thresholds, shift, seconds)
    write_result(result, path, root)
    return result


def second_teacher(
    source: Source, labels: list[Label], progress: bool = True, batch: int = 64
) -> list[Label]:
    """face-api.js's answers (:mod:`tcnn.train.data.faceapi`), direct and mirrored, on the boxes of
    ``labels`` (dlib's); faces without a box stay unlabelled."""
    from tcnn.train.data.faceapi import FaceApi68, place

    net = FaceApi68()
    out = [Label(None, None, lab.box, lab.box_source) for lab in labels]
    todo = [i for i, lab in enumerate(labels) if lab.box is not None]
    bar = tqdm(
        total=len(todo),
        desc=f"pseudo-labelling {source.name} (face-api 68)",
        disable=not progress,
        unit="face",
    )
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        images = [load_image(source.items[i][0]) for i in chunk]
        boxes = [b for i in chunk if (b := labels[i].box) is not None]
        direct = place(net, images, boxes)
        mirrored = [np.ascontiguousarray(img[:, ::-1]) for img in images]
        flipped = place(
            net, mirrored, [mirror_box(b, img.shape[1]) for img, b in zip(images, boxes)]
        )
        for k, i in enumerate(chunk):
            back = unmirror(flipped[k], images[k].shape[1])
            out[i] = Label(
                direct[k].astype(np.float32),
                back.astype(np.float32),
                boxes[k],
                labels[i].box_source,
            )
        bar.update(len(chunk))
    bar.close()
    return out


def _answers(label: Label) -> tuple[np.ndarray, np.ndarray] | None:
    """A label's direct and flipped answers, or ``None`` without them."""
    if label.direct is None or label.flipped is None:
        return None
    return label.direct, label.flipped


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
    pairs = {
        i: (pa, pb)
        for i, (a, b) in enumerate(zip(dlib.labels, second))
        if (pa := _answers(a)) and (pb := _answers(b))
    }
    eye = {i: float(eye_distance((pa[0] + pa[1]) / 2)) for i, (pa, _) in pairs.items()}
    style = np.zeros((68, 2))
    if styled and pairs:
        style = np.mean(
            [(pb[0] + pb[1] - pa[0] - pa[1]) / (2 * eye[i]) for i, (pa, pb) in pairs.items()],
            axis=0,
        )
    mixed = list(dlib.labels)
    for i, ((ad, af), (bd, bf)) in pairs.items():
        move = style * eye[i]
        mixed[i] = Label(
            ((ad + bd - move) / 2).astype(np.float32),
            ((af + bf - move) / 2).astype(np.float32),
            dlib.labels[i].box,
            dlib.labels[i].box_source,
        )
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
        print(_summary(made))
    return path


def describe(result: Result) -> list[str]:
    """Lines that report ``result``: the summary and the filters' distributions."""
    lines = [_summary(result)]
    q = (50, 90, 95, 99)
    for what, values in (
        ("flip", result.flip),
        ("human (label)", result.human),
        ("human (direct)", result.human_direct),
    ):
        v = values[np.isfinite(values)]
        if len(v):
            pct = ", ".join(f"p{p} {x:.4f}" for p, x in zip(q, np.percentile(v, q)))
            lines.append(f"  {what}: {len(v)} faces, mean {v.mean():.4f}; {pct}")
    kept = result.human[result.kept]
    if np.isfinite(kept).any():
        lines.append(f"  human (label), kept faces: mean {np.nanmean(kept):.4f}")
    for what, values, limit in (
        ("flip", result.flip, result.thresholds.flip),
        ("human", result.human, result.thresholds.human),
    ):
        with np.errstate(invalid="ignore"):
            over = int((values > limit).sum())
        if np.isfinite(values).any():
            lines.append(f"  over the {what} threshold {limit}: {over}")
    return lines


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
TWO_TEACHERS = (
    "teachers dlib shape_predictor_68_face_landmarks and face-api.js face_landmark_68 "
    "(tcnn.train.data.faceapi, on the original image; the two labels averaged, dlib's faces "
    "kept), dlib"
)
