"""Batch jobs: millions of images in, a resumable Parquet dataset out.

:func:`run` reads a folder (recursively), a text file of paths or a Parquet/CSV manifest,
splits the inputs into parts of ``part_size`` consecutive entries and hands each part to a
worker process: one process on one core, which loads the models once and runs
:class:`tcnn.pipeline.Pipeline` (one thread reads and detects while the main thread places
landmarks, each network on one ONNX Runtime thread), so ``N`` workers use ``N`` cores. A
worker writes its part as ``OUT/part-NNNNNNNN.parquet`` (a temp file, fsync, then a rename),
so a part file is either complete or absent: a run killed at any point resumes
(``resume=True``) by redoing exactly the parts that have no file. With ``ray=...`` the same
job runs on Ray Data (:mod:`tcnn.apps.batch.ray`) and gives the same rows.

One row per face, per image without a face and per failed input (schema: :func:`schema`).
Boxes and landmarks are in continuous pixels: pixel ``i`` covers ``[i, i + 1)``.

The modules: :mod:`~tcnn.apps.batch.inputs` (input checks, listing, parts),
:mod:`~tcnn.apps.batch.worker` (the rows, the worker, part files), :mod:`~tcnn.apps.batch.job`
(:func:`run`: the job file, resume, local worker processes), :mod:`~tcnn.apps.batch.ray`.

Example:
    >>> from tcnn.apps.batch import run
    >>> summary = run("photos/", "faces.parquet", align=112)
    >>> import pandas as pd; rows = pd.read_parquet("faces.parquet")
"""

from tcnn.apps.batch.inputs import Entry, check_input, chunks, input_count, iter_entries
from tcnn.apps.batch.job import JOB_FILE, done_parts, run
from tcnn.apps.batch.worker import (
    COUNTS,
    CROPS,
    Options,
    PartWorker,
    Summary,
    count_rows,
    failures,
    schema,
    write_part,
)

__all__ = [
    "COUNTS",
    "CROPS",
    "JOB_FILE",
    "Entry",
    "Options",
    "PartWorker",
    "Summary",
    "check_input",
    "chunks",
    "count_rows",
    "done_parts",
    "failures",
    "input_count",
    "iter_entries",
    "run",
    "schema",
    "write_part",
]
