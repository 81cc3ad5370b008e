"""``tcnn detect`` as a user meets it: inputs listed once, results streamed, safe output files."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn import pipeline
from tcnn.apps.outputs import COORDINATES, PIXEL_CENTERS, UniqueNames
from tcnn.files import temp_path
from test_cli import assert_one_line_error, run


def _copies(folder: Path, photo: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, path)
        out.append(path)
    return out


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_running_twice_in_place_reads_no_drawings_and_loses_none(
    tmp_path: Path,
    astronaut_png: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _copies(tmp_path, astronaut_png, ["a/face.png", "b/face.png"])
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 64)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out, _ = run(capsys, "detect", ".", "a/face.png", "-o", "out", "--draw")
        assert code == 0
        data = json.loads(Path("out/landmarks.json").read_text())
        # Two images each time: not the drawings in out/, not a/face.png a second time.
        assert data["images"] == 2 and "2 image(s)" in out
        assert {f["file"] for f in data["faces"]} == {"a/face.png", "b/face.png"}
        assert data["skipped"] == ["clip.mp4"] and "clip.mp4" in out
        assert data["duplicates"] == ["a/face.png"] and "more than once" in out
    # Same stem, two drawings; JPEG by default.
    drawn = sorted(p.name for p in Path("out").glob("*.landmarks.*"))
    assert drawn == ["face-2.landmarks.jpg", "face.landmarks.jpg"]
    assert Image.open("out/face-2.landmarks.jpg").format == "JPEG"


@pytest.mark.slow
def test_earlier_results_inside_an_input_folder_are_not_read(
    tmp_path: Path,
    astronaut_png: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tcnn's own outputs in a folder (detect's with drawings, batch's with aligned crops, the
    demo's, one being written) are not read again by a run that writes elsewhere."""
    from tcnn.apps.batch import run as batch_run
    from tcnn.apps.outputs import LandmarksWriter

    monkeypatch.chdir(tmp_path)
    _copies(tmp_path, astronaut_png, ["photos/a.png", "photos/sub/b.png", "photos/mine/c.png"])
    Path("photos/mine/landmarks.json").write_text('{"mine": true}')  # a user's file: read on
    assert run(capsys, "detect", "photos", "-o", "photos/old", "--draw")[0] == 0
    assert run(capsys, "demo", "-o", "photos/demo")[0] == 0  # its photo and the drawing
    batch_run("photos/sub", "photos/job", workers=1, align=48, progress=False)
    assert list(Path("photos/job/_crops").rglob("*.png"))  # images a plain listing would read
    _copies(tmp_path, astronaut_png, ["photos/running/d.png"])
    writing = LandmarksWriter(Path("photos/running/landmarks.csv"), 5, {"model": "vanilla5"})
    try:  # a run still writing: only its temp file is there
        assert [p.name for p in Path("photos/running").glob(".*.tmp")]
        code, out, _ = run(capsys, "detect", "photos", "-o", "elsewhere")
    finally:
        writing.abort()
    assert code == 0
    data = json.loads(Path("elsewhere/landmarks.json").read_text())
    assert sorted({f["file"] for f in data["faces"]}) == [
        "photos/a.png",
        "photos/mine/c.png",
        "photos/sub/b.png",
    ]
    assert data["images"] == 3 and data["skipped"] == ["photos/mine/landmarks.json"]
    earlier = "photos/demo, photos/job, photos/old, photos/running"
    assert f"not read, tcnn's own results from earlier runs: {earlier}" in out
    # A folder that holds a result, named itself: read, but not the drawings tcnn wrote there.
    listed = pipeline.list_images(["photos/old", "photos/demo"])
    assert listed.files == [Path("photos/demo/astronaut.png")]
    drawn = ["a.landmarks.jpg", "b.landmarks.jpg", "c.landmarks.jpg", "astronaut.landmarks.png"]
    assert [p.name for p in listed.results] == drawn
    code, _, err = run(capsys, "detect", "photos/old", "-o", "elsewhere2")
    assert code == 1
    why = "1 file(s) that are not images, 3 earlier tcnn result(s)"
    assert_one_line_error(err, f"no images found in photos/old ({why})")
    assert pipeline.is_result_folder("photos/job") and not pipeline.is_result_folder("photos/mine")


def test_unique_names_never_repeat() -> None:
    names = UniqueNames()
    got = [names(s) for s in ["a/x.jpg", "b/x.png", "x-2.jpg", "c/X.jpg", "d/x.jpg", "<array 3>"]]
    assert got[:2] == ["x", "x-2"]
    assert len({g.casefold() for g in got}) == len(got)
    assert all("/" not in g and "<" not in g for g in got)


