"""Landmarks through a video: faces tracked from frame to frame, ids kept, points smoothed.

:class:`LandmarkTracker` runs the face detector only now and then. On the other frames each
face's box comes from its own landmarks on the previous frame (the box the detector would draw
around a face with those landmarks, moved on by the face's recent motion), so a frame costs one
landmark-network batch instead of a detection (two when the crop slipped: the landmarks are
placed again from the box they gave). The detector runs

- every ``detect_every`` frames (new faces are found at most that many frames after they appear,
  and tracks the detector no longer finds end),
- on any frame where a track's confidence drops below ``min_confidence`` or a track is hidden,
- on every frame while no face is tracked.

A detection that matches a track re-anchors it: its landmarks are placed again from the
detector's box, so the small bias a landmark network has towards its crop cannot build up
through the boxes that follow the landmarks (on the 68-point video benchmark this took the
worst cost of tracking and smoothing over the raw pipeline from +0.53% to +0.48% of the eye
distance). A
confident track keeps its motion; an unsure or hidden one takes its last sure motion. The one
exception is a confident track that another face overlaps: its detection may have slid onto
the other face, so it keeps its tracked landmarks (re-anchoring it there switched ids on the
crossing-faces video).

**Box from landmarks**: each detection of a track measures that face's own relation between the
detector's box and the landmarks the model places from it, in the face's frame (centroid, RMS
size and eye-line roll of the landmarks): the box centre's offset along and across the eye line,
and the width and height of the box the detector gives for the face upright (an axis-aligned box
of a face turned in plane is wider and shorter; see :meth:`LandmarkTracker._relation`). The
track keeps the median over its recent detections, and its boxes between detections are the
detector's convention for that face at its current roll and size. A box moves only when its
landmarks moved it by at least ``HOLD`` of its size, so a still face keeps one crop.

**Track confidence** is the agreement between where a track's motion said the face would be and
where its landmarks put it: the smaller of the IoU of the predicted box (last frame's centre
moved by the recent motion, same size) with the box from this frame's landmarks, and of the
crop's box with that box. It is near 1 while the face moves smoothly, and drops when the crop
slips off the face, the face is occluded or jumps, or its size changes suddenly (the issue's
"change of box size" rule, generalised to position).

**Hidden faces**: an unsure track the detector does not find (an occluded face, say) is hidden:
not reported, it moves on with its last sure motion (the last one at confidence ``SURE``, kept
through re-anchoring) for up to ``max_hidden`` frames, and keeps its id if the detector finds a
face there. When two visible tracks collapse onto one face (one face passing in front of the
other), the one whose motion agrees less with its prediction is hidden the same way. A confident
track the detector misses while another face overlaps it is kept (partly hidden faces are hard
to detect); otherwise it ends after ``max_missed`` detection frames without its face.

**Ids** are assigned on detection frames by greedy best matching of detections to tracks:
visible tracks first, by the IoU of the detection with the track's box (at least
``match_iou``), then hidden ones, by that IoU or by how near the detection is to where the
track's motion took it (``1 - distance / size``), so a face that comes out from behind another
keeps its id. Tracks follow their own face between detections, so faces that cross keep theirs.

**Smoothing** is a One Euro filter (Casiez et al., CHI 2012) per landmark: a low-pass whose
cutoff rises with speed, so a still face is steady and a fast one is not dragged behind. It
runs on the output only: the boxes follow the landmarks before smoothing.

Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, so the centre of the
top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib pixel indices.

Example:
    >>> tracker = LandmarkTracker(points=5)
    >>> for t, frame in enumerate(frames):  # [H, W, 3] uint8 RGB arrays
    ...     for face in tracker.update(frame, t / 30):
    ...         print(face.track_id, face.landmarks.shape)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tcnn.apps.video.smoothing import DEFAULT_SMOOTHING, OneEuroFilter, Smoothing
from tcnn.errors import TcnnError
from tcnn.imaging import load_image
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import scheme_for
from tcnn.types import Box, Face


@dataclass(frozen=True, eq=False)
class TrackedFace(Face):
    """A face in one video frame.

    Attributes:
        box: the box the landmarks were placed from (the detector's, or one from the landmarks
            of the previous frame).
        score: the detector's score on the track's latest detection.
        landmarks: ``[K, 2]`` float32, smoothed when the tracker smooths; continuous pixels.
        track_id: stable while the face stays visible; a face that is lost and found again
            gets a new id.
        detected: the detector found this face on this frame (else it was tracked).
        confidence: the track confidence (see the module docs), 0 to 1.
        raw_landmarks: ``[K, 2]`` the network's landmarks before smoothing.
    """

    track_id: int = 0
    detected: bool = False
    confidence: float = 1.0
    raw_landmarks: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self, pixel_centers: bool = False) -> dict[str, object]:
        """``id``, ``detected``, ``confidence``, then :meth:`Face.to_dict`'s fields."""
        return {
            "id": self.track_id,
            "detected": self.detected,
            "confidence": round(float(self.confidence), 3),
            **super().to_dict(pixel_centers),
        }


