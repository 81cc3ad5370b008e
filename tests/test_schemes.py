import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.schemes import FIVE, SIXTY_EIGHT, scheme_for, to_five


@pytest.mark.parametrize("scheme", [FIVE, SIXTY_EIGHT])
def test_flip_permutation_is_an_involution(scheme) -> None:
    perm = scheme.flip_permutation()
    assert sorted(perm.tolist()) == list(range(scheme.num_points))
    assert (perm[perm] == np.arange(scheme.num_points)).all()


def test_68_mirror_pairs_are_mirror_images_on_a_symmetric_face() -> None:
    # A face symmetric about x = 0: mirroring then permuting gives the same points back.
    rng = np.random.default_rng(0)
    pts = np.zeros((68, 2))
    perm = SIXTY_EIGHT.flip_permutation()
    for i in range(68):
        j = perm[i]
        if i <= j:
            p = rng.normal(size=2)
            pts[i] = p
            pts[j] = [-p[0], p[1]] if i != j else [0, p[1]]
    mirrored = pts * [-1, 1]
    assert np.allclose(mirrored[perm], pts)


def test_to_five() -> None:
    p = np.arange(68 * 2, dtype=np.float32).reshape(68, 2)
    five = to_five(p)
    assert five.shape == (5, 2)
    assert np.allclose(five[0], p[36:42].mean(0))
    assert np.allclose(five[2], p[30])
    assert np.allclose(to_five(p[None])[0], five)
    with pytest.raises(TcnnError, match=r"68, 2\] landmarks, got shape \(5, 2\)"):
        to_five(p[:5])


def test_unknown_scheme() -> None:
    with pytest.raises(TcnnError, match="no landmark scheme has 7 points"):
        scheme_for(7)
    # A ValueError too, so that callers written against the earlier ValueError still catch it.
    with pytest.raises(ValueError, match="no landmark scheme has 7 points"):
        scheme_for(7)
