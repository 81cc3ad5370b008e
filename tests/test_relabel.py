"""Relabelling the unlabelled pool with a shipped model (tcnn.train.data.relabel): the
teacher's answers on real faces, the label file they are written to, and a face without a box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.metrics import nme, normalising_distance
from tcnn.schemes import SIXTY_EIGHT
from tcnn.train.data.datasets import DATASETS, load_dataset
from tcnn.train.data.formats import read_pseudo68
from tcnn.train.data.relabel import RELABELLED, teacher_labels, write_labels


def test_teacher_places_human_labelled_faces_and_its_file_reads_back(
    shared_root: Path, tmp_path: Path
) -> None:
    samples = [
        s
        for s in load_dataset("aflw68-train", shared_root, "dlib", progress=False, limit=16)
        if s.box is not None
    ]
    assert len(samples) >= 8
    points = teacher_labels([(s.path, s.box) for s in samples], progress=False)
    assert points.shape == (len(samples), 68, 2) and np.isfinite(points).all()
    truth = np.stack([s.landmarks for s in samples])
    errors = nme(points, truth, normalising_distance(truth, SIXTY_EIGHT, "inter-pupil"))
    # the shipped mean of students scores about 8% on these labels' held-out part
    assert float(np.median(errors)) < 0.12
    out = tmp_path / "labels.csv"
    write_labels(out, [s.path for s in samples], points, shared_root, "test faces, by the teacher")
    back = read_pseudo68(out, shared_root)
    assert [a.path for a in back] == [Path(s.path) for s in samples]
    np.testing.assert_allclose(np.stack([a.landmarks for a in back]), points, atol=1e-3)


def test_every_relabelled_dataset_names_a_base_with_the_same_box_protocol() -> None:
    for name, base in RELABELLED.items():
        assert DATASETS[name].upsample == DATASETS[base].upsample
        assert DATASETS[name].points == DATASETS[base].points == 68


def test_a_face_without_a_box_is_refused_in_one_line(shared_root: Path) -> None:
    samples = load_dataset("aflw68-train", shared_root, "dlib", progress=False, limit=2)
    with pytest.raises(TcnnError, match="every face needs a box"):
        teacher_labels([(samples[0].path, None)], progress=False)
