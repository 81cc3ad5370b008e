import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.metrics import (
    auc,
    ced,
    failure_rate,
    nme,
    normalising_distance,
    region_errors,
    summarise,
)
from tcnn.schemes import FIVE, SIXTY_EIGHT


def test_nme_hand_computed() -> None:
    gt = np.array([[[0, 0], [10, 0], [5, 5], [2, 8], [8, 8]]], np.float32)
    pred = gt.copy()
    pred[0, 0] += [3, 4]  # 5 px off
    pred[0, 4] += [0, 2]  # 2 px off
    norm = normalising_distance(gt, FIVE)
    assert norm.tolist() == [10.0]
    assert nme(pred, gt, norm)[0] == pytest.approx((5 + 2) / 5 / 10)


def test_inter_ocular_and_inter_pupil() -> None:
    gt = np.zeros((1, 68, 2), np.float32)
    gt[0, 36] = [0, 0]
    gt[0, 45] = [20, 0]
    gt[0, 36:42] = [[0, 0], [2, -1], [4, -1], [6, 0], [4, 1], [2, 1]]  # mean (3, 0)
    gt[0, 42:48] = [[14, 0], [16, -1], [18, -1], [20, 0], [18, 1], [16, 1]]  # mean (17, 0)
    assert normalising_distance(gt, SIXTY_EIGHT, "inter-ocular")[0] == pytest.approx(20 - 0)
    assert normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")[0] == pytest.approx(14)
    with pytest.raises(TcnnError, match=r"unknown normaliser 'eye-centres' for .*inter-ocular"):
        normalising_distance(gt, SIXTY_EIGHT, "eye-centres")


def test_failure_rate_ced_auc() -> None:
    errors = np.array([0.02, 0.05, 0.09, 0.20])
    assert failure_rate(errors, 0.08) == 0.5
    assert failure_rate(errors, 0.10) == 0.25
    x, y = ced(errors, 0.10, 11)
    assert x[5] == pytest.approx(0.05)
    assert y[5] == 0.5  # 0.02 and 0.05 are <= 0.05
    assert y[-1] == 0.75
    # area under a step function: 0.02 -> 0.25, 0.05 -> 0.5, 0.09 -> 0.75, to 0.10
    exact = (0.25 * 0.03 + 0.5 * 0.04 + 0.75 * 0.01) / 0.10
    assert auc(errors, 0.10, 100001) == pytest.approx(exact, abs=1e-3)
    assert auc(np.zeros(3)) == pytest.approx(1.0, abs=1e-3)


def test_summarise_keys() -> None:
    s = summarise(np.array([0.01, 0.03, 0.12]))
    assert s["mean"] == pytest.approx(0.16 / 3)
    assert s["median"] == pytest.approx(0.03)
    assert s["failure_10"] == pytest.approx(1 / 3)


def _face68() -> np.ndarray:
    """One 68-point face: eye centres (3, 0) and (17, 0), 14 px apart; other points spread."""
    gt = np.zeros((1, 68, 2), np.float32)
    gt[0, :, 0] = np.arange(68)
    gt[0, 36:42] = [[0, 0], [2, -1], [4, -1], [6, 0], [4, 1], [2, 1]]
    gt[0, 42:48] = [[14, 0], [16, -1], [18, -1], [20, 0], [18, 1], [16, 1]]
    return gt


def test_nme_skips_points_without_location() -> None:
    gt = _face68()
    pred = gt.copy()
    pred[0, 0] += [7, 0]  # jaw: 7 px off = 0.5 eye distances
    pred[0, 60] += [0, 28]  # inner lip: 28 px off = 2 eye distances
    norm = normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")
    assert norm.tolist() == [14.0]
    assert nme(pred, gt, norm)[0] == pytest.approx((0.5 + 2) / 68)
    hidden = gt.copy()
    hidden[0, 60] = np.nan  # self-occluded: not scored, the mean is over 67 points
    assert nme(pred, hidden, norm)[0] == pytest.approx(0.5 / 67)
    mask = np.ones((1, 68), bool)
    mask[0, 0] = False  # an explicit mask leaves out point 0 as well
    assert nme(pred, hidden, norm, mask)[0] == pytest.approx(0.0)
    regions = region_errors(pred, hidden, norm, SIXTY_EIGHT.regions)
    assert regions["jaw"][0] == pytest.approx(0.5 / 17)
    assert regions["mouth"][0] == pytest.approx(0.0)  # 19 scored mouth points, all exact
    assert regions["eyes"][0] == pytest.approx(0.0)
    none = hidden.copy()
    none[0, 17:27] = np.nan  # a face with no scored brow point
    assert np.isnan(region_errors(pred, none, norm, SIXTY_EIGHT.regions)["brows"][0])


def test_normaliser_over_located_points() -> None:
    gt = _face68()
    gt[0, 47] = np.nan  # (16, 1) unlocated: the right eye centre is the mean of 5 points
    right = np.array([[14, 0], [16, -1], [18, -1], [20, 0], [18, 1]]).mean(axis=0)
    expected = np.linalg.norm(right - [3, 0])
    assert normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")[0] == pytest.approx(expected)
    gt[0, 42:48] = np.nan
    assert np.isnan(normalising_distance(gt, SIXTY_EIGHT, "inter-pupil")[0])
