from pathlib import Path

import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.train.data.datasets import DATASETS, match_box
from tcnn.train.data.formats import (
    OCCLUDED,
    SELF_OCCLUDED,
    VISIBLE,
    read_300w,
    read_aflw68,
    read_mtfl,
    read_pts,
    read_ytf68,
)
from tcnn.types import Box


def test_read_mtfl_with_and_without_boxes(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_text(
        "# comment\na/1.jpg 1 2 3 4 5 6 7 8 9 10 11 12 13 14 0.5 0\nb/2.jpg 1 2 3 4 5 6 7 8 9 10\n"
    )
    rows = read_mtfl(f)
    assert rows[0].path == tmp_path / "a/1.jpg"
    assert rows[0].landmarks.shape == (5, 2)
    # training rows: (0-based + 1) * scale -> continuous = value - scale / 2
    assert rows[0].landmarks[4].tolist() == [8.75, 9.75]
    assert rows[0].box == Box(10.75, 11.75, 12.75, 13.75)
    # test rows: 1-based pixel positions -> continuous = value - 0.5
    assert rows[1].landmarks[0].tolist() == [0.5, 1.5]
    assert rows[1].box is None


def test_read_mtfl_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("a.jpg 1 2 3\n")
    with pytest.raises(TcnnError, match=r"bad.txt:1: expected a path and 10"):
        read_mtfl(f)
    f.write_text("a.jpg 1 2 3 4 5 6 7 8 9 x\n")
    with pytest.raises(TcnnError, match="expected numbers"):
        read_mtfl(f)
    with pytest.raises(TcnnError, match="no such file"):
        read_mtfl(tmp_path / "missing.txt")


def _write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    path.write_text(f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n")


def test_read_pts_roundtrip(tmp_path: Path) -> None:
    pts = np.random.default_rng(0).uniform(0, 100, (68, 2)).round(3)
    _write_pts(tmp_path / "a.pts", pts)
    assert np.allclose(read_pts(tmp_path / "a.pts"), pts, atol=1e-3)


def test_read_pts_errors(tmp_path: Path) -> None:
    f = tmp_path / "a.pts"
    f.write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n")
    with pytest.raises(TcnnError, match="header says 3 points, found 2"):
        read_pts(f)
    f.write_text("hello\n")
    with pytest.raises(TcnnError, match=r"not an iBUG \.pts file"):
        read_pts(f)


def test_read_300w_layout(tmp_path: Path) -> None:
    pts = np.full((68, 2), 10.5)
    for sub in ("lfpw/testset", "helen/testset"):
        (tmp_path / sub).mkdir(parents=True)
        _write_pts(tmp_path / sub / "img.pts", pts)
        (tmp_path / sub / "img.jpg").write_bytes(b"")
    rows = read_300w(tmp_path, ("lfpw/testset", "helen/testset"))
    assert len(rows) == 2
    assert np.allclose(rows[0].landmarks, 10.0)  # 1-based -> continuous pixel coordinates
    with pytest.raises(TcnnError, match="ibug: no such folder"):
        read_300w(tmp_path, ("ibug",))


def test_read_ytf68(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    values = ",".join(str(v) for v in range(136))
    f.write_text(f"# header\ntrain/a.jpg,{values}\n")
    (row,) = read_ytf68(f)
    assert row.path == tmp_path / "train/a.jpg"
    assert row.landmarks[67].tolist() == [134.5, 135.5]  # 0-based -> continuous
    f.write_text("train/a.jpg,1,2\n")
    with pytest.raises(TcnnError, match="expected a path and 136"):
        read_ytf68(f)


def _aflw68_row(pts: np.ndarray, flags: list[int], pose: str = "frontal") -> str:
    coords = ["" if f == SELF_OCCLUDED else f"{v:.3f}" for p, f in zip(pts, flags) for v in p]
    return ",".join(["AFLW/0001-a.jpg", pose, "0.02", *coords, *(str(f) for f in flags)])


def test_read_aflw68_hand_made(tmp_path: Path) -> None:
    (tmp_path / "aflw68").mkdir()
    f = tmp_path / "aflw68" / "test_landmarks68.csv"
    pts = np.arange(136, dtype=np.float32).reshape(68, 2) / 4
    flags = [VISIBLE] * 68
    flags[3], flags[60] = OCCLUDED, SELF_OCCLUDED
    f.write_text("# comment\n" + _aflw68_row(pts, flags, "lefthalf") + "\n")
    (row,) = read_aflw68(f)
    assert row.path == tmp_path / "mtfl" / "AFLW/0001-a.jpg"  # images beside, under mtfl/
    assert row.group == "lefthalf"
    assert row.flags is not None and row.flags.tolist() == flags
    assert np.isnan(row.landmarks[60]).all()  # self-occluded: no location
    keep = np.arange(68) != 60
    assert np.allclose(row.landmarks[keep], pts[keep])  # continuous pixels as written
    assert np.allclose(row.landmarks[3], pts[3])  # externally occluded: located


def test_read_aflw68_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    pts = np.ones((68, 2))
    flags = [VISIBLE] * 68
    f.write_text(_aflw68_row(pts, flags).replace(",1.000,", ",,", 1) + "\n")
    with pytest.raises(TcnnError, match=r"l.csv:1: point 0 has flag 0 but no location"):
        read_aflw68(f)
    row = _aflw68_row(pts, flags).split(",")
    row[-1] = "2"  # self-occluded, yet its coordinates are given
    f.write_text(",".join(row) + "\n")
    with pytest.raises(TcnnError, match="point 67 has flag 2 but a location"):
        read_aflw68(f)
    f.write_text(_aflw68_row(pts, flags, "profile") + "\n")
    with pytest.raises(TcnnError, match="unknown pose group 'profile'"):
        read_aflw68(f)
    f.write_text("AFLW/a.jpg,frontal,0.1,1,2\n")
    with pytest.raises(TcnnError, match="expected image, pose, residual"):
        read_aflw68(f)
    row[-1] = "3"
    f.write_text(",".join(row) + "\n")
    with pytest.raises(TcnnError, match="flags must be 0, 1 or 2"):
        read_aflw68(f)


def test_read_aflw68_shared(shared_root: Path) -> None:
    rows = DATASETS["aflw68"].read(shared_root)
    assert len(rows) == 1031
    assert len({r.path for r in rows}) == 1031 and rows[0].path.is_file()
    flags = np.stack([r.flags for r in rows if r.flags is not None])
    pts = np.stack([r.landmarks for r in rows])
    assert flags.shape == (1031, 68)
    assert (np.isnan(pts).any(axis=-1) == (flags == SELF_OCCLUDED)).all()
    assert (flags == SELF_OCCLUDED).sum() == 474 and (flags == OCCLUDED).sum() == 6793
    groups = [r.group for r in rows]
    assert (groups.count("frontal"), groups.count("lefthalf"), groups.count("righthalf")) == (
        1007,
        14,
        10,
    )
    # the located points lie on the 80x80 crop or a little outside (a jaw cut off by the crop)
    assert np.nanmin(pts) > -25 and np.nanmax(pts) < 100


def test_match_box_ignores_points_without_location() -> None:
    pts = np.array([[10.0, 10.0], [20.0, 20.0], [np.nan, np.nan]])
    box = Box(12, 12, 18, 18)
    assert match_box(pts, [(box, 0.9)]) == (box, 0.9)
