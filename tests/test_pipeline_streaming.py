"""Pipeline.run: memory stays flat over thousands of inputs, threads agree, bad inputs in order."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tcnn.pipeline import Item, Pipeline, Result
from tcnn.predictor import LandmarkDetector


@pytest.fixture(scope="module")
def fast5() -> LandmarkDetector:
    return LandmarkDetector("vanilla5-fast", threads=1)


def _small_inputs(n: int, produced: list[int]) -> Iterator[Item | np.ndarray]:
    """``n`` small images made on demand (counted in ``produced``); every 10th has no box."""
    rng = np.random.default_rng(0)
    for k in range(n):
        produced[0] += 1
        img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        yield img if k % 10 == 9 else Item(img, boxes=[(6.5, 5.0, 42.0, 43.5)])


@pytest.mark.slow
def test_thousands_of_inputs_keep_memory_flat(fast5: LandmarkDetector) -> None:
    n, produced = 3000, [0]
    pipe = Pipeline(fast5, workers=2, batch_faces=64, max_pending=32)
    ahead = 0
    peaks = []
    tracemalloc.start()
    try:
        for k, result in enumerate(pipe.run(_small_inputs(n, produced))):
            assert result.index == k and result.ok, result.error
            if k % 10 != 9:
                assert len(result.faces) == 1
            ahead = max(ahead, produced[0] - k)
            if k in (500, n - 1):
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()
    assert k == n - 1
    # Inputs are read lazily: never more than a window's worth ahead of the results.
    assert ahead <= pipe.max_pending + 2 * pipe.workers + 1, ahead
    # The peak over the last 2,500 inputs is no higher than over the first 500 (plus slack),
    # and small in absolute terms: 3,000 inputs are 20 MB of images.
    assert peaks[1] < peaks[0] * 1.5 + 1_000_000, peaks
    assert peaks[1] < 8_000_000, peaks


def _photo_inputs(astronaut: np.ndarray) -> list[Item | np.ndarray]:
    """Real photo inputs: one with its face detected, then given boxes, original and mirrored."""
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    items: list[Item | np.ndarray] = [astronaut]
    for k in range(30):
        d = float(k)
        items.append(Item(astronaut if k % 2 else flipped, boxes=[(150 + d, 60, 290 + d, 200)]))
    return items


def _landmarks(results: list[Result]) -> list[np.ndarray]:
    return [np.stack([f.landmarks for f in r.faces]) for r in results]


def test_two_threads_sharing_a_pipeline_agree_with_one(astronaut: np.ndarray) -> None:
    pipe = Pipeline(LandmarkDetector(), workers=2, batch_faces=16)
    inputs = _photo_inputs(astronaut)
    alone = list(pipe.run(inputs))
    assert all(r.ok and r.faces for r in alone)
    shared: dict[int, list[Result]] = {}

    def work(t: int) -> None:
        shared[t] = list(pipe.run(inputs))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in range(2):
        assert [r.index for r in shared[t]] == list(range(len(inputs)))
        assert [[f.box for f in r.faces] for r in shared[t]] == [
            [f.box for f in r.faces] for r in alone
        ]
        for a, b in zip(_landmarks(alone), _landmarks(shared[t])):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_two_threads_sharing_a_detector_agree_with_one(astronaut: np.ndarray) -> None:
    lm = LandmarkDetector(points=68)
    alone = lm.detect(astronaut)
    out: dict[int, list[np.ndarray]] = {}

    def work(t: int) -> None:
        out[t] = [np.stack([f.landmarks for f in lm.detect(astronaut)]) for _ in range(1)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in range(2):
        for pts in out[t]:
            np.testing.assert_allclose(pts, np.stack([f.landmarks for f in alone]), atol=1e-4)


def test_bad_inputs_yield_errors_in_order(
    tmp_path: Path, astronaut: np.ndarray, astronaut_png: Path, fast5: LandmarkDetector
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(astronaut_png.read_bytes()[:200])
    box = [(150, 60, 290, 200)]
    inputs: list[object] = [
        Item(astronaut, boxes=box),
        tmp_path / "missing.jpg",
        empty,
        corrupt,
        np.zeros((4, 4, 7), np.uint8),
        Item(astronaut, boxes=[(600, 600, 700, 700)]),
        Item(astronaut_png, boxes=box),
    ]
    results = list(Pipeline(fast5, workers=2).run(inputs))  # type: ignore[arg-type]
    assert [r.index for r in results] == list(range(len(inputs)))
    assert [r.ok for r in results] == [True, False, False, False, False, False, True]
    assert "missing.jpg" in str(results[1].error) and "no such file" in str(results[1].error)
    assert "empty.jpg" in str(results[2].error)
    assert str(results[3].error).startswith(str(corrupt))
    assert "<array 4>" in str(results[4].error)
    assert "outside" in str(results[5].error)
    assert all("\n" not in str(r.error) for r in results)
    np.testing.assert_allclose(results[0].faces[0].landmarks, results[6].faces[0].landmarks)
