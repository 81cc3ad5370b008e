"""No tracebacks and no empty folders: the CLI's failure paths, each as a user hits it."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcnn.apps.cli import main
from test_cli import ROOT, assert_one_line_error, run


class _ClosedPipe(io.StringIO):
    """stdout whose reader went away (``tcnn models | head``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_is_quiet_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["models", "--format", "json"]) == 141


def test_broken_pipe_is_quiet_in_a_real_pipe() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcnn", "models", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before tcnn writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_convert_caffe_without_onnx_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    code, _, err = run(capsys, "convert-caffe", "m.caffemodel", "--mean", "a.png", "--std", "b.png")
    assert code == 1
    assert_one_line_error(err, "pip install 'tcnn[train]'")


def test_missing_data_says_which_dataset_where_and_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = tmp_path / "nowhere"
    code, _, err = run(capsys, "evaluate", "--data", "mtfl-aflw", "--root", str(nowhere), "-q")
    assert code == 1
    assert_one_line_error(err, "'mtfl-aflw'", str(nowhere), "--root", "docs/datasets.md")


def test_failed_train_leaves_no_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    nowhere, run_dir = tmp_path / "nowhere", tmp_path / "runs" / "x"
    code, _, err = run(capsys, "train", "--root", str(nowhere), "--run-dir", str(run_dir))
    assert code == 1
    assert_one_line_error(err, "'mtfl-train'", str(nowhere), "--root")
    assert not run_dir.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_quotes_the_image() -> None:
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "demo", "IMAGE=my photo.jpg"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in dry.splitlines() if "tcnn demo" in ln)
    assert shlex.split(line)[-2:] == ["demo", "my photo.jpg"]
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "demo"], capture_output=True, text=True, check=True
    ).stdout
    line = next(ln for ln in dry.splitlines() if "tcnn demo" in ln)
    assert shlex.split(line)[-1] == "demo"
