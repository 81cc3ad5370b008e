"""Result files, written atomically (a temp file in the same folder, then a rename)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from tcnn.errors import TcnnError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
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


def records_csv(records: Sequence[dict[str, Any]]) -> str:
    """One row per face: file, face index, box, score, then x0, y0, x1, y1, ..."""
    points = max((len(r["landmarks"]) for r in records), default=0)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["file", "face", "left", "top", "right", "bottom", "score"]
        + [f"{a}{i}" for i in range(points) for a in "xy"]
    )
    for r in records:
        score = "" if r["score"] is None else r["score"]
        w.writerow(
            [r["file"], r["face"], *r["box"], score] + [v for xy in r["landmarks"] for v in xy]
        )
    return buf.getvalue()


def records_json(records: Sequence[dict[str, Any]], **meta: Any) -> str:
    return json.dumps({**meta, "faces": list(records)}, indent=1) + "\n"
