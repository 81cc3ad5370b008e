"""benchmarks/tools/batch_account.py: the arithmetic of the per-process CPU account, on
hand-built numbers, and its reading of /proc stat lines."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def account() -> ModuleType:
    sys.path.insert(0, str(ROOT))  # the benchmarks package sits at the repository root
    try:
        from benchmarks.tools import batch_account
    finally:
        sys.path.remove(str(ROOT))
    return batch_account


def test_amdahl_recovers_the_serial_fraction_of_exact_speedups(account: ModuleType) -> None:
    s = 0.1
    speedups = {n: 1 / (s + (1 - s) / n) for n in (2, 4, 8, 16)}
    fit = account.amdahl(speedups)
    assert fit["serial_fraction_fit"] == pytest.approx(0.1, abs=1e-4)
    assert set(fit["implied_by_each"].values()) == {0.1}
    assert fit["fit_speedups"]["16"] == round(speedups[16], 2)


def test_amdahl_of_perfect_scaling_is_zero(account: ModuleType) -> None:
    assert account.amdahl({2: 2.0, 4: 4.0})["serial_fraction_fit"] == 0.0


def test_per_file_takes_each_workers_start_up_and_the_main_fixed_cost_out(
    account: ModuleType,
) -> None:
    fixed = {"main_cpu_s": 0.5, "children_cpu_s": 1.0}
    # 1001 files: the main process 0.5 s fixed + 1 ms a file; two workers 1 s each + 10 ms a file.
    run = {"main_cpu_s": 0.5 + 1.0, "children_cpu_s": 2 * 1.0 + 10.0, "workers": [{}, {}]}
    assert account.per_file(run, fixed, 1001) == {"workers": 2, "main_ms": 1.0, "worker_ms": 10.0}


def test_cpu_reads_utime_and_stime_after_a_name_with_spaces_and_parens(
    account: ModuleType, tmp_path: Path
) -> None:
    tick = account.TICK
    fields = ["S"] + ["0"] * 10 + [str(3 * tick), str(tick)] + ["0"] * 30  # utime, stime: 14, 15
    stat = tmp_path / "stat"
    stat.write_text("123 (a) b (c) " + " ".join(fields) + "\n")
    assert account._cpu(stat) == 4.0
    assert account._cpu(tmp_path / "gone") is None
