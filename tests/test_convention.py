"""The label-convention rule recovers a known label offset on a synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tcnn.train.convention import measure_offset, shift_labels
from tcnn.train.data.datasets import Sample

SIZE = 24
OFFSET = 0.6  # px: the synthetic labels sit this far right of and below the features


def _dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of one Gaussian blob, ``[n, SIZE * SIZE]``, and its true centres ``[n, 2]``.

    Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, its centre ``i + 0.5``.
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(7, SIZE - 7, (n, 2))
    grid = np.arange(SIZE) + 0.5
    gx = np.exp(-((grid[None] - centres[:, :1]) ** 2) / 8.0)
    gy = np.exp(-((grid[None] - centres[:, 1:]) ** 2) / 8.0)
    images = gy[:, :, None] * gx[:, None, :]
    images /= images.sum(axis=(1, 2), keepdims=True)
    return images.reshape(n, -1), centres


def _mirror(images: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flipped = images.reshape(-1, SIZE, SIZE)[:, :, ::-1].reshape(len(images), -1)
    return flipped, np.stack([SIZE - points[:, 0], points[:, 1]], 1)


def _features(images: np.ndarray) -> np.ndarray:
    """The image's column and row profiles and a constant: ``[n, 2 * SIZE + 1]``."""
    sq = images.reshape(-1, SIZE, SIZE)
    return np.concatenate([sq.sum(1), sq.sum(2), np.ones((len(sq), 1))], 1)


def _train_mirrored(images: np.ndarray, labels: np.ndarray):
    """A linear regressor fitted with mirror augmentation (each face and its mirror image)."""
    mi, ml = _mirror(images, labels)
    x = _features(np.concatenate([images, mi]))
    w = np.linalg.lstsq(x, np.concatenate([labels, ml]), rcond=None)[0]
    return lambda imgs: _features(imgs) @ w


def test_rule_recovers_a_known_offset_and_removes_it_on_both_axes() -> None:
    images, features = _dataset(2000, 0)
    labels = features + OFFSET  # a pixel-convention offset, the same on both axes
    net = _train_mirrored(images, labels)
    before = net(images) - features
    # The mirror-trained regressor learns the vertical offset but not the horizontal one.
    assert abs(before[:, 0].mean()) < 0.05 and abs(before[:, 1].mean() - OFFSET) < 0.05

    found = measure_offset(labels[:, None], net(images)[:, None])
    assert abs(found.shift - OFFSET) < 0.05 and found.faces == 2000

    samples = [Sample(Path(f"{i}.png"), lab[None].astype(np.float32), None, 0.0) for i, lab in
               enumerate(labels)]  # fmt: skip
    fixed = np.stack([s.landmarks[0] for s in shift_labels(samples, found.shift)])
    after = _train_mirrored(images, fixed)
    test_images, test_features = _dataset(200, 1)
    bias = (after(test_images) - test_features).mean(0)
    assert np.all(np.abs(bias) < 0.05), bias  # predicts the image features on both axes


def test_no_offset_measures_zero_and_shift_zero_is_identity() -> None:
    images, features = _dataset(300, 2)
    net = _train_mirrored(images, features)
    assert abs(measure_offset(features[:, None], net(images)[:, None]).shift) < 0.05
    samples = [Sample(Path("a.png"), np.zeros((5, 2), np.float32), None, 0.0)]
    assert shift_labels(samples, 0.0)[0] is samples[0]
    moved = shift_labels(samples, 0.25)[0].landmarks
    np.testing.assert_allclose(moved, -0.25)
    assert moved.dtype == np.float32


def test_style_rule_recovers_a_known_per_point_style(tmp_path: Path) -> None:
    """Labels drawn in another style (a per-point offset proportional to the face's size) and
    a noisy reference: the measured offsets recover the style, and restyle undoes it."""
    import json

    import pytest

    from tcnn.errors import TcnnError
    from tcnn.train.convention import extent, restyle, style_offsets
    from tcnn.train.data.samples import read_style

    rng = np.random.default_rng(3)
    template = rng.uniform(-0.5, 0.5, (68, 2))
    style = rng.normal(0, 0.02, (68, 2))  # in extents
    scales = rng.uniform(40, 400, 500)
    truth = template[None] * scales[:, None, None] + rng.uniform(0, 600, (500, 1, 2))
    unit = extent(truth)[:, None, None]
    labels = truth + style * unit
    reference = truth + rng.normal(0, 0.01, truth.shape) * unit  # the teacher: unbiased, noisy
    measured = style_offsets(labels, reference)
    assert np.abs(measured - style).max() < 0.003  # the noise averages out over 500 faces
    samples = [Sample(Path(f"f{i}.png"), p.astype(np.float32), None, np.nan) for i, p in
               enumerate(labels)]  # fmt: skip
    moved = np.stack([s.landmarks for s in restyle(samples, measured)])
    assert (np.abs(moved - truth) / unit).max() < 0.006  # per face, in its extent
    assert (np.abs(labels - truth) / unit).max() > 0.04  # the style was visible before
    path = tmp_path / "style.json"
    path.write_text(json.dumps({"source": "ytf68-train", "offsets": measured.tolist()}))
    np.testing.assert_allclose(read_style(str(path), "ytf68-train"), measured)
    with pytest.raises(TcnnError, match="measured on 'ytf68-train', not 'mtfl-train'"):
        read_style(str(path), "mtfl-train")
    path.write_text("{}")
    with pytest.raises(TcnnError, match="not a style file"):
        read_style(str(path), "ytf68-train")
    with pytest.raises(TcnnError, match="no such file"):
        read_style(str(tmp_path / "none.json"), "ytf68-train")