@dataclass
class _Track:
    id: int
    raw: np.ndarray  # [K, 2] latest network landmarks
    box: Box  # the box they were placed from
    relation: np.ndarray  # (dx, dy, w, h): the detector's box from upright landmarks
    score: float
    smoother: OneEuroFilter | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # (cx, cy, w, h) / frame
    state: np.ndarray = field(default_factory=lambda: np.zeros(4))  # (cx, cy, w, h)
    confidence: float = 1.0
    detections: int = 1
    missed: int = 0
    hidden: int = 0  # frames since the face was last seen (0: visible)
    sure: tuple[int, np.ndarray, np.ndarray] | None = None  # (frame, state, velocity)
    relations: list[np.ndarray] = field(default_factory=list)  # measured on recent detections

    def measured(self, relation: np.ndarray) -> None:
        """Add a detection's relation; the track's is the median of the last ``RELATIONS``
        (robust to a detector box that jumps, as dlib's do between its pyramid scales)."""
        self.relations = [*self.relations[1 - RELATIONS :], relation]
        self.relation = np.median(self.relations, axis=0)


#: Smallest face box a track keeps, pixels.
MIN_SIZE = 8.0
#: Confidence at which a track's motion is trusted for coasting when the face is hidden.
SURE = 0.9
#: Landmarks are placed a second time, from the box they give, when that box overlaps the crop's
#: box less than this (IoU): the crop slipped, on fast motion or a change of size.
SLIPPED_IOU = 0.95
#: A track's box stays where it is unless its landmarks moved it (centre or size) by at least
#: this fraction of its size: a still face keeps one crop, as the detector's box on it does, so
#: sensor noise in the landmarks does not feed back through the box into the next frame's.
HOLD = 0.005
#: A track's box relation is the median over this many of its latest detections.
RELATIONS = 9


#: Keeps a box's centre motion, drops its change of size.
_MOVE = np.array([1.0, 1.0, 0.0, 0.0])


def _predict(tr: _Track) -> np.ndarray:
    """The track's box on the next frame: its centre moved on by its recent motion, its size
    kept (a sudden change of size then lowers the confidence)."""
    return tr.state + tr.velocity * _MOVE


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / (a.width * a.height + b.width * b.height - inter))


def _box(state: np.ndarray) -> Box:
    cx, cy, w, h = (float(v) for v in state)
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _turn(v: np.ndarray, angle: float) -> np.ndarray:
    """``[..., 2]`` vectors turned by ``angle`` radians (image axes: y down)."""
    cos, sin = math.cos(angle), math.sin(angle)
    return v @ np.array([[cos, sin], [-sin, cos]])


