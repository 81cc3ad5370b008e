"""Pseudo-labels from dlib's 68-point predictor: mirroring, filters, files, '+' unions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.data import filters, pseudo, teacher
from tcnn.train.data.formats import CONTINUOUS_HEADER, read_mtfl, read_pseudo68


def test_unmirror_restores_points_and_pixel_centres() -> None:
    rng = np.random.default_rng(0)
    width = 37.0
    points = rng.integers(0, 4 * 37, (68, 2)) / 4  # quarter pixels: exact in floats
    # what a teacher finds on the mirrored image: x -> width - x, left and right swapped
    mirrored = points.copy()
    mirrored[:, 0] = width - mirrored[:, 0]
    mirrored = mirrored[SIXTY_EIGHT.flip_permutation()]
    np.testing.assert_array_equal(teacher.unmirror(mirrored, width), points)
    # pixel index i of the mirror is pixel width-1-i of the image: centres map exactly
    i = 5
    centre = np.zeros((68, 2))
    centre[:, 0] = (width - 1 - i) + 0.5
    assert teacher.unmirror(centre, width)[0, 0] == i + 0.5


def test_flip_disagreement_and_human_error_by_hand() -> None:
    a = np.zeros((68, 2))
    a[36:42] = (10.0, 20.0)
    a[42:48] = (30.0, 20.0)  # eye distance 20
    b = a + np.array([1.0, 0.0])
    assert filters.flip_disagreement(a[None], b[None])[0] == pytest.approx(1 / 20)
    human = np.array([[10, 20], [30, 20], [0, 0], [0, 0], [0, 0]], float)
    human[2:] = 2.0, 0.0  # nose and mouth corners 2 px off (points 30, 48, 54 are 0)
    assert filters.human_error(a[None], human[None])[0] == pytest.approx((3 * 2 / 5) / 20)


def test_pick_box_prefers_the_box_holding_the_points() -> None:
    from tcnn.types import Box

    small, big = Box(0, 0, 10, 10), Box(20, 20, 60, 60)
    hint = np.array([[4.0, 4.0], [6.0, 6.0]])
    assert teacher.pick_box([big, small], (80, 80), hint) == small
    assert teacher.pick_box([big], (80, 80), hint) is None
    assert teacher.pick_box([small, big], (80, 80), None) == big
    # A point without a location (a self-occluded human label, NaN) is left out of the hint;
    # a hint with no located point is no hint.
    occluded = np.array([[4.0, 4.0], [np.nan, np.nan], [6.0, 6.0]])
    assert teacher.pick_box([big, small], (80, 80), occluded) == small
    assert teacher.pick_box([small, big], (80, 80), np.full((3, 2), np.nan)) == big


def test_read_pseudo68_needs_its_header(tmp_path: Path) -> None:
    row = "a.jpg," + ",".join("1.25" for _ in range(136))
    (tmp_path / "ok.csv").write_text(f"{CONTINUOUS_HEADER}\n# note\n{row}\n")
    (tmp_path / "ytf.csv").write_text(f"# image,x0,y0\n{row}\n")
    (faces,) = read_pseudo68(tmp_path / "ok.csv")
    assert faces.landmarks[0, 0] == 1.25  # continuous: no +0.5
    with pytest.raises(TcnnError, match="not a tcnn pseudo-label file"):
        read_pseudo68(tmp_path / "ytf.csv")


@pytest.fixture(scope="module")
def mtfl_faces(shared_root: Path) -> list:
    return read_mtfl(shared_root / "mtfl/train_landmarks5_bbox.txt")[:3]


@pytest.mark.slow
def test_teacher_lands_near_the_human_points(mtfl_faces: list, shared_root: Path) -> None:
    pytest.importorskip("dlib")
    from tcnn.imaging import load_image

    face = mtfl_faces[0]
    label = teacher.Teacher(4)(load_image(face.path), face.landmarks)
    assert label.box_source == "hog" and label.points is not None
    human = (face.landmarks - pseudo.MTFL_SHIFT)[None]
    err = filters.human_error(label.points[None], human)[0]
    assert err < 0.08  # mean 5-point error under 8% of the eye distance
    assert filters.flip_disagreement(label.direct[None], label.flipped[None])[0] < 0.05
    assert label.points.min() >= 0 and label.points.max() <= 80


@pytest.mark.slow
def test_label_write_read_round_trip(mtfl_faces: list, shared_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    source = teacher.Source("mtfl-train", 4, [(a.path, a.landmarks) for a in mtfl_faces])
    labels = teacher.label_source(source, progress=False, workers=1)
    result = filters.measure(source, labels, filters.Thresholds(), pseudo.MTFL_SHIFT)
    csv = tmp_path / "labels.csv"
    pseudo.write_result(result, csv, shared_root)
    read = read_pseudo68(csv, shared_root)
    kept = [lab for lab, k in zip(labels, result.kept) if k]
    assert len(read) == len(kept) == int(result.kept.sum()) >= 2
    for a, lab in zip(read, kept):
        assert lab.points is not None
        np.testing.assert_allclose(a.landmarks, lab.points, atol=1e-3)
    stats = csv.with_suffix(".stats.csv").read_text().splitlines()
    assert stats[0] == "path,box_source,flip,human,human_direct,kept" and len(stats) == 4
    raw = tmp_path / "labels.raw.npz"
    pseudo.save_raw(raw, labels, 1.0)
    again, seconds = pseudo.load_raw(raw, len(labels))
    assert seconds == 1.0
    np.testing.assert_array_equal(again[0].direct, labels[0].direct)


@pytest.mark.slow
def test_union_loads_each_dataset_in_order(
    mtfl_faces: list, shared_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tcnn.train.data.datasets import dataset_points, load_dataset

    # a small pseudo-label file in the (private) cache stands in for the full run
    rows = [CONTINUOUS_HEADER]
    for a in mtfl_faces:
        pts = np.tile(a.landmarks.mean(0), (68, 1))
        rel = os.path.relpath(a.path, shared_root)
        rows.append(rel + "," + ",".join(f"{v:.3f}" for v in pts.reshape(-1)))
    path = pseudo.cache_file("mtfl-train-dlib68")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    try:
        samples = load_dataset(
            "ytf68-train+mtfl-train-dlib68", shared_root, progress=False, limit=2
        )
    finally:
        path.unlink()
    assert len(samples) == 4
    assert [s.path.parent.name for s in samples] == ["train", "train", "lfw_5590", "lfw_5590"]
    assert all(s.landmarks.shape == (68, 2) for s in samples)
    assert samples[2].landmarks[0, 0] == pytest.approx(mtfl_faces[0].landmarks[:, 0].mean(), 1e-3)
    assert dataset_points("ytf68-train+utkface-dlib68") == 68
    with pytest.raises(TcnnError, match="mix landmark schemes"):
        dataset_points("ytf68-train+mtfl-train")
    with pytest.raises(TcnnError, match="unknown dataset 'nope'"):
        dataset_points("ytf68-train+nope")


def test_a_union_trains_a_68_point_network_and_its_card_names_every_source() -> None:
    pytest.importorskip("torch")
    from tcnn.train.config import TrainConfig
    from tcnn.train.export import CONVENTIONS, LICENCE, data_notes
    from tcnn.train.loop import arch_of

    data = "ytf68-train+mtfl-train-dlib68+utkface-dlib68"
    assert arch_of(TrainConfig(data=data)).points == 68
    licence = data_notes(data, LICENCE, "?", " ")
    for words in ("ytf68", "MTFL", "UTKFace", "iBUG 300-W", "commercial"):
        assert words in licence
    assert "pseudo-labels stored in continuous" in data_notes(data, CONVENTIONS, "?", "; ")
    assert data_notes("ytf68-train", LICENCE, "?", " ") == LICENCE["ytf68"]
