"""Video: landmarks tracked through a video file or a camera, drawn and written.

The modules: :mod:`~tcnn.apps.video.io` (reading and writing frames),
:mod:`~tcnn.apps.video.tracking` (:class:`LandmarkTracker`: faces followed from frame to frame,
ids kept), :mod:`~tcnn.apps.video.smoothing` (the One Euro filter),
:mod:`~tcnn.apps.video.annotate` (:func:`annotate_video`, the loop behind ``tcnn video``).

Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, so the centre of the
top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib pixel indices.

Example:
    >>> from tcnn.apps.video import LandmarkTracker, VideoReader
    >>> tracker = LandmarkTracker(points=5)
    >>> with VideoReader("clip.mp4") as video:
    ...     for frame in video:
    ...         faces = tracker.update(frame.rgb, frame.time)
"""

from tcnn.apps.video.annotate import VideoRun, annotate_video, frame_record
from tcnn.apps.video.io import (
    CONTAINERS,
    JsonlWriter,
    VideoFrame,
    VideoReader,
    VideoSource,
    VideoWriter,
    parse_source,
)
from tcnn.apps.video.smoothing import OneEuroFilter, Smoothing
from tcnn.apps.video.tracking import LandmarkTracker, TrackedFace

__all__ = [
    "CONTAINERS",
    "JsonlWriter",
    "LandmarkTracker",
    "OneEuroFilter",
    "Smoothing",
    "TrackedFace",
    "VideoFrame",
    "VideoReader",
    "VideoRun",
    "VideoSource",
    "VideoWriter",
    "annotate_video",
    "frame_record",
    "parse_source",
]
