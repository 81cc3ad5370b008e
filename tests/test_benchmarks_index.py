"""benchmarks/: one entry point that knows every script, a README that lists them, and a command
in every results file that names a script that exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def entry():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import __main__ as entry
    finally:
        sys.path.remove(str(ROOT))
    return entry


def test_every_script_is_in_the_readme_and_every_readme_name_runs(entry) -> None:  # type: ignore[no-untyped-def]
    names = set(entry.scripts())
    readme = (BENCH / "README.md").read_text()
    listed = set(re.findall(r"python -m benchmarks (\w+)", readme))
    assert names - listed == set(), "scripts missing from benchmarks/README.md"
    assert listed - names == set(), "benchmarks/README.md names scripts that do not exist"
    assert set(entry.TAKES) <= names
    assert {"bench_5pt", "seed_caffe", "fuzz_serve", "figure_astronaut"} <= names
    assert "common" not in names  # a helper, not a script


def test_every_result_records_the_command_of_a_script_that_exists() -> None:
    results = sorted((BENCH / "results").glob("*.json"))
    assert len(results) >= 20
    for path in results:
        command = json.loads(path.read_text()).get("command")
        assert command, f"{path.name} records no command"
        script = re.search(r"python (\S+\.py)", command)
        assert script and (ROOT / script[1]).is_file(), f"{path.name}: {command}"


def test_command_is_the_script_and_its_arguments(entry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.tools.common import command

    script = BENCH / "studies" / "derotate.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--model", "a b.onnx"])
    monkeypatch.setattr("os.nice", lambda _: 0)
    assert command() == "python benchmarks/studies/derotate.py --model 'a b.onnx'"
    monkeypatch.setattr("os.nice", lambda _: 19)
    assert command().startswith("nice -n 19 python benchmarks/studies/derotate.py ")


def test_entry_point_lists_and_refuses_an_unknown_name() -> None:
    run = [sys.executable, "-m", "benchmarks"]
    listing = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "bench_5pt" in listing.stdout
    assert "takes: 3-4 min" in listing.stdout  # bench_batch's measured time
    bad = subprocess.run([*run, "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr
