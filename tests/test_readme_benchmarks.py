"""The numbers of README.md and docs/*.md are rendered from benchmarks/results: CI fails when
they drift."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "benchmarks" / "tools" / "render_docs.py"
RESULTS = ROOT / "benchmarks" / "results"


def _check(*pages: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), "--check", *map(str, pages)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_docs", RENDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(stem: str, method: str) -> dict:
    rows = json.loads((RESULTS / f"{stem}.json").read_text())["rows"]
    (row,) = [r for r in rows if r["method"] == method]
    return row


def test_readme_and_docs_are_up_to_date_with_the_results() -> None:
    done = _check()  # README.md and every docs/*.md
    assert done.returncode == 0, done.stderr


def test_every_page_with_numbers_is_checked() -> None:
    marked = {p.name for p in _renderer().pages() if "<!-- bench:" in p.read_text()}
    assert {"README.md", "results.md", "training.md", "serve.md", "batch.md", "video.md"} <= marked


def test_check_fails_naming_the_stale_page_and_section(tmp_path: Path) -> None:
    # The ytf68 table's vanilla68 row, as results/68pt.json gives it.
    cell = f"| vanilla68 | {100 * _row('68pt', 'vanilla68')['mean']:.2f}% |"
    text = (ROOT / "docs" / "results.md").read_text()
    head, section = text.split("<!-- bench:68pt -->")
    assert section.split("<!-- /bench:68pt -->")[0].count(cell) == 1
    stale = tmp_path / "results.md"
    section = section.replace(cell, "| vanilla68 | 0.01% |", 1)
    stale.write_text(head + "<!-- bench:68pt -->" + section)
    fresh = tmp_path / "README.md"
    fresh.write_text((ROOT / "README.md").read_text())
    done = _check(fresh, stale)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "results.md is out of date with benchmarks/results: section bench:68pt "
        "(run python benchmarks/tools/render_docs.py)"
    ]


def test_the_headline_table_gives_the_default_models_numbers() -> None:
    """The README's one table holds the default 68-point model's held-out error and speed."""
    from tcnn.registry import DEFAULTS

    aflw = json.loads((RESULTS / "aflw68.json").read_text())
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- bench:headline -->")[1].split("<!-- /bench:headline -->")[0]
    speed = _row("68pt", DEFAULTS[68])["faces_per_s_batch256"]
    for protocol in ("hog", "retinaface"):
        (ours,) = [r for r in aflw[protocol]["rows"] if r["method"] == DEFAULTS[68]]
        (dlib,) = [r for r in aflw[protocol]["rows"] if r["method"] == "dlib 68"]
        row = f"**{100 * ours['mean']:.2f}%** | {100 * dlib['mean']:.2f}% | {speed:,.0f} |"
        assert row in table


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
