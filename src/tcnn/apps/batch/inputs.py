"""A batch job's inputs: folders, text files of paths and Parquet/CSV manifests, checked,
listed as a stream of entries and cut into parts."""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tcnn.errors import TcnnError
from tcnn.pipeline import IMAGE_SUFFIXES, list_images

#: One input: its position in the input stream, the path as the input gives it, and the
#: absolute path to read (relative paths are taken from the current folder).
Entry = tuple[int, str, str]


def import_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise TcnnError("batch jobs write Parquet: pip install 'tcnn[batch]'") from None
    return pyarrow


def check_input(source: str | os.PathLike[str], path_column: str = "path") -> None:
    """Fail early, with a one-line error, on an input that cannot be listed."""
    p = Path(source)
    if not p.exists():
        raise TcnnError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in IMAGE_SUFFIXES:
        return
    if suffix == ".csv":
        with _open_text(p) as f:
            header = next(csv.reader(f), None)
        columns = header or []
    elif suffix in (".parquet", ".pq"):
        pq = import_pyarrow().parquet
        try:
            columns = pq.read_schema(p).names
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise TcnnError(f"{p}: not a Parquet file ({exc})") from None
    else:
        return
    if path_column not in columns:
        listed = ", ".join(columns) or "none"
        raise TcnnError(
            f"{p}: no column {path_column!r} (columns: {listed}); choose one with --path-column"
        )


def iter_entries(
    inputs: Sequence[str | os.PathLike[str]], path_column: str = "path", exclude: Path | None = None
) -> Iterator[Entry]:
    """Every input, streamed: ``(index, path, absolute path)``, in input order.

    A folder is listed recursively (sorted, image suffixes); a ``.csv``/``.parquet`` file is a
    manifest whose ``path_column`` holds the paths; an image file is itself; any other file
    is a text file of paths, one per line. Manifests are read in batches, never whole.
    """
    paths = (p for source in inputs for p in _paths_of(Path(source), path_column, exclude))
    for index, path in enumerate(paths):
        yield index, path, os.path.abspath(path) if path else ""


def _paths_of(p: Path, column: str, exclude: Path | None) -> Iterator[str]:
    suffix = p.suffix.lower()
    if p.is_dir():
        yield from (str(f) for f in list_images([p], exclude=exclude).files)
    elif suffix in IMAGE_SUFFIXES:
        yield str(p)
    elif suffix == ".csv":
        with _open_text(p) as f:
            for row in csv.DictReader(f):
                yield row.get(column) or ""
    elif suffix in (".parquet", ".pq"):
        table_file = import_pyarrow().parquet.ParquetFile(p)
        for batch in table_file.iter_batches(batch_size=4096, columns=[column]):
            yield from (v or "" for v in batch.column(0).to_pylist())
    else:
        with _open_text(p) as f:
            try:
                yield from (s for line in f if (s := line.rstrip("\r\n")))
            except UnicodeDecodeError:
                raise TcnnError(f"{p}: not a UTF-8 text file of paths") from None


def _open_text(p: Path) -> Any:
    try:
        return open(p, encoding="utf-8", newline="")
    except OSError as exc:
        raise TcnnError(f"{p}: cannot read ({exc.strerror or exc})") from None


def input_count(inputs: Sequence[str | os.PathLike[str]]) -> int | None:
    """The number of inputs when it is cheap to know (folders, images, Parquet), else None."""
    total = 0
    for source in map(Path, inputs):
        if source.is_dir():
            total += len(list_images([source]).files)
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            total += 1
        elif source.suffix.lower() in (".parquet", ".pq"):
            total += import_pyarrow().parquet.read_metadata(source).num_rows
        else:
            return None
    return total


def chunks(entries: Iterable[Entry], size: int) -> Iterator[tuple[int, list[Entry]]]:
    """``(part number, entries)`` groups of ``size`` consecutive entries."""
    it = iter(entries)
    for part in itertools.count():
        group = list(itertools.islice(it, size))
        if not group:
            return
        yield part, group
