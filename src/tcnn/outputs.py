"""Result files, written atomically (a temp file in the same folder, then a rename)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from tcnn.errors import TcnnError


def _atomic(path: Path, write: Any) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TcnnError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(text))


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` atomically; the format follows the suffix."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    return _atomic(path, lambda tmp: image.save(tmp, format=fmt))


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        return _atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


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
