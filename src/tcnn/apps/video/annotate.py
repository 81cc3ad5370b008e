"""The loop behind ``tcnn video``: frames tracked, drawn and written, one JSON line a frame.

A run that stops on a corrupt or truncated input still finishes the frames it decoded; a run
that fails before the first frame, or is interrupted on a file input, leaves nothing behind.

Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, so the centre of the
top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib pixel indices.

Example:
    >>> from tcnn.apps.video import LandmarkTracker, annotate_video
    >>> run = annotate_video("clip.mp4", LandmarkTracker(points=5), output="faces.mp4")
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tcnn.apps.video.io import JsonlWriter, VideoFrame, VideoReader, VideoSource, VideoWriter
from tcnn.errors import TcnnError

if TYPE_CHECKING:
    from tcnn.apps.video.tracking import LandmarkTracker, TrackedFace


@dataclass
class VideoRun:
    """What :func:`annotate_video` did.

    Attributes:
        frames: frames processed (and written).
        faces: faces over all frames.
        tracks: distinct track ids seen.
        seconds: wall time of the loop.
        outputs: the files written.
        error: a one-line message when the input stopped early (corrupt, truncated), or
            ``None``; the outputs then hold the frames before it.
        interrupted: the run was stopped by Ctrl-C (camera input: the outputs are kept).
    """

    frames: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False


def annotate_video(
    source: VideoSource,
    tracker: LandmarkTracker,
    output: str | os.PathLike[str] | None = None,
    jsonl: str | os.PathLike[str] | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> VideoRun:
    """Track landmarks through a video; write the annotated video and/or one JSON line a frame.

    Args:
        source: a video file or a camera index.
        tracker: a :class:`~tcnn.apps.video.tracking.LandmarkTracker` (fresh, or :meth:`reset`).
        output: annotated video path (``.mp4``, ``.mov``, ``.mkv``), or ``None``.
        jsonl: landmarks path, one line per frame: ``{"frame", "time", "faces": [{"id",
            "detected", "confidence", "box", "score", "landmarks"}]}``, or ``None``.
        max_frames: stop after this many frames (a camera runs until Ctrl-C otherwise).
        progress: show a progress bar with frames/s.

    Raises:
        TcnnError: an unreadable input or unwritable output (nothing is written), or an input
            with no decodable frame.
    """
    from tqdm import tqdm

    from tcnn.draw import draw_faces

    run = VideoRun()
    with VideoReader(source) as reader:
        writers: list[VideoWriter | JsonlWriter] = []
        try:
            if output is not None:
                writers.append(VideoWriter(output, reader.fps, reader.size))
            if jsonl is not None:
                writers.append(JsonlWriter(jsonl))
        except TcnnError:
            for w in writers:
                w.abort()
            raise
        total = min(reader.frames or max_frames or 0, max_frames or sys.maxsize) or None
        bar = tqdm(total=total, desc=Path(reader.name).name, unit="frame", disable=not progress)
        ids: set[int] = set()
        start = time.perf_counter()
        try:
            for frame in reader:
                faces = tracker.update(frame.rgb, frame.time)
                for w in writers:
                    if isinstance(w, VideoWriter):
                        w.write(np.asarray(draw_faces(frame.rgb, faces)))
                    else:
                        w.write(frame_record(frame, faces))
                run.frames += 1
                run.faces += len(faces)
                ids.update(f.track_id for f in faces)
                bar.update()
                if max_frames is not None and run.frames >= max_frames:
                    break
        except TcnnError as exc:
            if run.frames == 0:
                for w in writers:
                    w.abort()
                raise
            run.error = str(exc)
        except KeyboardInterrupt:
            run.interrupted = True
            if not reader.camera:
                for w in writers:
                    w.abort()
                raise
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            bar.close()
        run.seconds = time.perf_counter() - start
        if run.frames == 0:
            for w in writers:
                w.abort()
            raise TcnnError(f"{reader.name}: no video frames to decode")
        run.outputs = [w.close() for w in writers]
        run.tracks = len(ids)
    return run


def frame_record(frame: VideoFrame, faces: list[TrackedFace]) -> dict[str, Any]:
    """The JSON line for one frame: index, time (s) and each face's ``to_dict()``."""
    return {
        "frame": frame.index,
        "time": round(frame.time, 4),
        "faces": [f.to_dict() for f in faces],
    }
