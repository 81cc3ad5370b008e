"""Video reading and writing, and ``tcnn video`` end to end, on short real-face clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tcnn.apps.cli import main
from tcnn.errors import TcnnError

av = pytest.importorskip("av")

from tcnn.apps.video import VideoReader, VideoWriter, parse_source  # noqa: E402

W, H = 320, 240


def face_frames(astronaut: np.ndarray, n: int, step: int = 3) -> list[np.ndarray]:
    """The astronaut's face moving right on a grey background, with sensor noise."""
    rng = np.random.default_rng(0)
    head = astronaut[45:195, 145:295]
    out = []
    for t in range(n):
        frame = np.full((H, W, 3), 110.0)
        x = 20 + step * t
        frame[45:195, x : x + 150] = head
        out.append(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8))
    return out


def write(path: Path, frames: list[np.ndarray]) -> Path:
    w = VideoWriter(path, 30.0, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        w.write(f)
    return w.close()


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    return write(tmp_path_factory.mktemp("clips") / "face.mp4", face_frames(astronaut, 24))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("tcnn: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_read_round_trip(tmp_path: Path, astronaut: np.ndarray) -> None:
    frames = face_frames(astronaut, 10)
    path = write(tmp_path / "a.mp4", frames)
    assert leftovers(tmp_path) == []
    with VideoReader(path) as video:
        assert video.size == (W, H) and video.frames == 10 and video.fps == 30.0
        got = list(video)
    assert [f.index for f in got] == list(range(10))
    assert got[3].time == pytest.approx(0.1, abs=1e-3)
    diff = np.abs(got[5].rgb.astype(int) - frames[5].astype(int)).mean()
    assert diff < 6  # H.264 at crf 20: close to the source


def test_video_command_writes_video_and_jsonl(
    tmp_path: Path, face_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, jsonl = tmp_path / "out.mp4", tmp_path / "faces.jsonl"
    code, stdout, err = run(
        capsys, "video", str(face_clip), "-o", str(out), "--jsonl", str(jsonl), "-q"
    )
    assert code == 0, err
    assert "24 frame(s)" in stdout and "1 track(s)" in stdout
    lines = [json.loads(ln) for ln in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(24))
    assert all(len(r["faces"]) == 1 and r["faces"][0]["id"] == 0 for r in lines)
    assert lines[0]["faces"][0]["detected"] and not lines[1]["faces"][0]["detected"]
    assert len(lines[5]["faces"][0]["landmarks"]) == 5
    with VideoReader(out) as video:
        assert video.frames == 24 and video.size == (W, H)
    assert leftovers(tmp_path) == []


def test_no_faces_gives_valid_empty_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    blank = [np.full((H, W, 3), 100, np.uint8) + rng.integers(0, 8, (H, W, 3), np.uint8)] * 6
    src = write(tmp_path / "blank.mp4", blank)
    jsonl = tmp_path / "none.jsonl"
    code, stdout, _ = run(capsys, "video", str(src), "--jsonl", str(jsonl), "-q", "--no-smooth")
    assert code == 0 and "0 face(s)" in stdout
    assert [json.loads(ln)["faces"] for ln in jsonl.read_text().splitlines()] == [[]] * 6


def test_truncated_video_keeps_the_frames_done(
    tmp_path: Path, face_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = face_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 9 // 10])  # the first frame is most of the file
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    code, stdout, err = run(capsys, "video", str(cut), "-o", str(out), "--jsonl", str(jsonl), "-q")
    assert code == 1
    one_line_error(err, str(cut))
    done = len(jsonl.read_text().splitlines())
    assert 0 < done < 24
    assert f"{done} frame(s)" in stdout
    with VideoReader(out) as video:
        assert len(list(video)) == done
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "empty file"), (b"\x00\x01garbage" * 300, "not a video file")],
)
def test_unreadable_input_writes_nothing(
    tmp_path: Path, content: bytes, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.mp4"
    src.write_bytes(content)
    out = tmp_path / "out.mp4"
    code, _, err = run(capsys, "video", str(src), "-o", str(out), "--jsonl", str(tmp_path / "j"))
    assert code == 1
    one_line_error(err, str(src), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_missing_camera_and_bad_outputs(
    tmp_path: Path, face_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "video", "7", "-o", str(tmp_path / "cam.mp4"))
    assert code == 1
    one_line_error(err, "camera 7")
    code, _, err = run(capsys, "video", str(face_clip), "-o", str(tmp_path / "no" / "x.mp4"))
    assert code == 1
    one_line_error(err, "cannot write")
    code, _, err = run(capsys, "video", str(face_clip), "-o", str(tmp_path / "x.gif"))
    assert code == 1
    one_line_error(err, "unknown video suffix")
    code, _, err = run(capsys, "video", str(face_clip))
    assert code == 1
    one_line_error(err, "nothing to write")
    assert list(tmp_path.iterdir()) == []


def test_parse_source(tmp_path: Path) -> None:
    assert parse_source("0") == 0
    assert parse_source("clip.mp4") == "clip.mp4"
    with pytest.raises(TcnnError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")


def test_truncated_mkv_without_a_frame_count_is_caught(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = VideoWriter(tmp_path / "a.mkv", 30.0, (64, 48))
    for _ in range(60):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    data = w.close().read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as video:
        assert video.frames is None  # Matroska declares a duration, not a count
        seen = 0
        with pytest.raises(TcnnError, match="truncated"):
            for _ in video:
                seen += 1
    assert 0 < seen < 60