class LandmarkTracker:
    """Landmarks on every frame of a video, with stable face ids and smoothing.

    A tracker holds one video's state: use one per stream (and :meth:`reset` between videos);
    it is not meant to be shared between threads.

    Args:
        detector: the landmark detector to use (default: built from ``model``, ``points`` and
            ``face_detector``, with one ONNX Runtime thread: the tracker runs small batches).
        points: 5 or 68, when neither ``detector`` nor ``model`` is given.
        model: a shipped model name or ``.onnx`` path.
        face_detector: face detector name (see :mod:`tcnn.detect`), or ``None`` for the model's.
        detect_every: run the face detector at least every this many frames (1: every frame).
        max_faces: track at most this many faces (the best-scoring new ones); ``None``: all.
        smoothing: One Euro settings, or ``None`` for the raw network landmarks.
        min_confidence: a track below this confidence makes the detector run on the frame.
        match_iou: least IoU between a detection and a track's box to be the same face (for a
            hidden track, or ``1 - distance / size`` from where its motion took it).
        max_missed: a track ends after this many detection frames in a row without its face.
        max_hidden: a face that is lost (low confidence and not detected: occluded, say) is
            kept hidden, moving on its last sure motion, for up to this many frames; found
            again near there by the detector, it keeps its id.
        relation: a fixed box-from-landmarks relation for every track, ``(dx, dy, w, h)`` in
            the face's frame and the landmarks' RMS size (see :meth:`_relation`). ``None`` (the
            default) measures it per track on each detection, from the detector's box and the
            landmarks the model places from it, which keeps a track's boxes in the detector's
            convention and fits that face (a model card's square ``box_from_landmarks`` is a
            median over training faces, for another detector's boxes).
        fps: frame rate assumed when :meth:`update` gets no time.
    """

    def __init__(
        self,
        detector: LandmarkDetector | None = None,
        points: int = 5,
        model: str | None = None,
        face_detector: str | None = None,
        detect_every: int = 10,
        max_faces: int | None = None,
        smoothing: Smoothing | None = DEFAULT_SMOOTHING,
        min_confidence: float = 0.7,
        match_iou: float = 0.3,
        max_missed: int = 2,
        max_hidden: int = 30,
        relation: Sequence[float] | None = None,
        fps: float = 30.0,
    ) -> None:
        if detect_every < 1:
            raise TcnnError(f"detect_every {detect_every}: must be at least 1")
        if max_faces is not None and max_faces < 1:
            raise TcnnError(f"max_faces {max_faces}: must be at least 1")
        if not 0 < match_iou < 1 or not 0 <= min_confidence <= 1:
            raise TcnnError("match_iou must be in (0, 1) and min_confidence in [0, 1]")
        if max_missed < 1 or fps <= 0:
            raise TcnnError("max_missed must be at least 1 and fps positive")
        # One face a call: handing it between ONNX Runtime's threads only costs time here.
        self.detector = detector or LandmarkDetector(model, points, face_detector, threads=1)
        self.detect_every = detect_every
        self.max_faces = max_faces
        self.smoothing = smoothing
        self.min_confidence = min_confidence
        self.match_iou = match_iou
        self.max_missed = max_missed
        self.max_hidden = max_hidden
        self.fps = fps
        self.relation: np.ndarray | None = None
        if relation is not None:
            fixed = np.asarray(relation, np.float64)
            if fixed.shape != (4,):
                raise TcnnError(f"relation {relation}: expected (dx, dy, w, h)")
            self.relation = fixed
        scheme = scheme_for(self.detector.model.points)
        self._eyes = scheme.normalisers[scheme.default_normaliser]
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video); ids start from 0 again."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = 0
        self._since_detect = 0

    # -- geometry -------------------------------------------------------------------------

    def _roll(self, pts: np.ndarray) -> float:
        """The face's in-plane angle (radians) from its eye line."""
        (a, b) = self._eyes
        left, right = pts[list(a)].mean(0), pts[list(b)].mean(0)
        return math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))

    def _pose(self, pts: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The face's own frame: ``(centroid, size, roll)``, with ``size`` the RMS distance of
        the landmarks from their centroid (pixels) and ``roll`` the eye line's angle (radians).

        Both are rotation-invariant; the RMS size also varies least of the measures tried
        against the detector's box as the face turns in plane (the network spreads its points
        a little on a turned face, which the extent of their bounding box magnifies).
        """
        pts = pts.astype(np.float64)
        c = pts.mean(0)
        size = float(np.sqrt(((pts - c) ** 2).sum(1).mean()))
        return c, max(size, 1e-6), self._roll(pts)

    def _state(self, pts: np.ndarray, relation: np.ndarray) -> np.ndarray:
        """``(cx, cy, w, h)`` of the box the detector would give for landmarks ``pts``.

        The relation is that of the upright face (see :meth:`_relation`); the box is that face's
        box turned to the landmarks' roll, as the detector draws it at that roll.
        """
        c, size, angle = self._pose(pts)
        dx, dy, w, h = (float(v) for v in relation)
        at = c + _turn(np.array([dx, dy]) * size, angle)
        cos2, sin2 = math.cos(angle) ** 2, math.sin(angle) ** 2
        return np.array([at[0], at[1], (w * cos2 + h * sin2) * size, (h * cos2 + w * sin2) * size])

    def _relation(self, box: Box, pts: np.ndarray) -> np.ndarray:
        """The relation ``(dx, dy, w, h)`` of a detector box to the landmarks placed from it.

        In units of the landmarks' size (see :meth:`_pose`): the offset of the box centre from
        the landmarks' centroid in the face's own axes (x along the eye line), and the width
        and height of the box the detector would give for the face upright. A face turned in
        plane by ``a`` gets an axis-aligned box about ``w cos²a + h sin²a`` wide and
        ``h cos²a + w sin²a`` high (measured with RetinaFace on turned photos: a tall box widens
        and shortens as the face turns, keeping ``w + h``, and its centre turns with the face);
        that is inverted here.
        """
        c, size, angle = self._pose(pts)
        off = _turn(np.array(box.center) - c, -angle) / size
        total = (box.width + box.height) / size
        diff = (box.width - box.height) / size / max(math.cos(2 * angle), 0.5)
        return np.array([off[0], off[1], (total + diff) / 2, (total - diff) / 2])

    # -- the per-frame step ---------------------------------------------------------------

    def update(self, frame: np.ndarray, time: float | None = None) -> list[TrackedFace]:
        """Faces in the next frame of the video.

        Args:
            frame: ``[H, W, 3]`` uint8 RGB (or anything :func:`tcnn.imaging.load_image` takes).
            time: the frame's time in seconds (default: frame number / ``fps``).

        Returns:
            One :class:`TrackedFace` per visible tracked face, oldest track first; empty when
            none.
        """
        rgb = load_image(frame)
        t = time if time is not None else self._frame / self.fps
        h, w = rgb.shape[:2]
        self._track(rgb, w, h)
        detected: set[int] = set()
        self._since_detect += 1
        unsure = any(tr.hidden or tr.confidence < self.min_confidence for tr in self._tracks)
        if not self._tracks or unsure or self._since_detect >= self.detect_every:
            detected = self._detect(rgb)
            self._since_detect = 0
        self._frame += 1
        return [self._output(tr, t, tr.id in detected) for tr in self._tracks if not tr.hidden]

    def _track(self, rgb: np.ndarray, w: int, h: int) -> None:
        """Move every track to this frame: predict its box, place landmarks, score agreement.

        Hidden tracks (faces not seen lately) coast on their last sure motion.
        """
        for tr in self._tracks:
            if tr.hidden:
                tr.hidden += 1
                tr.state = tr.state + tr.velocity
        seen = [tr for tr in self._tracks if not tr.hidden]
        if seen:
            predicted = [_predict(tr) for tr in seen]
            boxes = [_box(p) for p in predicted]
            pts = self.detector.landmarks(rgb, boxes)
            states = [self._state(p, self._rel(tr)) for p, tr in zip(pts, seen)]
            # The crop slipped (fast motion): place the landmarks again from where they landed.
            slipped = [
                i
                for i, (b, st) in enumerate(zip(boxes, states))
                if min(st[2:]) >= MIN_SIZE and iou(b, _box(st)) < SLIPPED_IOU
            ]
            if slipped:
                redo = self.detector.landmarks(rgb, [_box(states[i]) for i in slipped])
                for i, p in zip(slipped, redo):
                    boxes[i], pts[i] = _box(states[i]), p
                    states[i] = self._state(p, self._rel(seen[i]))
            for tr, box, p, st, pred in zip(seen, boxes, pts, states, predicted):
                # Agreement of motion (predicted vs found) and of crop and landmarks.
                tr.confidence = min(iou(_box(pred), _box(st)), iou(box, _box(st)))
                if np.abs(st - tr.state).max() < HOLD * min(st[2:]):
                    st, tr.velocity = tr.state, np.zeros(4)  # not moved: keep the crop
                else:
                    tr.velocity = 0.5 * tr.velocity + 0.5 * (st - tr.state)
                tr.raw, tr.box, tr.state = p, box, st
                if tr.confidence >= SURE:
                    tr.sure = (self._frame, st, tr.velocity)
        self._hide_duplicates()
        frame_box = Box(0, 0, w, h)
        self._tracks = [
            tr
            for tr in self._tracks
            if min(tr.state[2:]) >= MIN_SIZE
            and _inside(_box(tr.state), frame_box) >= 0.5
            and tr.hidden <= self.max_hidden
        ]

    def _rel(self, tr: _Track) -> np.ndarray:
        return self.relation if self.relation is not None else tr.relation

    def _hide_duplicates(self) -> None:
        """Of two tracks on one face, keep the one whose motion agrees with its prediction; the
        other slid onto a face passing in front of its own, which it hides: it coasts."""
        order = sorted((tr for tr in self._tracks if not tr.hidden), key=lambda tr: -tr.confidence)
        kept: list[_Track] = []
        for tr in order:
            if all(iou(_box(tr.state), _box(k.state)) < 0.5 for k in kept):
                kept.append(tr)
            else:
                self._hide(tr)

    def _detect(self, rgb: np.ndarray) -> set[int]:
        """Run the detector: confirm, re-anchor or end tracks, start new ones; ids detected."""
        found = self.detector.find_faces(rgb)
        # Visible tracks first (each keeps its face), then hidden ones, each best match first.
        pairs = sorted(
            (
                (not tr.hidden, self._similarity(tr, b), ti, di)
                for ti, tr in enumerate(self._tracks)
                for di, (b, _) in enumerate(found)
            ),
            reverse=True,
        )
        track_of: dict[int, int] = {}
        used: set[int] = set()
        for _, overlap, ti, di in pairs:
            if overlap < self.match_iou or ti in track_of or di in used:
                continue
            track_of[ti] = di
            used.add(di)
        reanchor = list(track_of.items())
        for ti, tr in enumerate(self._tracks):
            if ti in track_of or tr.hidden:
                continue
            if tr.confidence < self.min_confidence:
                self._hide(tr)
            elif not self._overlapped(tr):  # a face partly hidden by another is hard to detect
                tr.missed += 1
        kept = [
            tr
            for ti, tr in enumerate(self._tracks)
            if ti in track_of or tr.hidden or tr.missed < self.max_missed
        ]
        new = [
            di
            for di, (b, _) in enumerate(found)
            if di not in used and all(iou(b, _box(tr.state)) < self.match_iou for tr in kept)
        ]
        if self.max_faces is not None:
            new = new[: max(0, self.max_faces - len(kept))]
        boxes = [found[di][0] for _, di in reanchor] + [found[di][0] for di in new]
        pts = self.detector.landmarks(rgb, boxes) if boxes else np.zeros((0, 0, 2))
        for k, (ti, di) in enumerate(reanchor):
            tr = self._tracks[ti]
            box, score = found[di]
            tr.detections += 1
            tr.missed, tr.score = 0, score
            tr.measured(self._relation(box, pts[k]))
            if not tr.hidden and tr.confidence >= self.min_confidence:
                # Confirmed: re-placed from the detector's box (no build-up of crop bias), its
                # motion kept; unless another face overlaps it (the box may be that face's).
                if not self._overlapped(tr):
                    tr.raw, tr.box = pts[k], box
                    tr.state = self._state(pts[k], self._rel(tr))
                continue
            tr.raw, tr.box = pts[k], box
            state = self._state(pts[k], self._rel(tr))
            if tr.hidden:
                tr.smoother = self._smoother()
            # Unsure or hidden: this frame's motion is not the face's; keep its last sure one.
            tr.velocity = tr.sure[2] * _MOVE if tr.sure else np.zeros(4)
            tr.state, tr.hidden, tr.confidence = state, 0, 1.0
            tr.sure = (self._frame, state, tr.velocity)
        detected = {self._tracks[ti].id for ti in track_of}
        for k, di in enumerate(new, start=len(reanchor)):
            box, score = found[di]
            rel = self._relation(box, pts[k])
            tr = _Track(self._next_id, pts[k], box, rel, score, self._smoother(), relations=[rel])
            tr.state = self._state(pts[k], self._rel(tr))
            self._next_id += 1
            kept.append(tr)
            detected.add(tr.id)
        self._tracks = kept
        return detected

    def _similarity(self, tr: _Track, box: Box) -> float:
        """How well a detection matches a track: the IoU of their boxes; for a hidden track
        (whose box is a prediction), also how near the detection is to where its motion took
        it, ``1 - distance / size`` for a box of about the track's size."""
        own = _box(tr.state)
        overlap = iou(own, box)
        if not tr.hidden or not 2 / 3 < box.width / own.width < 3 / 2:
            return overlap
        (x, y), (u, v) = own.center, box.center
        return max(overlap, 1.0 - math.hypot(u - x, v - y) / max(own.width, own.height))

    def _overlapped(self, tr: _Track) -> bool:
        """Whether another visible track's box overlaps this one's."""
        box = _box(tr.state)
        return any(
            o is not tr and not o.hidden and iou(box, _box(o.state)) > 0 for o in self._tracks
        )

    def _hide(self, tr: _Track) -> None:
        """The face is not seen (occluded, or the crop lost it): coast on its last sure motion."""
        frame, state, velocity = tr.sure if tr.sure else (self._frame, tr.state, np.zeros(4))
        velocity = velocity * _MOVE
        tr.hidden, tr.state, tr.velocity = 1, state + velocity * (self._frame - frame), velocity

    def _smoother(self) -> OneEuroFilter | None:
        return OneEuroFilter(self.smoothing) if self.smoothing is not None else None

    def _output(self, tr: _Track, t: float, detected: bool) -> TrackedFace:
        raw = tr.raw.astype(np.float32)
        pts = raw
        if tr.smoother is not None:
            pts = tr.smoother(raw, t, float(np.ptp(raw, axis=0).max()))
        return TrackedFace(tr.box, tr.score, pts, tr.id, detected, tr.confidence, raw)


def _inside(box: Box, frame: Box) -> float:
    """The fraction of ``box``'s area inside ``frame``."""
    w = min(box.right, frame.right) - max(box.left, frame.left)
    h = min(box.bottom, frame.bottom) - max(box.top, frame.top)
    return max(0.0, w) * max(0.0, h) / (box.width * box.height)
