"""Readers for landmark annotation files: MTFL lists, iBUG ``.pts``, the ytf68 and aflw68 CSVs.

Every dataset reader returns :class:`Annotation` records with landmarks ``[K, 2]`` float32 in
continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)``, so its centre is ``i + 0.5``.
Each reader converts from its file's convention, stated in its docstring; predictions are
made and scored in the same coordinates, so every method compared is converted once, the
same way. A point without a location (aflw68's self-occluded points) is ``NaN``; metrics
skip such points (:func:`tcnn.metrics.nme`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcnn.errors import TcnnError
from tcnn.types import Box

#: Occlusion flags of aflw68 (MERL-RAV's classes): a point's location is known and scored
#: (``VISIBLE``), estimated by the annotator and scored (``OCCLUDED``: hair, hand, glasses), or
#: hidden by the face itself, with no location (``SELF_OCCLUDED``: ``NaN``, never scored).
VISIBLE, OCCLUDED, SELF_OCCLUDED = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Annotation:
    """One annotated face: image path, ``[K, 2]`` landmarks, and the dataset's box if any.

    Attributes:
        flags: ``[K]`` int8 occlusion flags (``VISIBLE``, ``OCCLUDED``, ``SELF_OCCLUDED``) when
            the dataset has them, else ``None``.
        group: the dataset's group of the face (aflw68: its pose group), else ``""``.
    """

    path: Path
    landmarks: np.ndarray
    box: Box | None = None
    flags: np.ndarray | None = None
    group: str = ""


def _numbers(fields: list[str], where: str) -> list[float]:
    try:
        return [float(v) for v in fields]
    except ValueError:
        raise TcnnError(f"{where}: expected numbers, got {' '.join(fields)!r}") from None


def read_mtfl(list_file: str | Path, root: str | Path | None = None) -> list[Annotation]:
    """Read an MTFL list: ``path x1 y1 ... x5 y5 [left top right bottom scale ...]`` per line.

    Lines starting with ``#`` are comments. When four box values follow the points they become
    the annotation's box.

    Convention (MTFL's MATLAB, 1-based): a training row with its ``scale`` column holds
    ``(CUHK 0-based coordinate + 1) * scale``, whose continuous position is
    ``value - 0.5 * scale``; a row without a scale (the AFLW test list) holds 1-based pixel
    positions of its 80x80 image: ``value - 0.5``. (For a 0-based predictor such as dlib, this
    is the usual "+1" to MTFL's convention.)
    """
    list_file = Path(list_file)
    root = Path(root) if root is not None else list_file.parent
    out = []
    for n, line in enumerate(_lines(list_file), 1):
        fields = line.split()
        where = f"{list_file}:{n}"
        if len(fields) < 11:
            raise TcnnError(
                f"{where}: expected a path and 10 coordinates, got {len(fields)} fields"
            )
        values = _numbers(fields[1:], where)
        shift = 0.5 * values[14] if len(values) >= 15 else 0.5
        pts = np.asarray(values[:10], np.float32).reshape(5, 2) - shift
        box = Box(*(v - shift for v in values[10:14])) if len(values) >= 14 else None
        out.append(Annotation(root / fields[0], pts, box))
    return out


def read_pts(path: str | Path) -> np.ndarray:
    """Read an iBUG ``.pts`` file (``version``, ``n_points``, ``{`` x y lines ``}``).

    Returns:
        ``[K, 2]`` float32 as written in the file (300-W files are 1-based pixel coordinates).
    """
    path = Path(path)
    lines = [ln.strip() for ln in _lines(path, comments=False)]
    try:
        header = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[:2])}
        count = int(header["n_points"])
        start = lines.index("{") + 1
        end = lines.index("}", start)
    except (ValueError, KeyError):
        raise TcnnError(f"{path}: not an iBUG .pts file (bad header or braces)") from None
    rows = [_numbers(ln.split(), str(path)) for ln in lines[start:end]]
    if len(rows) != count or any(len(r) != 2 for r in rows):
        raise TcnnError(f"{path}: header says {count} points, found {len(rows)} x,y rows")
    return np.asarray(rows, np.float32)


def read_ytf68(csv_file: str | Path, root: str | Path | None = None) -> list[Annotation]:
    """Read the ytf68 CSV: ``relative/path.jpg,x0,y0,...,x67,y67`` per line.

    Convention: the file's values are taken as 0-based pixel positions (as dlib's predictions
    are), so the continuous position is ``value + 0.5``.
    """
    return _read_csv68(Path(csv_file), root, 0.5)


#: First line of a CSV in the ytf68 layout that holds continuous pixel coordinates.
CONTINUOUS_HEADER = "# tcnn pseudo-labels: coordinates: continuous pixels (pixel i covers [i, i+1))"


def read_pseudo68(csv_file: str | Path, root: str | Path | None = None) -> list[Annotation]:
    """Read a pseudo-label CSV (:mod:`tcnn.train.data.pseudo`): the ytf68 layout, paths relative to
    ``root`` (default: the file's folder), values already in continuous pixel coordinates.

    Its first line must be :data:`CONTINUOUS_HEADER`, so a ytf68 file (0-based values) is
    never read as continuous by mistake.
    """
    csv_file = Path(csv_file)
    text = _lines(csv_file, comments=False)
    if not text or text[0] != CONTINUOUS_HEADER:
        raise TcnnError(f"{csv_file}: not a tcnn pseudo-label file (first line is not its header)")
    return _read_csv68(csv_file, root, 0.0)


def _read_csv68(csv_file: Path, root: str | Path | None, offset: float) -> list[Annotation]:
    root = Path(root) if root is not None else csv_file.parent
    out = []
    for n, line in enumerate(_lines(csv_file), 1):
        fields = line.split(",")
        where = f"{csv_file}:{n}"
        if len(fields) != 1 + 136:
            raise TcnnError(
                f"{where}: expected a path and 136 coordinates, got {len(fields)} fields"
            )
        pts = np.asarray(_numbers(fields[1:], where), np.float32).reshape(68, 2) + offset
        out.append(Annotation(root / fields[0], pts))
    return out


#: aflw68's pose groups (MERL-RAV's).
POSE_GROUPS = ("frontal", "lefthalf", "righthalf")


def read_aflw68(csv_file: str | Path, root: str | Path | None = None) -> list[Annotation]:
    """Read the aflw68 CSV: ``image,pose,residual,x0,y0,...,x67,y67,f0,...,f67`` per line.

    ``image`` is relative to ``root`` (default: the ``mtfl`` folder beside the CSV's folder);
    ``pose`` becomes the annotation's ``group`` and ``f0..f67`` its ``flags``. A self-occluded
    point (flag 2) has empty coordinates and is read as ``NaN``; every other point must have both.

    Convention: the values are continuous pixel coordinates of the 80x80 crop already (pixel
    ``i`` covers ``[i, i + 1)``), so they are read as they are.
    """
    csv_file = Path(csv_file)
    root = Path(root) if root is not None else csv_file.parent.parent / "mtfl"
    out = []
    for n, line in enumerate(_lines(csv_file), 1):
        fields = line.split(",")
        where = f"{csv_file}:{n}"
        if len(fields) != 3 + 136 + 68:
            raise TcnnError(
                f"{where}: expected image, pose, residual, 136 coordinates and 68 flags, "
                f"got {len(fields)} fields"
            )
        if fields[1] not in POSE_GROUPS:
            raise TcnnError(f"{where}: unknown pose group {fields[1]!r}")
        values = _numbers(fields[139:], where)
        if not set(values) <= {VISIBLE, OCCLUDED, SELF_OCCLUDED}:
            raise TcnnError(f"{where}: occlusion flags must be 0, 1 or 2")
        flags = np.asarray(values, np.int8)
        coords = fields[3:139]
        empty = np.array([v.strip() == "" for v in coords]).reshape(68, 2)
        hidden = flags == SELF_OCCLUDED
        if not (empty == hidden[:, None]).all():
            bad = int(np.flatnonzero((empty != hidden[:, None]).any(axis=1))[0])
            raise TcnnError(
                f"{where}: point {bad} has flag {flags[bad]} but "
                f"{'no' if empty[bad].any() else 'a'} location (only self-occluded points, "
                "flag 2, have none)"
            )
        xy = _numbers([v if v.strip() else "nan" for v in coords], where)
        pts = np.asarray(xy, np.float32).reshape(68, 2)
        if not np.isfinite(pts[~hidden]).all():
            raise TcnnError(f"{where}: a located point has a non-finite coordinate")
        out.append(Annotation(root / fields[0], pts, flags=flags, group=fields[1]))
    return out


def read_300w(root: str | Path, subsets: tuple[str, ...]) -> list[Annotation]:
    """Read 300-W faces from their usual folders under ``root``.

    Args:
        root: folder holding ``lfpw/``, ``helen/``, ``afw/`` and ``ibug/``.
        subsets: folders relative to root, e.g. ``("lfpw/testset", "helen/testset")``.

    Points are converted from the files' 1-based convention to continuous pixel coordinates
    (pixel ``i`` covers ``[i, i + 1)``): ``x - 0.5``.
    """
    root = Path(root)
    out = []
    for sub in subsets:
        folder = root / sub
        if not folder.is_dir():
            raise TcnnError(f"{folder}: no such folder (expected the 300-W layout under {root})")
        for pts_file in sorted(folder.glob("*.pts")):
            image = next(
                (
                    pts_file.with_suffix(e)
                    for e in (".jpg", ".png", ".jpeg")
                    if pts_file.with_suffix(e).exists()
                ),
                None,
            )
            if image is None:
                raise TcnnError(f"{pts_file}: no image beside it (.jpg or .png)")
            out.append(Annotation(image, read_pts(pts_file) - 0.5))
    if not out:
        raise TcnnError(f"{root}: no .pts files in {', '.join(subsets)}")
    return out


def _lines(path: Path, comments: bool = True) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TcnnError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TcnnError(f"{path}: unreadable ({exc})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not (comments and ln.startswith("#"))]
