"""Many inputs in, one result per input out: the loop behind every entry point.

``tcnn detect``, ``tcnn demo``, the web service, video and batch jobs all call
:meth:`Pipeline.run`. It reads and detects in worker threads, batches faces across images
for the landmark network, keeps a bounded number of images in memory whatever the number of
inputs, and yields results in input order. A bad input yields a result with ``error`` set; it
never stops the stream.

Coordinates are continuous pixels: pixel ``i`` covers ``[i, i + 1)``, so the centre of the
top-left pixel is ``(0.5, 0.5)``. Subtract 0.5 for OpenCV/dlib pixel indices.

Example:
    >>> from tcnn.pipeline import Pipeline
    >>> for result in Pipeline().run(["a.jpg", "b.jpg"]):
    ...     print(result.source, result.error or len(result.faces))
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.imaging import ImageLike, load_image
from tcnn.predictor import BoxLike, LandmarkDetector
from tcnn.types import Box, Face


@dataclass(frozen=True)
class Item:
    """One input with optional known face boxes (which skip detection) and a name.

    Attributes:
        image: a path, a PIL image or an RGB numpy array.
        boxes: face boxes ``(left, top, right, bottom)`` in continuous pixels, or ``None``.
        name: what results call this input (default: the path, or ``<array N>``).
    """

    image: ImageLike
    boxes: Sequence[BoxLike] | None = None
    name: str | None = None


@dataclass(frozen=True, eq=False)
class Result:
    """The outcome for one input.

    Attributes:
        index: the input's position in the stream (0-based).
        source: the input's name: its path, or ``<array N>`` / ``<image N>``.
        faces: the faces found, in detection order; empty on error or when there is none.
        error: a one-line message naming the input and the cause, or ``None``.
        size: ``(width, height)`` of the image, or ``None`` when it could not be read.
        image: the decoded ``[H, W, 3]`` uint8 RGB image when the pipeline keeps images.
    """

    index: int
    source: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    size: tuple[int, int] | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Loaded:
    index: int
    source: str
    rgb: np.ndarray | None
    found: list[tuple[Box, float]]
    error: str | None


def source_name(image: ImageLike, index: int) -> str:
    """What results call an input: its path, or ``<array N>`` / ``<image N>``."""
    if isinstance(image, str | os.PathLike):
        return str(image)
    if isinstance(image, np.ndarray):
        return f"<array {index}>"
    if isinstance(image, Image.Image):
        name = getattr(image, "filename", "")
        return str(name) if name else f"<image {index}>"
    return f"<input {index}>"


class Pipeline:
    """A :class:`LandmarkDetector` run over a stream of inputs.

    Safe to share between threads: each :meth:`run` call has its own workers, and the
    detector builds one face detector per thread.

    Args:
        detector: the landmark detector (default: ``LandmarkDetector()``).
        workers: threads that read and detect images (default: one per core, at most 4).
        batch_faces: faces per landmark-network batch across images.
        max_pending: images held in memory at most (read, detected, awaiting landmarks).
        keep_images: put each decoded image on its result (for drawing).
    """

    def __init__(
        self,
        detector: LandmarkDetector | None = None,
        workers: int | None = None,
        batch_faces: int = 64,
        max_pending: int = 32,
        keep_images: bool = False,
    ) -> None:
        if workers is not None and workers < 1:
            raise TcnnError(f"workers {workers}: must be at least 1")
        if batch_faces < 1 or max_pending < 1:
            raise TcnnError("batch_faces and max_pending must be at least 1")
        self.detector = detector if detector is not None else LandmarkDetector()
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.batch_faces = batch_faces
        self.max_pending = max_pending
        self.keep_images = keep_images

    def run(self, inputs: Iterable[ImageLike | Item]) -> Iterator[Result]:
        """One :class:`Result` per input, in input order, as soon as it is ready.

        Inputs are read lazily: a generator of a million paths is fine.
        """
        with ThreadPoolExecutor(self.workers, thread_name_prefix="tcnn-read") as pool:
            window: deque[Future[_Loaded]] = deque()
            pending: list[_Loaded] = []
            stream = enumerate(inputs)
            try:
                while True:
                    while len(window) < self.workers * 2 and self._feed(pool, stream, window):
                        pass
                    if not window:
                        break
                    pending.append(window.popleft().result())
                    faces = sum(len(p.found) for p in pending)
                    if faces >= self.batch_faces or len(pending) >= self.max_pending:
                        yield from self._place_pending(pending)
                        pending = []
                yield from self._place_pending(pending)
            finally:
                for f in window:
                    f.cancel()

    def _feed(
        self,
        pool: ThreadPoolExecutor,
        stream: Iterator[tuple[int, ImageLike | Item]],
        window: deque[Future[_Loaded]],
    ) -> bool:
        nxt = next(stream, None)
        if nxt is None:
            return False
        window.append(pool.submit(self._load, *nxt))
        return True

    def _load(self, index: int, entry: ImageLike | Item) -> _Loaded:
        item = entry if isinstance(entry, Item) else Item(entry)
        source = item.name or source_name(item.image, index)
        try:
            rgb = load_image(item.image)
            found = self.detector.face_boxes(rgb, item.boxes)
        except TcnnError as exc:
            return _Loaded(index, source, None, [], _named(str(exc), source))
        except MemoryError:
            return _Loaded(index, source, None, [], f"{source}: out of memory reading the image")
        return _Loaded(index, source, rgb, found, None)

    def _place_pending(self, pending: list[_Loaded]) -> Iterator[Result]:
        """Landmarks of every face of ``pending`` in one batch, then their results in order."""
        items = [(p.rgb, b) for p in pending if p.rgb is not None for b, _ in p.found]
        points = self.detector.landmarks_batch(items) if items else np.zeros((0, 0, 2))
        at = 0
        for p in pending:
            if p.rgb is None:
                yield Result(p.index, p.source, error=p.error)
                continue
            n = len(p.found)
            faces = [Face(b, s, pts) for (b, s), pts in zip(p.found, points[at : at + n])]
            at += n
            h, w = p.rgb.shape[:2]
            image = p.rgb if self.keep_images else None
            yield Result(p.index, p.source, faces, None, (w, h), image)


def _named(message: str, source: str) -> str:
    """``message`` starting with the input's name (path errors already do)."""
    return message if message.startswith(source) else f"{source}: {message}"


IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


@dataclass
class FileList:
    """Image files from paths and folders, each once, with what was passed over.

    Attributes:
        files: image files named directly or found (recursively, sorted) in named folders,
            each file once (by resolved path) in first-seen order.
        skipped: files in the folders that are not images by their suffix.
        duplicates: files named more than once (counted once).
        results: what a named folder held of tcnn's own results and was not read: its
            subfolders that hold a result (:func:`is_result_folder`), and the drawings
            (``*.landmarks.jpg``/``.png``) in a named folder that holds one itself.
    """

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)


#: The files that mark a folder as a tcnn result, and how tcnn begins each one: the
#: landmarks file of ``tcnn detect`` and ``tcnn demo`` (JSON or CSV) and the job file of
#: ``tcnn batch`` (a Parquet dataset). Checked by content, so that a user's own file of the
#: same name does not hide a folder.
RESULT_MARKS: dict[str, bytes] = {
    "landmarks.json": b'{\n "coordinates": ',
    "landmarks.csv": b"# coordinates: ",
    "_job.json": b'{\n "inputs": ',
}

#: The drawings ``tcnn detect --draw`` and ``tcnn demo`` write beside their landmarks file.
DRAWING_SUFFIXES = (".landmarks.jpg", ".landmarks.png")


def _temp_of(name: str) -> str | None:
    """The file whose temp file ``name`` is while a run writes it (``.NAME.PID.tmp``)."""
    if name.startswith(".") and name.endswith(".tmp"):
        base, _, pid = name[1:-4].rpartition(".")
        if pid.isdigit():
            return base
    return None


def is_result_folder(folder: str | os.PathLike[str], names: Iterable[str] | None = None) -> bool:
    """Whether ``folder`` holds a tcnn result (:data:`RESULT_MARKS`), finished or being written
    (its temp file ``.landmarks.json.PID.tmp``, say).

    Args:
        names: the folder's file names when the caller has them (saves listing it again).
    """
    folder = Path(folder)
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return False
    for name in names:
        if _temp_of(name) in RESULT_MARKS:
            return True  # a run writing it now: its first bytes may not be on disk yet
        head = RESULT_MARKS.get(name)
        if head is None:
            continue
        try:
            with open(folder / name, "rb") as f:
                if f.read(len(head)) == head:
                    return True
        except OSError:  # removed meanwhile (a temp file renamed), or unreadable
            continue
    return False


def _walk(root: Path, out: FileList, exclude: Path | None) -> list[Path]:
    """Every file under ``root`` (symlinked folders not followed), sorted as ``rglob`` sorts,
    but none in the folder ``exclude`` (resolved); subfolders that hold a tcnn result are passed
    over (named in ``out.results``), and so are the drawings in ``root`` when ``root`` holds a
    result itself."""
    found: list[Path] = []
    passed: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and here.resolve() == exclude:
            dirnames.clear()  # the run's own output folder: silently
            continue
        if here != root and is_result_folder(here, filenames):
            passed.append(here)
            dirnames.clear()
            continue
        drawings = here == root and is_result_folder(here, filenames)
        for name in filenames:
            if drawings and name.lower().endswith(DRAWING_SUFFIXES):
                passed.append(here / name)
            else:
                found.append(here / name)
    out.results += sorted(passed)
    found.sort()
    return found


def list_images(paths: Iterable[str | os.PathLike[str]], exclude: Path | None = None) -> FileList:
    """Expand files and folders into image files.

    A folder is listed recursively, passing over tcnn's own results in it (an earlier run's
    output folder, its drawings): see :attr:`FileList.results`.

    Args:
        exclude: a folder whose contents are never listed (an output folder inside the input).
    """
    out = FileList()
    seen: set[Path] = set()
    skip_dir = exclude.resolve() if exclude is not None else None

    def add(f: Path) -> None:
        key = f.resolve()
        if key in seen:
            out.duplicates.append(f)
            return
        seen.add(key)
        out.files.append(f)

    for p in map(Path, paths):
        if not p.is_dir():
            add(p)
            continue
        for f in _walk(p, out, skip_dir):
            if not f.is_file():
                continue
            if skip_dir is not None and skip_dir in f.resolve().parents:
                continue
            if f.suffix.lower() in IMAGE_SUFFIXES:
                add(f)
            else:
                out.skipped.append(f)
    return out
