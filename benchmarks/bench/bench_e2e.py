"""End to end against dlib on photos: the detection size rule, int8 detector and landmarks.

Pipelines, each from the image file to landmarks (decoding included), alternating photo by
photo (their order rotating from one photo to the next) so that all see the same machine load;
wall time (photos/s) and the process's CPU time (all its threads, ``time.process_time``: CPU
ms per photo, which other processes' load disturbs less):

- ``dlib``: HOG (upsample by size, ``tcnn.detect.auto_upsample``; threshold 0.3) + its 68-point
  shape predictor on every face found;
- ``tcnn full-size scan, vanilla5``: the pipeline before: the whole file decoded, RetinaFace
  scanning at full size up to 1280 px (``min_face=0``) + the float vanilla5;
- ``tcnn size rule, vanilla5``: the size rule (``tcnn.retina.dlib_reach``), a large JPEG
  decoded at a reduced size where that is enough (``load_image_reduced``) + the float vanilla5;
- ``tcnn default, float RetinaFace``: the default model with the float detector
  (``face_detector="retinaface"``), the default before the int8 detector;
- ``tcnn default``: ``LandmarkDetector()`` as shipped (the size rule, the int8 RetinaFace and
  the default model).

Every tcnn pipeline but the last runs the float RetinaFace.

Photos: the shared photos (512-1000 px), and the same photos upscaled 4x with bicubic
resampling and saved as JPEG (quality 90, 2048-4000 px), labelled ``upscaled``: they stand in
for large photos in size only (no more detail than the originals), since no real large photo
is here.

The race is run ``--rounds`` times (a busy 2-core machine moves the ratios from one short
round to the next); the result keeps the round with the median ratio of the default pipeline
to dlib, and every round's ratios.

Run: ``python benchmarks/bench/bench_e2e.py [--copies 5] [--rounds 3]`` (writes
benchmarks/results/e2e.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_5pt import PHOTOS
from benchmarks.tools.common import DlibShapePredictor, machine, write_result
from tcnn.detect import make_detector
from tcnn.imaging import load_image
from tcnn.predictor import LandmarkDetector
from tcnn.retina import RetinaFace


def tcnn_pipeline(model: str | None, min_face: float | None) -> Callable[[Path], int]:
    """``LandmarkDetector(model)`` with RetinaFace's ``min_face`` (faces found per photo)."""
    lm = LandmarkDetector(model)
    if min_face is not None:
        lm._local.detector = RetinaFace(min_face=min_face)  # this thread's detector
    return lambda path: len(lm.detect(path))


def tcnn_float_detector() -> Callable[[Path], int]:
    """``LandmarkDetector(face_detector="retinaface")``: the default model with the float
    detector (faces found per photo)."""
    lm = LandmarkDetector(face_detector="retinaface")
    return lambda path: len(lm.detect(path))


def dlib_pipeline() -> Callable[[Path], int]:
    dl = DlibShapePredictor()
    hog = make_detector("dlib", threshold=0.3)

    def run(path: Path) -> int:
        rgb = load_image(path)
        return len([dl(rgb, b) for b, _ in hog(rgb)])

    return run


def upscaled(photos: list[Path], folder: Path, factor: int = 4) -> list[Path]:
    """Each photo resized ``factor`` times (bicubic) and saved as JPEG quality 90."""
    out = []
    for p in photos:
        img = Image.open(p).convert("RGB")
        big = img.resize((img.width * factor, img.height * factor), Image.Resampling.BICUBIC)
        path = folder / f"{p.stem}-x{factor}.jpg"
        big.save(path, quality=90)
        out.append(path)
    return out


