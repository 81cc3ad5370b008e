"""Writing files so that readers never see half of one: a temporary file beside the target,
renamed onto it when complete. Every file tcnn writes goes through :func:`atomic_path`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from tcnn.errors import TcnnError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def temp_path(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that is renamed onto it when complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends.

    Readers never see a half-written file: on an error or an interrupt (Ctrl-C) inside the
    block the temporary file is removed and ``path`` is left as it was. An ``OSError`` (a full
    disk, a read-only folder) becomes a one-line :class:`~tcnn.errors.TcnnError`.

    Example:
        >>> with atomic_path("model.onnx") as tmp:
        ...     onnx.save(model, str(tmp))
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise TcnnError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


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
