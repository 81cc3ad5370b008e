"""README's benchmark numbers are rendered from benchmarks/results: CI fails when they drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "benchmarks" / "render_readme.py"


def _check(readme: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), "--check", "--readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_readme", RENDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_up_to_date_with_the_results() -> None:
    done = _check(ROOT / "README.md")
    assert done.returncode == 0, done.stderr


def test_check_fails_naming_the_stale_section(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    assert "| vanilla68 | 4.69% |" in text
    stale = tmp_path / "README.md"
    stale.write_text(text.replace("| vanilla68 | 4.69% |", "| vanilla68 | 4.59% |"))
    done = _check(stale)
    assert done.returncode == 1
    assert "bench:68pt" in done.stderr and "bench:5pt" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_footnote_names_commit_versions_and_threads() -> None:
    m = {
        "cpu": "CPU X",
        "cores": 2,
        "python": "3.11.7",
        "onnxruntime": "1.32.0",
        "dlib": "20.0.1",
        "pillow": "13.0.0",
        "torch": "2.13.0",
        "tcnn_commit": "abc123",
        "threads": {"onnxruntime_intra_op": 2, "OMP_NUM_THREADS": None, "torch": None},
        "loadavg": [0.5, 0.4, 0.3],
        "date": "2026-12-02",
    }
    text = _renderer().measured(m)
    for part in ("abc123", "Pillow 13.0.0", "torch 2.13.0", "threads 2", "load average 0.5"):
        assert part in text
    old = {k: v for k, v in m.items() if k not in ("tcnn_commit", "pillow", "torch", "threads")}
    assert "not recorded" in _renderer().measured(old)
