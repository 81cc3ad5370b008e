"""The training losses: the mean point error and its Wing form, on hand-built points."""

from __future__ import annotations

import math

import pytest
import torch

from tcnn.errors import TcnnError
from tcnn.schemes import FIVE
from tcnn.train.config import load_config
from tcnn.train.loop import face_errors, normalised_loss, point_errors, wing


def _faces() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 5-point faces whose eye centres are 10 px apart; the prediction of the first is 1 px
    right of every target point, of the second 4 px right of one point, and one target point
    of the second has no location."""
    target = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [2.0, 9.0], [8.0, 9.0]]] * 2)
    pred = target.clone()
    pred[0, :, 0] += 1.0
    pred[1, 2, 0] += 4.0
    target[1, 4] = math.nan
    return pred, target


def test_point_errors_over_the_eye_distance() -> None:
    pred, target = _faces()
    d = point_errors(pred, target, FIVE)
    assert torch.allclose(d[0], torch.full((5,), 0.1))
    assert torch.allclose(d[1, :4], torch.tensor([0.0, 0.0, 0.4, 0.0]))
    assert torch.isnan(d[1, 4])
    assert torch.allclose(face_errors(pred, target, FIVE), torch.tensor([0.1, 0.1]))


def test_wing_values_and_the_join() -> None:
    d = torch.tensor([0.0, 0.06, 0.3, 0.5])
    c = 0.3 - 0.3 * math.log(6.0)
    expected = torch.tensor([0.0, 0.3 * math.log(2.0), 0.3 * math.log(6.0), 0.5 - c])
    assert torch.allclose(wing(d, 0.3, 0.06), expected)
    # continuous at the width, linear above it
    below, above = wing(torch.tensor([0.3 - 1e-6, 0.3 + 1e-6]), 0.3, 0.06)
    assert abs(float(above - below)) < 1e-5


def test_loss_is_the_mean_error_without_a_wing() -> None:
    pred, target = _faces()
    assert float(normalised_loss(pred, target, FIVE)) == pytest.approx(0.1)


def test_wing_loss_over_located_points_and_its_gradients() -> None:
    pred, target = _faces()
    pred.requires_grad_(True)
    loss = normalised_loss(pred, target, FIVE, (0.3, 0.06))
    face0 = 0.3 * math.log1p(0.1 / 0.06)
    face1 = (0.4 - 0.3 + 0.3 * math.log(6.0)) / 4  # four located points, one off (linear part)
    assert float(loss.detach()) == pytest.approx((face0 + face1) / 2, rel=1e-5)
    loss.backward()
    assert pred.grad is not None
    assert torch.all(pred.grad[1, 4] == 0)  # the unlocated point gives no gradient
    # per unit of error, the small errors pull harder than the large one
    small = pred.grad[0, 0, 0] / 0.1
    large = pred.grad[1, 2, 0] / 0.4
    assert small > large > 0


@pytest.mark.parametrize("value", ["0.3", "0.3,0", "0.1,0.2,0.3"])
def test_bad_wing_is_refused(value: str) -> None:
    with pytest.raises(TcnnError, match=r"optim\.wing"):
        load_config(None, [f"optim.wing={value}"])


def test_wing_from_toml(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nwing = [0.3, 0.06]\n")
    assert load_config(path).optim.wing == (0.3, 0.06)
    assert load_config(None).optim.wing == ()
