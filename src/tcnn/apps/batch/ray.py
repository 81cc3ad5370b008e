"""The batch job on Ray Data: the same rows as the local run, on one machine or a cluster.

The inputs are streamed into a manifest (``OUT/_manifest/*.parquet``: index, path, absolute
path), which Ray reads in blocks of one part each; ``map_batches`` runs
:class:`~tcnn.apps.batch.worker.PartWorker` in a pool of actors (each loads the ONNX model
once, one CPU each) and Ray writes the rows as Parquet into ``OUT``. On a cluster every node
needs tcnn installed and the inputs and ``OUT`` at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tcnn.apps.batch.inputs import Entry, chunks
from tcnn.apps.batch.worker import Options, PartWorker, Summary, count_rows, write_empty
from tcnn.errors import TcnnError

#: CPUs Ray reserves for a read or write task (they wait on files, not on the CPU).
IO_CPUS = 0.05


class RayParts:
    """A Ray actor: loads the model once, turns batches of manifest rows into rows."""

    def __init__(self, options: Options, out: str) -> None:
        self.worker = PartWorker(options, out)

    def __call__(self, batch: Any) -> Any:
        entries = zip(*(batch.column(c).to_pylist() for c in ("index", "path", "file")))
        return self.worker.rows(list(entries))


def write_manifest(entries: Iterator[Entry], folder: Path, rows: int) -> list[Path]:
    """Stream ``entries`` into Parquet files of ``rows`` rows each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(exist_ok=True)
    names = pa.schema([("index", pa.int64()), ("path", pa.string()), ("file", pa.string())])
    files = []
    for n, group in chunks(entries, rows):
        columns = [list(c) for c in zip(*group)]
        path = folder / f"manifest-{n:06d}.parquet"
        pq.write_table(pa.table(columns, schema=names), path)
        files.append(path)
    return files


def run_ray(
    entries: Iterator[Entry],
    out: Path,
    options: Options,
    workers: int | None,
    address: str | None,
    progress: bool = True,
) -> Summary:
    """Run the job on Ray: a local runtime on loopback (``address=None``) or a cluster.

    Args:
        workers: actors in the pool, one CPU each (default: one per core, less one on a
            cluster for Ray's own reading and writing tasks).
        address: a running cluster's ``host:port`` (``ray start --head`` prints it).
    """
    if not address or address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        # A local runtime, or a head on loopback, stays on loopback (Ray otherwise swaps
        # 127.0.0.1 for the machine's address).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise TcnnError("--ray needs Ray Data: pip install 'tcnn[ray]'") from None
    import pyarrow.parquet as pq

    manifest = write_manifest(entries, out / "_manifest", options.part_size * 64)
    summary = Summary(out)
    if not manifest:
        write_empty(out)
        shutil.rmtree(out / "_manifest")
        return summary
    local_cpus = len(os.sched_getaffinity(0))
    started = _start(ray, address, workers or local_cpus)
    if workers is None:
        workers = local_cpus if not address else max(1, int(ray.cluster_resources()["CPU"]) - 1)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = progress
        # Reading and writing take a sliver of a CPU: the actors hold one each.
        files = [str(p) for p in manifest]
        ds = ray.data.read_parquet(files, num_cpus=IO_CPUS)
        # A block is what one actor works on: one part each, or a single actor gets them all.
        ds = ds.repartition(target_num_rows_per_block=options.part_size)
        ds = ds.map_batches(
            RayParts,
            fn_constructor_args=(options, str(out)),
            batch_size=options.part_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        ds.write_parquet(str(out), ray_remote_args={"num_cpus": IO_CPUS})
    except Exception as exc:  # Ray wraps worker errors in its own types
        raise TcnnError(f"Ray job failed: {str(exc).splitlines()[0]}") from None
    finally:
        if started:
            ray.shutdown()
    shutil.rmtree(out / "_manifest")
    summary.add(count_rows(pq.read_table(out, columns=["status", "face"])))
    summary.parts = len(list(out.glob("*.parquet")))
    return summary


def _start(ray: Any, address: str | None, workers: int) -> bool:
    """Connect to ``address`` or start a local runtime; True when this call started it."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # One logical CPU more than actors, for Ray's own listing, reading and writing.
            ray.init(
                address="local",
                num_cpus=workers + 1,
                include_dashboard=False,
                object_store_memory=512 * 1024 * 1024,
                **quiet,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local runtime"
        raise TcnnError(f"Ray: cannot start or reach {where} ({exc})") from None
    return True
