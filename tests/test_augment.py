import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tcnn.schemes import FIVE  # noqa: E402
from tcnn.train.config import Augment  # noqa: E402
from tcnn.train.data.augment import CropSet, augment_batch  # noqa: E402


def _dots_crop() -> CropSet:
    """A base crop (2S = 80) with five coloured dots where the 5 landmarks are."""
    size = 40
    img = np.zeros((80, 80, 3), np.uint8)
    pts = np.array([[-0.2, -0.2], [0.2, -0.15], [0.0, 0.05], [-0.15, 0.25], [0.18, 0.22]])
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for (x, y), c in zip(pts, colours):
        # centred crop units -> base pixels: base spans twice the model region
        px, py = (x / 2 + 0.5) * 2 * size, (y / 2 + 0.5) * 2 * size
        img[int(py) - 1 : int(py) + 2, int(px) - 1 : int(px) + 2] = c
    pts = pts.astype(np.float32)
    # landmarks at the centres of the 3x3 dots
    centres = [((int((x / 2 + 0.5) * 80) + 0.5) / 80 - 0.5) * 2 for x, _ in pts]
    centres_y = [((int((y / 2 + 0.5) * 80) + 0.5) / 80 - 0.5) * 2 for _, y in pts]
    pts = np.stack([centres, centres_y], 1).astype(np.float32)
    return CropSet(
        torch.from_numpy(img).permute(2, 0, 1)[None].contiguous(), torch.from_numpy(pts)[None]
    )


@pytest.mark.parametrize("mirror", [False, True])
def test_targets_follow_the_pixels(mirror: bool) -> None:
    """Each target lands on a dot: its own colour, or its mirror partner's after a mirror."""
    crops = _dots_crop()
    aug = Augment(
        rotate_deg=20,
        scale_jitter=0.1,
        shift_jitter=0.05,
        aspect_jitter=0.0,
        mirror=mirror,
        colour_jitter=0.0,
        gray=0.0,
    )
    perm = FIVE.flip_permutation()
    colours = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)])
    mappings = set()
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        x, y = augment_batch(crops.images, crops.points, torch.from_numpy(perm), aug, gen)
        img = x[0].permute(1, 2, 0).numpy()
        dots = []
        for c in colours:
            score = (img * c).sum(-1) - 0.9 * (img * (255 - c)).sum(-1)
            py, px = np.unravel_index(np.argmax(score), score.shape)
            dots.append((px + 0.5, py + 0.5))
        targets = (y[0].numpy() + 0.5) * 40
        dist = np.linalg.norm(targets[:, None] - np.array(dots)[None], axis=-1)
        assert dist.min(axis=1).max() < 1.6, seed
        mappings.add(tuple(dist.argmin(axis=1).tolist()))
    identity = tuple(range(5))
    expected = {identity, tuple(perm.tolist())} if mirror else {identity}
    assert mappings == expected
    assert x.shape == (1, 3, 40, 40) and y.shape == (1, 5, 2)


def test_mirror_keeps_left_points_on_the_left() -> None:
    crops = _dots_crop()
    aug = Augment(
        rotate_deg=0,
        scale_jitter=0,
        shift_jitter=0,
        aspect_jitter=0,
        mirror=True,
        colour_jitter=0,
        gray=0,
    )
    perm = torch.from_numpy(FIVE.flip_permutation())
    for seed in range(8):
        _, y = augment_batch(
            crops.images, crops.points, perm, aug, torch.Generator().manual_seed(seed)
        )
        assert y[0, 0, 0] < y[0, 1, 0]  # image-left eye left of the image-right eye
        assert y[0, 3, 0] < y[0, 4, 0]  # same for the mouth corners


def _grey_ramp(batch: int) -> torch.Tensor:
    """``[B, 3, 80, 80]`` uint8 base crops: the same grey ramp in every channel."""
    ramp = torch.linspace(20, 235, 80).round().to(torch.uint8)
    return ramp.expand(batch, 3, 80, 80).contiguous()


def _still(**colour: float) -> Augment:
    """No geometric jitter, only the colour settings given."""
    return Augment(
        rotate_deg=0, scale_jitter=0, shift_jitter=0, aspect_jitter=0, mirror=False,
        colour_jitter=0, gray=0, **colour,
    )  # fmt: skip


def test_channel_gain_casts_each_crop_its_own_colour() -> None:
    images, points = _grey_ramp(64), torch.zeros(64, 5, 2)
    flip = torch.from_numpy(FIVE.flip_permutation())
    plain, _ = augment_batch(images, points, flip, _still(), torch.Generator().manual_seed(0))
    # with no colour settings the grey stays grey
    assert float((plain[:, 0] - plain[:, 2]).abs().max()) < 1e-3
    cast, _ = augment_batch(
        images, points, flip, _still(channel_gain=0.7), torch.Generator().manual_seed(0)
    )
    means = cast.mean(dim=(2, 3))  # [B, 3]
    ratio = means[:, 2] / means[:, 0]  # blue over red, 1 for grey
    assert float(ratio.min()) < 0.6 and float(ratio.max()) > 1.6  # strong casts both ways
    assert float(cast.min()) >= 0 and float(cast.max()) <= 255


def test_gamma_darkens_and_brightens_the_mid_tones() -> None:
    images, points = _grey_ramp(64), torch.zeros(64, 5, 2)
    flip = torch.from_numpy(FIVE.flip_permutation())
    plain, _ = augment_batch(images, points, flip, _still(), torch.Generator().manual_seed(1))
    out, _ = augment_batch(
        images, points, flip, _still(gamma=0.5), torch.Generator().manual_seed(1)
    )
    change = (out.mean(dim=(1, 2, 3)) - plain.mean(dim=(1, 2, 3))) / plain.mean(dim=(1, 2, 3))
    assert float(change.min()) < -0.1 and float(change.max()) > 0.1
    # a monotone map: the ramp stays a ramp in every crop
    rows = out[:, 0, 20, 3:37]  # the model crop is 40 px
    assert bool((rows[:, 1:] >= rows[:, :-1] - 1e-3).all())
