"""LandmarkTracker and the One Euro filter, on short clips made from a real face photo."""

from __future__ import annotations

import numpy as np
import pytest

from tcnn.apps.video import LandmarkTracker, OneEuroFilter, Smoothing, TrackedFace
from tcnn.errors import TcnnError
from tcnn.predictor import LandmarkDetector
from tcnn.types import Box

W, H = 320, 240


@pytest.fixture(scope="module")
def head(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's face with some margin: [150, 150, 3] uint8."""
    return astronaut[45:195, 145:295].copy()


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    # The float model: with the int8 default a still, noisy face moves its crop once more in
    # 30 frames (9 boxes against this test's 8), which would test the model, not the tracker.
    return LandmarkDetector("vanilla5", threads=1)


def clip(
    heads: list[np.ndarray], paths: list[list[tuple[int, int]]], noise: float = 3.0, seed: int = 0
) -> list[np.ndarray]:
    """Frames with each head pasted at its path's top-left corners (later heads in front)."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(len(paths[0])):
        frame = np.full((H, W, 3), 110.0)
        for img, path in zip(heads, paths):
            x, y = path[t]
            frame[y : y + img.shape[0], x : x + img.shape[1]] = img
        frame += rng.normal(0, noise, frame.shape)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames


def eye_distance(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[0] - pts[1]))


def test_still_face_keeps_its_id_and_smoothing_cuts_jitter(
    head: np.ndarray, detector: LandmarkDetector
) -> None:
    frames = clip([head], [[(85, 45)] * 30], noise=6.0)
    tracker = LandmarkTracker(detector, detect_every=10)
    out = [tracker.update(f, t / 30) for t, f in enumerate(frames)]
    assert all(len(faces) == 1 for faces in out)
    assert {faces[0].track_id for faces in out} == {0}
    assert sum(faces[0].detected for faces in out) == 3  # frames 0, 10, 20
    assert isinstance(out[0][0], TrackedFace)
    smooth = np.stack([faces[0].landmarks for faces in out])
    raw = np.stack([faces[0].raw_landmarks for faces in out])
    eye = eye_distance(raw[0])
    jitter_raw = np.linalg.norm(np.diff(raw, axis=0), axis=-1).mean() / eye
    jitter_smooth = np.linalg.norm(np.diff(smooth, axis=0), axis=-1).mean() / eye
    assert jitter_raw > 0  # the noise does move the raw landmarks
    assert jitter_smooth < jitter_raw / 2
    # The crop stays put: noise in the landmarks does not move the box (HOLD).
    boxes = {faces[0].box.as_tuple() for faces in out[1:]}
    # It moves only at detections: the detector's box on frames 10 and 20 (re-anchoring),
    # then the box from the landmarks placed there; at most two crops between detections.
    assert len(boxes) <= 8, boxes


def test_tracked_landmarks_follow_a_translated_face(
    head: np.ndarray, detector: LandmarkDetector
) -> None:
    path = [(10 + 5 * t, 40 + t) for t in range(30)]  # 5 px/frame right, 1 px/frame down
    frames = clip([head], [path])
    tracker = LandmarkTracker(detector, detect_every=15, smoothing=None)
    out = [tracker.update(f, t / 30) for t, f in enumerate(frames)]
    assert all(len(faces) == 1 and faces[0].track_id == 0 for faces in out)
    first = out[0][0].landmarks
    eye = eye_distance(first)
    for t in range(1, 30):
        truth = first + np.float32([5 * t, t])
        err = np.linalg.norm(out[t][0].landmarks - truth, axis=-1).mean() / eye
        assert err < 0.08, (t, err)
    assert sum(faces[0].detected for faces in out) <= 4  # mostly tracked, not detected


def test_crossing_faces_keep_their_ids(head: np.ndarray, detector: LandmarkDetector) -> None:
    other = head[:, ::-1].copy()  # the mirrored photo: a second face
    n = 32
    a = [(5 + 5 * t, 5) for t in range(n)]  # left to right, upper
    b = [(165 - 5 * t, 85) for t in range(n)]  # right to left, lower, in front
    frames = clip([head, other], [a, b])
    tracker = LandmarkTracker(detector, detect_every=5)
    owner: dict[int, set[int]] = {0: set(), 1: set()}
    for t, f in enumerate(frames):
        for face in tracker.update(f, t / 30):
            cx, cy = face.landmarks.mean(0)
            centres = [(a[t][0] + 75, a[t][1] + 75), (b[t][0] + 75, b[t][1] + 75)]
            near = int(np.argmin([np.hypot(cx - x, cy - y) for x, y in centres]))
            owner[near].add(face.track_id)
    assert len(owner[0]) == 1 and len(owner[1]) == 1
    assert owner[0] != owner[1]


@pytest.mark.slow
def test_a_face_that_leaves_ends_its_track(head: np.ndarray, detector: LandmarkDetector) -> None:
    frames = clip([head], [[(85, 45)] * 8]) + clip([head[:0]], [[(0, 0)] * 25], seed=1)
    tracker = LandmarkTracker(detector, detect_every=5)
    out = [tracker.update(f, t / 30) for t, f in enumerate(frames)]
    assert all(len(faces) == 1 for faces in out[:8])
    assert out[-1] == []


def test_one_euro_filter_steady_and_following() -> None:
    f = OneEuroFilter(Smoothing(min_cutoff=1.0, beta=0.0))
    still = np.array([[10.0, 20.0]])
    for t in range(5):
        assert np.allclose(f(still, t / 30, 100.0), still)
    # A step is approached gradually without overshoot at low speed adaptation.
    outs = [f(still + 10, (5 + t) / 30, 100.0)[0, 0] for t in range(60)]
    assert 10.0 < outs[0] < 12.0 and all(np.diff(outs) >= 0) and outs[-1] == pytest.approx(20, 0.01)
    # With speed adaptation a fast ramp is followed more closely than without.
    lag = {}
    for beta in (0.0, 40.0):
        g = OneEuroFilter(Smoothing(min_cutoff=1.0, beta=beta))
        for t in range(30):
            y = g(np.array([[30.0 * t, 0.0]]), t / 30, 100.0)  # 0.3 face sizes per frame
        lag[beta] = 30.0 * 29 - float(y[0, 0])
    assert lag[40.0] < lag[0.0] / 5


def test_bad_settings_are_one_line_errors(detector: LandmarkDetector) -> None:
    with pytest.raises(TcnnError, match="detect_every"):
        LandmarkTracker(detector, detect_every=0)
    with pytest.raises(TcnnError, match="max_faces"):
        LandmarkTracker(detector, max_faces=0)
    with pytest.raises(TcnnError, match="cutoffs"):
        Smoothing(min_cutoff=0.0)
    with pytest.raises(TcnnError, match="relation"):
        LandmarkTracker(detector, relation=(0.0, 0.1))


def test_max_faces_limits_the_tracks(head: np.ndarray, detector: LandmarkDetector) -> None:
    other = head[:, ::-1].copy()
    frames = clip([head, other], [[(5, 5)] * 6, [(165, 85)] * 6])
    tracker = LandmarkTracker(detector, detect_every=2, max_faces=1)
    out = [tracker.update(f, t / 30) for t, f in enumerate(frames)]
    assert all(len(faces) == 1 and faces[0].track_id == 0 for faces in out)
    tracker.reset()
    assert len(LandmarkTracker(detector).update(frames[0])) == 2


def test_a_fixed_box_relation_tracks_like_the_measured_one(
    head: np.ndarray, detector: LandmarkDetector
) -> None:
    frames = clip([head], [[(20 + 4 * t, 45) for t in range(12)]])
    measured = LandmarkTracker(detector, smoothing=None)
    out = [measured.update(f, t / 30) for t, f in enumerate(frames)]
    relation = measured._tracks[0].relation  # the per-track relation, from detections
    fixed = LandmarkTracker(detector, smoothing=None, relation=tuple(relation))
    assert fixed.relation is not None
    for t, f in enumerate(frames):
        (a,), (b,) = out[t], fixed.update(f, t / 30)
        assert b.track_id == 0
        assert np.linalg.norm(a.landmarks - b.landmarks, axis=-1).mean() < 0.05 * eye_distance(
            a.landmarks
        )


def test_box_relation_follows_the_roll(detector: LandmarkDetector) -> None:
    """The relation is measured in the face's own frame: a box measured on the upright face
    gives the box a detector draws at another roll (wider, shorter), and back."""
    tracker = LandmarkTracker(detector)
    upright = np.array([[40.0, 50.0], [80.0, 50.0], [60.0, 70.0], [45.0, 90.0], [75.0, 90.0]])
    box = Box(30.0, 20.0, 90.0, 110.0)  # 60 x 90, centre (60, 65)
    rel = tracker._relation(box, upright)
    assert np.allclose(tracker._state(upright, rel), [60.0, 65.0, 60.0, 90.0])
    a = np.radians(30.0)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pivot = np.array([200.0, 150.0])
    turned = (upright - upright.mean(0)) @ turn.T + pivot
    cx, cy, w, h = tracker._state(turned, rel)
    centre = (np.array([60.0, 65.0]) - upright.mean(0)) @ turn.T + pivot
    assert np.allclose([cx, cy], centre)  # the box centre turns with the face
    c2, s2 = np.cos(a) ** 2, np.sin(a) ** 2
    assert np.allclose([w, h], [60 * c2 + 90 * s2, 90 * c2 + 60 * s2])
    # Measured at that roll, the relation is the upright one again.
    at_roll = Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    assert np.allclose(tracker._relation(at_roll, turned), rel)
    # A twice larger face: the same relation, twice the box.
    assert np.allclose(tracker._state(2 * upright, rel), [120.0, 130.0, 120.0, 180.0])


@pytest.mark.slow
def test_a_face_hidden_behind_an_occluder_keeps_its_id(
    head: np.ndarray, detector: LandmarkDetector
) -> None:
    """The face passes behind a bar for about 20 frames: its track coasts on its own motion
    (not stopping where the detector last saw it half hidden) and is found again."""
    rng = np.random.default_rng(0)
    tracker = LandmarkTracker(detector, detect_every=5)
    ids, hidden = [], 0
    for t in range(42):
        frame = np.full((200, 480, 3), 110.0)
        frame[25:175, 8 * t : 8 * t + 150] = head  # 8 px/frame to the right
        frame[:, 150:340] = 60.0  # the occluder, in front
        frame = np.clip(frame + rng.normal(0, 3, frame.shape) + 0.5, 0, 255).astype(np.uint8)
        faces = tracker.update(frame, t / 30)
        ids += [f.track_id for f in faces]
        hidden += not faces
    assert hidden >= 10  # the face was out of sight
    assert len(faces) == 1 and set(ids) == {0}


def test_video_help_names_the_smoothing_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from tcnn.apps.cli import main

    with pytest.raises(SystemExit):
        main(["video", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"still face, Hz (default {Smoothing().min_cutoff:g})" in text
    assert f"per face size/s (default {Smoothing().beta:g})" in text
