"""Video in and out: frames read and written with PyAV, outputs renamed into place when done.

Frames are read and written with PyAV (the ``av`` package, whose wheels ship FFmpeg's codecs:
``pip install 'tcnn[video]'``); nothing is downloaded at run time. Outputs are written under a
temporary name beside them (:func:`tcnn.files.temp_path`) and renamed when they are finished
(:func:`tcnn.files.publish`), so a file under the name asked for is always complete.

Example:
    >>> with VideoReader("clip.mp4") as video:
    ...     out = VideoWriter("copy.mp4", video.fps, video.size)
    ...     for frame in video:
    ...         out.write(frame.rgb)
    ...     out.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.errors import TcnnError
from tcnn.files import StreamFile, publish, temp_path
from tcnn.imaging import check_file

#: Output containers by suffix; all hold H.264 (libx264, shipped in PyAV's wheels).
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

VideoSource = str | os.PathLike[str] | int


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise TcnnError("video needs the package 'av' (pip install 'tcnn[video]')") from None
    return av


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based position in the stream.
        time: presentation time in seconds from the stream's start.
        rgb: ``[H, W, 3]`` uint8 RGB.
    """

    index: int
    time: float
    rgb: np.ndarray = field(repr=False)


def parse_source(text: str) -> VideoSource:
    """A command-line INPUT: a camera index when it is a number and no such file exists."""
    if text.isdigit() and not Path(text).exists():
        return int(text)
    return text


class VideoReader:
    """The frames of a video file or a camera, decoded in order.

    Args:
        source: a video file, or a camera index (``/dev/videoN`` on Linux, AVFoundation on
            macOS).

    Attributes:
        name: the file path, or ``camera N``.
        fps: the stream's average frame rate (30 when the stream does not say).
        size: ``(width, height)`` in pixels.
        frames: the frame count the container declares, or ``None`` (cameras, some formats).

    Raises:
        TcnnError: a missing, empty or unreadable file, a file without a video stream, or a
            camera that does not exist; iterating raises it on a corrupt or truncated stream,
            after yielding the frames decoded before the damage.
    """

    def __init__(self, source: VideoSource) -> None:
        av = _import_av()
        self._av = av
        if isinstance(source, int):
            self.name = f"camera {source}"
            self.camera = True
            self._container = _open_camera(av, source)
        else:
            self.name = str(source)
            self.camera = False
            path = check_file(source, "a video")
            try:
                self._container = av.open(str(path))
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise TcnnError(f"{path}: not a video file FFmpeg can read ({_why(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise TcnnError(f"{self.name}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        self.size: tuple[int, int] = (int(ctx.width), int(ctx.height))
        rate = self._stream.average_rate
        self.fps: float = float(rate) if rate else 30.0
        self.frames: int | None = int(self._stream.frames) or None
        duration = self._container.duration  # microseconds, or None
        self._duration = duration / 1e6 if duration and not self.camera else None

    def __iter__(self) -> Iterator[VideoFrame]:
        index, last = 0, 0.0
        try:
            for frame in self._container.decode(self._stream):
                last = frame.time if frame.time is not None else index / self.fps
                yield VideoFrame(index, float(last), frame.to_ndarray(format="rgb24"))
                index += 1
        except (self._av.error.FFmpegError, OSError, ValueError) as exc:
            raise TcnnError(
                f"{self.name}: corrupt video data after frame {index} ({_why(exc)})"
            ) from None
        if self.frames is not None and index < self.frames:
            raise TcnnError(
                f"{self.name}: truncated: {index} of the {self.frames} frames it declares"
            )
        if self.frames is None and self._duration and last < self._duration - 2.5 / self.fps:
            raise TcnnError(
                f"{self.name}: truncated: frames end at {last:.2f} s of {self._duration:.2f} s"
            )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_camera(av: Any, index: int) -> Any:
    if sys.platform.startswith("linux"):
        device, fmt = f"/dev/video{index}", "v4l2"
        if not Path(device).exists():
            raise TcnnError(f"camera {index}: no such device ({device} does not exist)")
    elif sys.platform == "darwin":
        device, fmt = str(index), "avfoundation"
    else:
        raise TcnnError(f"camera {index}: cameras are read on Linux and macOS only; pass a file")
    try:
        return av.open(device, format=fmt)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise TcnnError(f"camera {index}: cannot open {device} ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    """An FFmpeg/OS error's reason on one line."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


class VideoWriter:
    """Frames to an H.264 video file, renamed into place by :meth:`close`.

    Args:
        path: ``.mp4``, ``.mov`` or ``.mkv``.
        fps: frame rate.
        size: ``(width, height)``; odd sizes are padded by one pixel (H.264 needs even sizes).
        crf: H.264 quality (lower is better; 18-23 is visually near lossless to good).

    Raises:
        TcnnError: an unknown suffix or an unwritable path, before anything is written.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], crf: int = 20
    ) -> None:
        av = _import_av()
        self.path = Path(path)
        fmt = CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            known = ", ".join(CONTAINERS)
            raise TcnnError(f"{self.path}: unknown video suffix (use {known})")
        self._tmp = temp_path(self.path)
        options = {"movflags": "faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self._container = av.open(str(self._tmp), "w", format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise TcnnError(f"{self.path}: cannot write ({_why(exc)})") from None
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = (size[0] + 1) // 2 * 2, (size[1] + 1) // 2 * 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._av = av
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one ``[H, W, 3]`` uint8 RGB frame of the writer's size."""
        h, w = rgb.shape[:2]
        pad_h, pad_w = self._stream.height - h, self._stream.width - w
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (self._av.error.FFmpegError, OSError) as exc:
            raise TcnnError(f"{self.path}: cannot write ({_why(exc)})") from None
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and rename it into place."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (self._av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise TcnnError(f"{self.path}: cannot write ({_why(exc)})") from None
        return publish(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        with contextlib.suppress(Exception):  # the file is discarded whatever went wrong
            self._container.close()
        self._tmp.unlink(missing_ok=True)


class JsonlWriter:
    """One JSON object per line, renamed into place by :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = StreamFile(self.path)

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> Path:
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()
