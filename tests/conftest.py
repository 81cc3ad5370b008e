"""Shared fixtures: real photos, the shipped models, and ../shared data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo: a real face, [512, 512, 3] uint8 RGB."""
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture(scope="session")
def shared_root() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Face detections are cached per session, never read from the user's cache."""
    import os

    os.environ["TCNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
