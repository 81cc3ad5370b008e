"""The label-route studies on hand-built arrays: the teachers' consensus, calibration, the
teacher's box hint, and which faces the student trained on (no dataset, no model)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tcnn.train.config import TrainConfig
from tcnn.train.data.datasets import Sample
from tcnn.types import Box

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def studies() -> tuple[ModuleType, ModuleType]:
    sys.path.insert(0, str(ROOT))  # the benchmarks package sits at the repository root
    try:
        from benchmarks.studies import student_fit, teacher_consensus
    finally:
        sys.path.remove(str(ROOT))
    return teacher_consensus, student_fit


def _answers() -> dict[str, np.ndarray]:
    a = np.zeros((1, 68, 2))
    b = np.zeros((1, 68, 2))
    b[..., 0] = 4.0
    b[..., 1] = 8.0
    return {"a": a, "b": b}


def test_plain_consensus_is_the_mean(studies) -> None:  # type: ignore[no-untyped-def]
    tc, _ = studies
    out = tc.consensus(_answers(), ("a", "b"), None)
    assert out.shape == (1, 68, 2)
    np.testing.assert_allclose(out[0, 5], [2.0, 4.0])


def test_weighted_consensus_trusts_the_smaller_variance_point_by_point(studies) -> None:  # type: ignore[no-untyped-def]
    tc, _ = studies
    var_a = np.ones(68)
    var_b = np.ones(68)
    var_b[0] = 3.0  # point 0: a weighs 3/4, b 1/4
    var_a[1] = 3.0  # point 1: the other way round
    out = tc.consensus(_answers(), ("a", "b"), {"a": var_a, "b": var_b})
    np.testing.assert_allclose(out[0, 0], [1.0, 2.0])
    np.testing.assert_allclose(out[0, 1], [3.0, 6.0])
    np.testing.assert_allclose(out[0, 2], [2.0, 4.0])


def test_calibration_moves_by_offsets_in_extents(studies) -> None:  # type: ignore[no-untyped-def]
    tc, _ = studies
    pts = np.zeros((1, 68, 2))
    pts[0, :, 0] = np.linspace(0, 20, 68)  # extent 20 px
    pts[0, :, 1] = np.linspace(0, 10, 68)
    offsets = np.zeros((68, 2))
    offsets[3] = [0.05, -0.1]
    moved = tc.calibrated(pts, offsets)
    np.testing.assert_allclose(moved[0, 3] - pts[0, 3], [1.0, -2.0])
    np.testing.assert_allclose(moved[0, 4], pts[0, 4])


def test_the_box_hint_holds_only_located_points(studies) -> None:  # type: ignore[no-untyped-def]
    tc, _ = studies
    pts = np.arange(10.0).reshape(5, 2)
    pts[2] = np.nan
    hint = tc.located(pts)
    assert hint.shape == (4, 2) and np.isfinite(hint).all()


def _sample(source: str, i: int) -> Sample:
    return Sample(Path(f"{source}/{i}.jpg"), np.zeros((68, 2)), Box(0, 0, 10, 10), 1.0,
                  source=source)  # fmt: skip


def test_roles_follow_the_run_and_its_starting_point(studies, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, sf = studies
    faces = [_sample("ytf68-train", i) for i in range(200)] + [
        _sample("aflw68-train", i) for i in range(40)
    ]
    monkeypatch.setattr(sf, "training_samples", lambda cfg, progress: faces)
    cfg = TrainConfig(data="ytf68-train+aflw68-train", val_fraction=0.1, seed=0)
    init = TrainConfig(data="ytf68-train", val_fraction=0.1, seed=0)
    samples, role = sf.faces(cfg, init)
    assert samples == faces
    roles = [role[i] for i in range(len(faces))]
    assert roles.count("train") == 216  # 240 - 24 held out by the run
    held = [i for i, r in enumerate(roles) if r != "train"]
    for i in held:
        if faces[i].source == "aflw68-train":  # the starting point never saw the other source
            assert roles[i] == "unseen"
    # the starting point's own held-out faces: the first 10% of its seed's permutation
    init_val = {int(k) for k in np.random.default_rng(0).permutation(200)[:20]}
    kinds = set()
    for i in held:
        if faces[i].source == "ytf68-train":
            assert (roles[i] == "unseen") == (i in init_val)
            kinds.add(roles[i])
    assert kinds == {"val", "unseen"}  # both cases occur, so the check above can fail