def race(photos: list[Path], copies: int) -> dict[str, Any]:
    """Photos/s and faces found by each pipeline on ``photos``, ``copies`` times over."""
    pipelines = {
        "dlib": dlib_pipeline(),
        "tcnn full-size scan, vanilla5": tcnn_pipeline("vanilla5", 0),
        "tcnn size rule, vanilla5": tcnn_pipeline("vanilla5", None),
        "tcnn default, float RetinaFace": tcnn_float_detector(),
        "tcnn default": tcnn_pipeline(None, None),
    }
    for fn in pipelines.values():
        fn(photos[0])  # build sessions and detectors first
    seconds = dict.fromkeys(pipelines, 0.0)
    cpu = dict.fromkeys(pipelines, 0.0)
    faces = dict.fromkeys(pipelines, 0)
    load = os.getloadavg()[0]
    names = list(pipelines)
    for i, path in enumerate(photos * copies):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            faces[name] += pipelines[name](path)
            seconds[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    n = len(photos) * copies
    rows = {
        name: {
            "photos_per_s": round(n / seconds[name], 2),
            "cpu_ms_per_photo": round(1000 * cpu[name] / n, 1),
            "faces": faces[name] // copies,
        }
        for name in pipelines
    }
    for row in rows.values():
        row["over_dlib"] = round(row["photos_per_s"] / rows["dlib"]["photos_per_s"], 2)
        row["cpu_over_dlib"] = round(rows["dlib"]["cpu_ms_per_photo"] / row["cpu_ms_per_photo"], 2)
    sizes = [Image.open(p).size for p in photos]
    return {
        "photos": [p.name for p in photos],
        "sizes": sizes,
        "copies": copies,
        "loadavg_before": load,
        "loadavg_after": os.getloadavg()[0],
        "rows": rows,
    }


def rounds(run: Callable[[], dict[str, Any]], n: int) -> dict[str, Any]:
    """``run()`` ``n`` times: the round where the default pipeline's ratio to dlib is the
    median, with every round's ratio per pipeline (``over_dlib_rounds``)."""
    results = [run() for _ in range(n)]
    results.sort(key=lambda r: r["rows"]["tcnn default"]["over_dlib"])
    median = dict(results[len(results) // 2])
    median["over_dlib_rounds"] = {
        name: [r["rows"][name]["over_dlib"] for r in results] for name in median["rows"]
    }
    median["loadavg_before"] = min(r["loadavg_before"] for r in results)
    median["loadavg_after"] = max(r["loadavg_after"] for r in results)
    return median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=5, help="passes over the photos in a round")
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds (the table shows the median round's rows)"
    )
    args = ap.parse_args()
    photos = [p for p in sorted(PHOTOS.glob("*")) if p.suffix in (".jpg", ".png")]
    result: dict[str, Any] = {"default_model": LandmarkDetector().model.card.name}
    result["shared_photos"] = rounds(lambda: race(photos, args.copies), args.rounds)
    print(result["shared_photos"]["rows"])
    with tempfile.TemporaryDirectory() as tmp:
        big = upscaled(photos, Path(tmp))
        result["upscaled"] = rounds(lambda: race(big, max(1, args.copies // 2)), args.rounds)
    print(result["upscaled"]["rows"])
    result["machine"] = machine()
    print(write_result("e2e", result))


if __name__ == "__main__":
    main()


def e2e_section(result: dict[str, Any]) -> str:
    """The README's ``bench:e2e`` section: one table, a column pair per photo set."""
    from benchmarks.tools.render_docs import measured

    sets = (("shared_photos", "shared photos"), ("upscaled", "upscaled 4x"))
    head = ["pipeline"]
    for _, label in sets:
        head += [f"{label}: photos/s", "x dlib", "CPU ms/photo", "x dlib (CPU)", "faces"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in result["shared_photos"]["rows"]:
        cells = [name]
        for key, _ in sets:
            r = result[key]["rows"][name]
            cells += [
                f"{r['photos_per_s']:.1f}",
                f"{r['over_dlib']:.2f}",
                f"{r['cpu_ms_per_photo']:.0f}",
                f"{r['cpu_over_dlib']:.2f}",
                str(r["faces"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    s, u = result["shared_photos"], result["upscaled"]
    lines.append("")
    note = (
        f"{len(s['photos'])} shared photos (512-1000 px) {s['copies']} times over, and the same "
        f"photos upscaled 4x to 2048-4000 px ({u['copies']} times over: large in size only, no "
        "real large photo is here); faces: found per pass."
    )
    load = f"Load average {s['loadavg_before']:.1f} before and {u['loadavg_after']:.1f} after"
    if "over_dlib_rounds" in s:
        spread = "; ".join(
            f"{label}: {', '.join(f'{x:.2f}' for x in result[key]['over_dlib_rounds'][name])}"
            for key, label in sets
            for name in ("tcnn default",)
        )
        note += (
            f" The table shows the median of {len(s['over_dlib_rounds']['dlib'])} rounds by "
            f"the default's ratio to dlib; that ratio in every round, lowest first: {spread}."
        )
    default = f"`tcnn default` is `LandmarkDetector()` with `{result['default_model']}`"
    lines.append(f"{note} {load}; {default}. {measured(result['machine'])}")
    return "\n".join(lines)
