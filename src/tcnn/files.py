"""Writing files so that readers never see half of one: a temporary file beside the target,
renamed onto it when complete.

Every file tcnn writes goes through one of two doors on the same mechanism (:func:`temp_path`
to write to, :func:`publish` to rename it into place): :func:`atomic_path` for a file written
in one go, :class:`StreamFile` for one written piece by piece. A writer whose library opens
the file itself (a video encoder) writes to :func:`temp_path` and calls :func:`publish`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from PIL import Image

from tcnn.errors import TcnnError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def temp_path(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that is renamed onto it when complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def publish(tmp: Path, path: Path, fsync: bool = False) -> Path:
    """Rename the finished temporary file ``tmp`` onto ``path``.

    Args:
        fsync: make the file durable first, and its folder entry after the rename, so that
            ``path`` exists complete after a crash or power loss once this returns.

    Raises:
        TcnnError: the rename (or a sync) failed; ``tmp`` is removed, ``path`` left as it was.
    """
    try:
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    return path


def write_error(path: Path, exc: OSError) -> TcnnError:
    """The one-line error for a file that could not be written."""
    return TcnnError(f"{path}: cannot write ({exc.strerror or exc})")


def make_durable(paths: Iterable[Path]) -> None:
    """fsync files already in place, then each of their folders once (their entries), so that
    many small files cost one folder sync instead of one each.

    Raises:
        TcnnError: a sync failed.
    """
    paths = list(paths)
    for path in [*paths, *dict.fromkeys(p.parent for p in paths)]:
        try:
            _fsync(path)
        except OSError as exc:
            raise write_error(path, exc) from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends.

    Readers never see a half-written file: on an error or an interrupt (Ctrl-C) inside the
    block the temporary file is removed and ``path`` is left as it was. An ``OSError`` (a full
    disk, a read-only folder) becomes a one-line :class:`~tcnn.errors.TcnnError`.

    Args:
        fsync: see :func:`publish` (a batch part must be durable before it counts as done).

    Example:
        >>> with atomic_path("model.onnx") as tmp:
        ...     onnx.save(model, str(tmp))
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        publish(tmp, path, fsync)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


class StreamFile:
    """A file written piece by piece into :func:`temp_path`, renamed by :meth:`commit`.

    A write error (a full disk) or :meth:`abort` removes the temp file; ``path`` is then left
    as it was. A write error becomes a one-line :class:`~tcnn.errors.TcnnError` naming ``path``.
    """

    def __init__(self, path: str | Path, binary: bool = False) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        try:
            if binary:
                self._file: IO[Any] = open(self.tmp, "wb")  # noqa: SIM115 (closed in commit)
            else:
                self._file = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise write_error(self.path, exc) from None

    def write(self, data: str | bytes, flush: bool = False) -> None:
        """Append ``data`` (``flush``: hand it to the operating system now)."""
        try:
            self._file.write(data)
            if flush:
                self._file.flush()
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None

    def commit(self) -> Path:
        """Close the temp file and rename it onto ``path``."""
        try:
            self._file.close()
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        return publish(self.tmp, self.path)

    def abort(self) -> None:
        """Close and remove the temp file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` atomically; the format follows the suffix."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt)
    return path


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib :class:`~matplotlib.figure.Figure` as PNG atomically.

    Make the figure with ``matplotlib.figure.Figure()`` (not ``pyplot``): it needs no backend
    and no global state, and is freed with its last reference.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


def ensure_dir(path: str | Path) -> Path:
    """Create an output folder, or fail with a one-line error."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TcnnError(f"{path}: cannot create output folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise TcnnError(f"{path}: output folder is not writable")
    return path


def cache_dir() -> Path:
    """Where tcnn caches detections and pseudo-labels: ``$TCNN_CACHE`` or ``~/.cache/tcnn``."""
    base = os.environ.get("TCNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tcnn"
    )
    return Path(base)
