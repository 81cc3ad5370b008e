"""Throughput of ``tcnn detect`` on a folder of real photos: drawings PNG vs JPEG, 1 vs 2 workers.

Copies the photos of ``../shared/data/photos`` ``--copies`` times into a temp folder and runs
the command in-process (``tcnn.apps.cli.main``) for each setting, rounds interleaved so that every
setting sees the same machine load; the figure per setting is its best round (photos per
second, wall clock, model already loaded). Then times each stage per photo in one thread
(read, detect + landmarks, draw, encode as JPEG and as PNG), best of the rounds. The load
average is recorded with the result: on a shared machine compare settings by their ratio,
not by their absolute speed.

    python benchmarks/bench/bench_detect_cli.py [--copies 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import DATA, machine, write_result
from tcnn.apps.cli import main

PHOTOS = DATA / "photos"

SETTINGS = {
    "no drawing, 2 workers": ["--workers", "2"],
    "png, 1 worker": ["--draw", "--draw-format", "png", "--workers", "1"],
    "png, 2 workers": ["--draw", "--draw-format", "png", "--workers", "2"],
    "jpg, 1 worker": ["--draw", "--draw-format", "jpg", "--workers", "1"],
    "jpg, 2 workers": ["--draw", "--draw-format", "jpg", "--workers", "2"],
}


def _folder(copies: int, into: Path) -> int:
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
    for i in range(copies):
        for p in photos:
            shutil.copy(p, into / f"{p.stem}-{i}{p.suffix}")
    return copies * len(photos)


def _run(folder: Path, out: Path, flags: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["detect", str(folder), "-o", str(out), "-q", *flags])
    dt = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"tcnn detect {' '.join(flags)} failed ({code})")
    return dt


def stages(rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per photo of each stage, one thread, best of ``rounds``: where the time goes."""
    from tcnn.apps.outputs import DRAW_FORMATS
    from tcnn.draw import draw_faces
    from tcnn.imaging import load_image
    from tcnn.predictor import LandmarkDetector

    lm = LandmarkDetector()
    out: dict[str, dict[str, float]] = {}
    for photo in sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png")):
        lm.detect(photo)  # warm up
        best: dict[str, float] = {}
        for _ in range(rounds):
            t = [time.perf_counter()]
            rgb = load_image(photo)
            t.append(time.perf_counter())
            faces = lm.detect(rgb)
            t.append(time.perf_counter())
            drawn = draw_faces(rgb, faces)
            t.append(time.perf_counter())
            for fmt in DRAW_FORMATS.values():
                drawn.save(io.BytesIO(), format=fmt[0], **fmt[1])
                t.append(time.perf_counter())
            keys = ["read", "detect + landmarks", "draw", *(f"encode {k}" for k in DRAW_FORMATS)]
            for k, a, b in zip(keys, t, t[1:]):
                best[k] = min(best.get(k, 1e9), b - a)
        out[photo.name] = {k: round(v, 4) for k, v in best.items()}
    return out


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return "unknown"


def bench(copies: int, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "photos", Path(tmp) / "out"
        folder.mkdir()
        n = _folder(copies, folder)
        _run(folder, out, SETTINGS["jpg, 2 workers"])  # warm up: model, dlib, file cache
        load_before = os.getloadavg()
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(rounds):
            for name, flags in SETTINGS.items():
                times[name].append(_run(folder, out, flags))
        per_stage = stages(rounds)
        load_after = os.getloadavg()
    rates = {name: round(n / min(t), 2) for name, t in times.items()}
    return {
        "what": f"tcnn detect on {n} photos ({copies} copies of {PHOTOS.name}/), best of "
        f"{rounds} interleaved rounds, photos per second (wall clock, model loaded)",
        "photos": n,
        "photos_per_s": rates,
        "seconds": {name: [round(v, 2) for v in t] for name, t in times.items()},
        "ratios": {
            "jpg / png, 1 worker": round(rates["jpg, 1 worker"] / rates["png, 1 worker"], 2),
            "jpg / png, 2 workers": round(rates["jpg, 2 workers"] / rates["png, 2 workers"], 2),
            "2 / 1 workers, jpg": round(rates["jpg, 2 workers"] / rates["jpg, 1 worker"], 2),
            "2 / 1 workers, png": round(rates["png, 2 workers"] / rates["png, 1 worker"], 2),
            "jpg drawing / no drawing, 2 workers": round(
                rates["jpg, 2 workers"] / rates["no drawing, 2 workers"], 2
            ),
        },
        "seconds_per_photo_by_stage": per_stage,
        "load_average": {"before": load_before, "after": load_after},
        "machine": {**machine(), "pillow": PIL.__version__, "tcnn_commit": _commit()},
    }


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of the photos (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = ap.parse_args()
    if not PHOTOS.is_dir():
        raise SystemExit(f"{PHOTOS}: not found (the shared photos)")
    result = bench(args.copies, args.rounds)
    print(write_result("detect_cli", result))
    for name, r in result["photos_per_s"].items():  # type: ignore[attr-defined]
        print(f"{name:<24} {r:6.2f} photos/s")
    for name, r in result["ratios"].items():  # type: ignore[attr-defined]
        print(f"{name:<36} {r:.2f}x")


if __name__ == "__main__":
    main_()
