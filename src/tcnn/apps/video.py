"""Video in and out, and the loop behind ``tcnn video``.

Frames are read and written with PyAV (the ``av`` package, whose wheels ship FFmpeg's codecs:
``pip install 'tcnn[video]'``); nothing is downloaded at run time. Outputs are written under a
temporary name and renamed when they are finished, so a file under the name asked for is always
complete: a run that stops on a corrupt or truncated input still finishes the frames it decoded,
and a run that fails before or is interrupted on a file input leaves nothing behind.

Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, so the centre of the
top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib pixel indices.

Example:
    >>> from tcnn.apps.tracking import LandmarkTracker
    >>> from tcnn.apps.video import VideoReader
    >>> tracker = LandmarkTracker(points=5)
    >>> with VideoReader("clip.mp4") as video:
    ...     for frame in video:
    ...         faces = tracker.update(frame.rgb, frame.time)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from tcnn.errors import TcnnError
from tcnn.imaging import check_file

if TYPE_CHECKING:
    from tcnn.apps.tracking import LandmarkTracker, TrackedFace

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


def _staging(path: Path) -> Path:
    """Where ``path`` is written before it is finished (same folder, hidden name)."""
    return path.with_name(f".{path.name}.tmp")


def _publish(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TcnnError(f"{path}: cannot write ({exc.strerror or exc})") from None


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
        self._tmp = _staging(self.path)
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
        _publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        with contextlib.suppress(Exception):  # the file is discarded whatever went wrong
            self._container.close()
        self._tmp.unlink(missing_ok=True)


class JsonlWriter:
    """One JSON object per line, renamed into place by :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp = _staging(self.path)
        try:
            self._file: TextIO = self._tmp.open("w")
        except OSError as exc:
            raise TcnnError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise TcnnError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def close(self) -> Path:
        try:
            self._file.close()
        except OSError as exc:
            self.abort()
            raise TcnnError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        _publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


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
        tracker: a :class:`tcnn.apps.tracking.LandmarkTracker` (fresh, or :meth:`reset`).
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
