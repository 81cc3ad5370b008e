"""Label fusion: the teacher's 68 points moved onto human 5 points."""

import numpy as np

from tcnn.schemes import to_five
from tcnn.train.data.fusion import affine_fit, fuse_five


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(20, 60, (68, 2))).astype(np.float32)


def test_affine_fit_recovers_a_known_map() -> None:
    src = _face()[:10].astype(np.float64)
    m = np.array([[1.1, 0.2, 3.0], [-0.1, 0.9, -2.0]])
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(affine_fit(src, dst), m, atol=1e-9)


def test_fused_points_land_on_the_human_five() -> None:
    p = _face(1)
    human = to_five(p) + np.random.default_rng(2).normal(0, 1.5, (5, 2))
    fused = fuse_five(p, human)
    np.testing.assert_allclose(to_five(fused), human, atol=1e-4)


def test_an_affine_error_is_removed_everywhere() -> None:
    truth = _face(3)
    m = np.array([[0.95, 0.05, 1.5], [0.02, 1.04, -0.7]])
    teacher = truth @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(fuse_five(teacher, to_five(truth)), truth, atol=1e-3)


def test_human_points_that_agree_change_nothing() -> None:
    p = _face(4)
    np.testing.assert_allclose(fuse_five(p, to_five(p)), p, atol=1e-4)
