"""tcnn batch: the same rows from 1 and 2 workers and Ray, kill -9 and resume, bad input."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import os
import random
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tcnn.apps.batch import Options, PartWorker, run, schema
from tcnn.apps.cli import main
from tcnn.errors import TcnnError
from tcnn.registry import DEFAULTS

pq = pytest.importorskip("pyarrow.parquet")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """12 real photos (the astronaut at several scales, mirrored, as JPEG and PNG, in
    subfolders), 2 without a face, a corrupt and an empty file: 16 files."""
    root = tmp_path_factory.mktemp("batch-in")
    img = Image.fromarray(astronaut)
    for i, size in enumerate((200, 256, 320, 384, 448, 512)):
        for mirror in (False, True):
            sub = root / f"set{i % 3}"
            sub.mkdir(exist_ok=True)
            v = img.resize((size, size))
            v = v.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirror else v
            v.save(sub / f"astro-{size}-{int(mirror)}.{'png' if i % 2 else 'jpg'}")
    img.crop((300, 0, 512, 90)).save(root / "sky.png")  # no face
    Image.new("RGB", (64, 48), (90, 120, 200)).save(root / "blue.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    return root


def rows(out: Path) -> list[dict[str, Any]]:
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == schema()
    order = [("index", "ascending"), ("face", "ascending")]
    return table.sort_by(order).to_pylist()


@pytest.fixture(scope="module")
def reference(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ref") / "out"
    summary = run(photos, out, workers=1, part_size=4, align=48, progress=False)
    assert (summary.files, summary.failed, summary.no_face) == (16, 2, 2)
    assert summary.faces >= 12 and summary.parts == 4
    return rows(out)


@pytest.mark.slow
def test_rows_one_per_face_no_face_and_failure(reference: list[dict[str, Any]]) -> None:
    assert sorted({r["index"] for r in reference}) == list(range(16))
    failed = {Path(r["path"]).name: r["error"] for r in reference if r["status"] == "failed"}
    assert set(failed) == {"corrupt.jpg", "empty.png"}
    assert all(name in error for name, error in failed.items())
    no_face = [r for r in reference if r["status"] == "no_face"]
    assert {Path(r["path"]).name for r in no_face} == {"sky.png", "blue.png"}
    assert all(r["width"] and r["landmarks"] is None for r in no_face)
    faces = [r for r in reference if r["status"] == "face"]
    for r in faces:
        assert len(r["landmarks"]) == 10 and r["model"] == DEFAULTS[5]
        assert r["detector"] == "retinaface-int8"  # the detector the default model's card names
        assert r["left"] < r["landmarks"][0] < r["right"]  # left eye x inside the box
    one = next(r for r in faces if r["path"].endswith("astro-512-0.png"))
    assert one["width"] == one["height"] == 512


@pytest.mark.slow
def test_two_workers_same_rows_and_crops(
    photos: Path, reference: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    code = main(["batch", str(photos), "-o", str(out), "--workers", "2", "--part-size", "4"])
    printed = capsys.readouterr()
    assert code == 1 and "16 file(s)" in printed.out and "2 failed" in printed.out  # as detect
    errors = [line for line in printed.err.splitlines() if line.startswith("failed: ")]
    assert [Path(e.split(": ")[1]).name for e in errors] == ["corrupt.jpg", "empty.png"]
    assert f"2 input(s) failed: the rows with status 'failed' in {out}" in printed.err
    assert rows(out) == [{**r, "crop": None} for r in reference]
    out2 = tmp_path / "aligned"
    run(photos, out2, workers=2, part_size=4, align=48, progress=False)
    got = rows(out2)
    assert got == reference
    crops = [r["crop"] for r in got if r["status"] == "face"]
    assert all(c and Image.open(out2 / c).size == (48, 48) for c in crops)


@pytest.mark.slow
def test_ray_local_same_rows(photos: Path, reference: list[dict[str, Any]], tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    summary = run(photos, tmp_path / "out", workers=2, part_size=4, align=48, ray=True)
    assert (summary.files, summary.faces) == (16, sum(r["status"] == "face" for r in reference))
    assert rows(tmp_path / "out") == reference


def test_a_worker_holds_one_core_by_default(tmp_path: Path) -> None:
    """One reading thread and one ONNX Runtime thread per network: N workers use N cores."""
    assert Options().threads == 1
    for n in (1, 2):
        worker = PartWorker(Options(threads=n), tmp_path)
        lm = worker.pipeline.detector
        assert worker.pipeline.workers == n
        sessions = (lm.model.session, lm.face_finder()._session)  # type: ignore[attr-defined]
        assert [s.get_session_options().intra_op_num_threads for s in sessions] == [n, n]


@pytest.mark.slow
def test_manifests_and_text_list(photos: Path, tmp_path: Path) -> None:
    files = [*sorted(str(p) for p in photos.rglob("astro-*"))[:4], str(photos / "sky.png")]
    files.append(str(tmp_path / "gone.jpg"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(files) + "\n\n")
    with open(tmp_path / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "image"], *[[i, p] for i, p in enumerate(files)]])
    pa = pytest.importorskip("pyarrow")
    pq.write_table(pa.table({"image": files}), tmp_path / "m.parquet")
    outs = []
    for name, column in (("list.txt", "path"), ("m.csv", "image"), ("m.parquet", "image")):
        out = tmp_path / f"out-{name}"
        summary = run(tmp_path / name, out, workers=1, path_column=column, progress=False)
        assert summary.files == 6 and summary.failed == 1
        outs.append(rows(out))
    assert outs[0] == outs[1] == outs[2]
    assert [r["path"] for r in outs[0] if r["status"] == "failed"] == [files[-1]]


def _parts(out: Path) -> int:
    return len(list(out.glob("part-*.parquet")))


def _group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not ended (a zombie has: it cannot write a
    file, and a container's init may never reap it)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


class FolderEvents:
    """Linux inotify on one folder: :meth:`wait` blocks until a file is created or renamed in
    it (a part file arrives by rename), or until another of ``fds`` is readable."""

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        mask = self.IN_CREATE | self.IN_MOVED_TO
        assert self.libc.inotify_add_watch(self.fd, bytes(folder), mask) >= 0

    def wait(self, *fds: int, timeout: float) -> None:
        ready, _, _ = select.select([self.fd, *fds], [], [], timeout)
        assert ready, f"no file event within {timeout:.0f} s"
        if self.fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 1 << 16)  # the events themselves: the folder is counted anew

    def close(self) -> None:
        os.close(self.fd)


def _wait_ended(pgid: int, timeout: float) -> None:
    """Block until every process of group ``pgid`` has ended: a pidfd of each is readable
    once its process exits. The group is listed again until none is left."""
    while members := _group_members(pgid):
        fds = []
        for pid in members:
            with contextlib.suppress(ProcessLookupError):  # ended since it was listed
                fds.append(os.pidfd_open(pid))
        try:
            for fd in fds:
                ready, _, _ = select.select([fd], [], [], timeout)
                assert ready, "the killed job's workers are still there"
        finally:
            for fd in fds:
                os.close(fd)


def _kill_at(cmd: list[str], out: Path, target: int) -> int | None:
    """Run ``cmd`` until ``out`` holds ``target`` parts, then kill -9 its whole process group.
    Returns the parts it left (counted once no process of the group is left), or ``None``
    when the job ended, or wrote its last part, before the kill. It waits on events (files
    arriving in ``out``, the job's exit), never on the clock; 600 s bounds a job that hangs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out.mkdir(exist_ok=True)  # watched from before the job starts; an empty folder is a new job
    events = FolderEvents(out)
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    exited = os.pidfd_open(proc.pid)
    try:
        while proc.poll() is None and _parts(out) < target:
            events.wait(exited, timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        ended_itself = proc.wait() >= 0  # an exit status (1: its failed inputs), not a signal
        _wait_ended(proc.pid, timeout=600)  # the workers too, before counting their parts
        events.close()
        os.close(exited)
    parts = _parts(out)
    return None if ended_itself or parts >= 8 else parts


@pytest.mark.slow
def test_kill_minus_nine_then_resume_equals_uninterrupted(
    photos: Path, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    """kill -9 of the whole job (main process and workers, as a power loss) at random points
    three times, then --resume: the rows equal an uninterrupted run's, none twice."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tcnn", "batch", str(photos), "-o", str(out), "-q"]
    cmd += ["--workers", "2", "--part-size", "2", "--align", "48"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    rng = random.Random(13)
    kills: list[int] = []
    for _ in range(12):  # 3 runs, unless one ends before its kill (then all start again)
        target = min(7, _parts(out) + rng.randint(1, 2))
        parts = _kill_at(cmd + (["--resume"] if kills else []), out, target)
        if parts is None:
            shutil.rmtree(out, ignore_errors=True)
            kills.clear()
            continue
        kills.append(parts)
        if len(kills) == 3:
            break
    assert len(kills) == 3 and kills == sorted(kills) and _parts(out) == kills[-1] < 8, kills
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "16 file(s)" in done.stdout, done.stderr  # 2 inputs failed
    assert _parts(out) == 8 and not list(out.glob(".*.tmp"))
    assert rows(out) == reference
    with pytest.raises(TcnnError, match="already holds a batch output"):
        run(photos, out, progress=False)
    with pytest.raises(TcnnError, match=r"different job.*align"):
        run(photos, out, part_size=2, resume=True, progress=False)


def test_missing_column_empty_input_unwritable_output(photos: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.jpg,1\n")
    with pytest.raises(TcnnError, match=r"m\.csv: no column 'path' \(columns: file, label\)"):
        run(manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["batch", str(manifest), "-o", str(tmp_path / "o2"), "--path-column", "x"]) == 1
    (tmp_path / "empty").mkdir()
    summary = run(tmp_path / "empty", tmp_path / "o3", workers=1, progress=False)
    assert summary.files == 0
    table = pq.read_table(tmp_path / "o3")
    assert table.num_rows == 0 and table.schema.remove_metadata() == schema()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(TcnnError, match="cannot create output folder"):
        run(photos, blocker / "out")
    with pytest.raises(TcnnError, match="no such file or folder"):
        run(tmp_path / "nowhere", tmp_path / "o4")
    with pytest.raises(TcnnError, match="nope"):
        run(photos, tmp_path / "o5", model="nope")
    assert not (tmp_path / "o5").exists()


def _peak_rss_mb(cmd: list[str], code: int = 0) -> float:
    """Peak resident memory (MB) of the largest process of a command (workers included) that
    exits with ``code``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == code, proc.stderr.read() if proc.stderr else status
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_many_missing_paths_finish_with_bounded_memory(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    pq.write_table(pa.table({"path": [f"/no/such/{i}.jpg" for i in range(2_000)]}), small)
    pq.write_table(pa.table({"path": [f"/no/such/{i}.jpg" for i in range(60_000)]}), large)
    base = [sys.executable, "-m", "tcnn", "batch", "-q", "--workers", "2", "--part-size", "1000"]
    rss_small = _peak_rss_mb([*base, str(small), "-o", str(tmp_path / "o1")], code=1)
    rss_large = _peak_rss_mb([*base, str(large), "-o", str(tmp_path / "o2")], code=1)
    table = pq.read_table(tmp_path / "o2", columns=["status", "error"])
    assert table.num_rows == 60_000 and set(table.column("status").to_pylist()) == {"failed"}
    assert table.column("error")[59_999].as_py() == "/no/such/59999.jpg: no such file"
    assert rss_large < rss_small * 1.15 + 10, (rss_small, rss_large)


@pytest.mark.slow
def test_refine_moves_the_landmarks_and_is_part_of_the_job(
    photos: Path, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "refined"
    code = main(["batch", str(photos), "-o", str(out), "--workers", "1", "--refine", "-q"])
    assert code == 1  # its corrupt and empty files
    refined = rows(out)
    plain = [r for r in reference if r["landmarks"] is not None]
    moved = [r for r in refined if r["landmarks"] is not None]
    assert len(moved) == len(plain) > 0
    assert [r["path"] for r in moved] == [r["path"] for r in plain]
    assert all(a["left"] == b["left"] and a["top"] == b["top"] for a, b in zip(moved, plain))
    assert any(a["landmarks"] != b["landmarks"] for a, b in zip(moved, plain))
    with pytest.raises(TcnnError, match=r"different job.*refine"):
        run(photos, out, resume=True, progress=False)


@pytest.mark.slow
def test_exit_status_zero_only_when_no_input_failed(
    astronaut: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As tcnn detect: 0 when every input was read, 1 (and each failure named) otherwise."""
    good = tmp_path / "good"
    good.mkdir()
    Image.fromarray(astronaut).save(good / "astronaut.jpg")
    Image.new("RGB", (64, 48), (90, 120, 200)).save(good / "blue.png")  # no face: not a failure
    assert main(["batch", str(good), "-o", str(tmp_path / "o1"), "--workers", "1", "-q"]) == 0
    assert not capsys.readouterr().err
    listing = tmp_path / "list.txt"
    paths = [good / "astronaut.jpg", *(tmp_path / f"gone-{i}.jpg" for i in range(7))]
    listing.write_text("".join(f"{p}\n" for p in paths))
    out = tmp_path / "o2"
    assert main(["batch", str(listing), "-o", str(out), "--workers", "1", "-q"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[:5] == [f"failed: {tmp_path}/gone-{i}.jpg: no such file" for i in range(5)]
    assert err[5:] == [
        f"tcnn: 7 input(s) failed (2 more): the rows with status 'failed' in {out} hold each "
        "one's error"
    ]


@pytest.mark.slow
def test_the_former_detector_keyword_still_works_and_warns(photos: Path, tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"batch.run\(detector=...\) is deprecated"):
        summary = run(photos, tmp_path / "old", detector="dlib", workers=1, progress=False)
    new = run(photos, tmp_path / "new", face_detector="dlib", workers=1, progress=False)
    assert rows(tmp_path / "old") == rows(tmp_path / "new") and summary.faces == new.faces
    with pytest.raises(TcnnError, match="give face_detector only"):
        run(photos, tmp_path / "both", face_detector="dlib", detector="retinaface")