def test_csv_keeps_its_columns_and_lists_failures(
    tmp_path: Path, astronaut_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _copies(tmp_path / "in", astronaut_png, ["face.png"])
    Image.new("RGB", (160, 120), (128, 128, 128)).save(tmp_path / "in" / "blank.png")
    (tmp_path / "in" / "broken.jpg").write_text("not a jpeg")
    code, _, err = run(capsys, "detect", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 1 and "broken.jpg" in err
    code, _, _ = run(
        capsys, "detect", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "csv"
    )
    lines = (tmp_path / "out" / "landmarks.csv").read_text().splitlines()
    assert lines[0] == f"# coordinates: {COORDINATES}"
    rows = list(csv.DictReader(ln for ln in lines if not ln.startswith("#")))
    header = list(rows[0])
    assert header[-11:] == [*(f"{a}{i}" for i in range(5) for a in "xy"), "error"]
    by_file = {Path(r["file"]).name: r for r in rows}
    assert set(by_file) == {"face.png", "blank.png", "broken.jpg"}
    assert by_file["blank.png"]["face"] == "" and by_file["blank.png"]["error"] == ""
    assert by_file["face.png"]["face"] == "0" and float(by_file["face.png"]["x0"]) > 0
    assert "broken.jpg: not an image" in by_file["broken.jpg"]["error"]
    data = json.loads((tmp_path / "out" / "landmarks.json").read_text())
    assert data["images"] == 2 and [Path(f).name for f in data["no_face"]] == ["blank.png"]


def test_pixel_centers_moves_landmarks_by_half_a_pixel(
    tmp_path: Path, astronaut_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "detect", str(astronaut_png), "-o", str(tmp_path / "a"))
    run(capsys, "detect", str(astronaut_png), "-o", str(tmp_path / "b"), "--pixel-centers")
    a = json.loads((tmp_path / "a" / "landmarks.json").read_text())
    b = json.loads((tmp_path / "b" / "landmarks.json").read_text())
    assert a["coordinates"] == COORDINATES and "subtract 0.5" in COORDINATES
    assert b["coordinates"] == PIXEL_CENTERS
    diff = np.array(a["faces"][0]["landmarks"]) - np.array(b["faces"][0]["landmarks"])
    assert np.allclose(diff, 0.5, atol=0.011)
    assert a["faces"][0]["box"] == b["faces"][0]["box"]


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make Pipeline.run yield ``n`` real results, then raise KeyboardInterrupt (Ctrl-C)."""
    real = pipeline.Pipeline.run

    def run_then_interrupt(self: pipeline.Pipeline, inputs: object) -> Iterator[pipeline.Result]:
        for i, result in enumerate(real(self, inputs)):  # type: ignore[arg-type]
            if i == n:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(pipeline.Pipeline, "run", run_then_interrupt)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_ctrl_c_keeps_every_result_so_far(
    fmt: str,
    tmp_path: Path,
    astronaut_png: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _copies(tmp_path / "in", astronaut_png, ["1.png", "2.png", "3.png"])
    _interrupt_after(monkeypatch, 2)
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "detect", str(tmp_path / "in"), "-o", str(out), "--format", fmt, "--draw"
    )
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert _leftovers(out) == []
    text = (out / f"landmarks.{fmt}").read_text()
    if fmt == "json":
        data = json.loads(text)  # valid JSON, complete as far as it went
        assert data["interrupted"] is True and data["images"] == 2
        assert [Path(f["file"]).name for f in data["faces"]] == ["1.png", "2.png"]
    else:
        rows = [ln for ln in text.splitlines() if not ln.startswith("#")]
        assert [Path(r.split(",")[0]).name for r in rows[1:]] == ["1.png", "2.png"]
        assert text.splitlines()[-1].startswith("# interrupted")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("target", ["landmarks.json", "astronaut.landmarks.jpg"])
def test_full_disk_gives_one_line_and_leaves_no_temp_file(
    target: str, tmp_path: Path, astronaut_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # The temp file is a link to /dev/full: every write to it fails with ENOSPC.
    temp_path(out / target).symlink_to("/dev/full")
    code, _, err = run(capsys, "detect", str(astronaut_png), "-o", str(out), "--draw")
    assert code == 1
    assert_one_line_error(err, "cannot write (No space left on device)")
    assert _leftovers(out) == [] and not (out / "landmarks.json").exists()
    assert not temp_path(out / target).exists()


def test_bad_settings_fail_once_before_any_output(
    tmp_path: Path, astronaut_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for flags, needle in [
        (["--upsample", "-1"], "upsample -1"),
        (["--detector", "nope"], "unknown face detector 'nope'"),
        (["--workers", "0"], "workers 0"),
    ]:
        code, _, err = run(capsys, "detect", str(astronaut_png), "-o", str(out), *flags)
        assert code == 1, flags
        assert_one_line_error(err, needle)
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_help_says_gif_first_frame_and_coordinates(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(capsys, "detect", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "a GIF is read as its first frame" in text
    assert "subtract 0.5 for OpenCV/dlib pixel indices" in text
    for flag in ("--pixel-centers", "--draw-format", "--workers"):
        assert flag in text
