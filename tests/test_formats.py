from pathlib import Path

import numpy as np
import pytest

from tcnn.data.formats import read_300w, read_mtfl, read_pts, read_ytf68
from tcnn.errors import TcnnError
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
