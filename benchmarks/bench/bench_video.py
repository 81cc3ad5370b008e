"""Video tracking and smoothing against the raw per-frame pipeline, on videos with known truth.

Builds synthetic 640x480 videos from real photos (``synth_video``): a still face with per-frame
sensor noise, the face moved along known paths (translation up to 20% of the face size per
frame, zoom, in-plane rotation, all three at once) and two faces crossing. Truth is the raw
pipeline's landmarks on the undistorted photo moved by the known path. Compares in one run:

- ``raw``: the raw per-frame pipeline (``tcnn.pipeline.Pipeline``, detection on every frame);
- ``tracked``: ``LandmarkTracker`` without smoothing;
- ``smoothed``: ``LandmarkTracker`` with its default One Euro filter.

Measures jitter (still face), mean error and lag (paths), id switches (crossing) and frames/s.

    PYTHONPATH=src nice -n 19 python benchmarks/bench/bench_video.py    # writes results/video.json
    PYTHONPATH=src python benchmarks/bench/bench_video.py --quick      # a short smoke run
    PYTHONPATH=src python benchmarks/bench/bench_video.py --skip-speed --points 5   # accuracy only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from math import nan
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import DATA, RESULTS, command, machine
from benchmarks.tools.synth_video import FPS, Clip, crossing_clip, make_sprite, paths, single_clip
from tcnn.apps.video import LandmarkTracker, Smoothing, VideoReader, VideoWriter
from tcnn.draw import draw_faces
from tcnn.pipeline import Pipeline
from tcnn.predictor import LandmarkDetector
from tcnn.schemes import scheme_for

PHOTOS = DATA
SOURCES = {
    "single_face": PHOTOS / "photos" / "single_face.jpg",
    "ytf68_Timothy_Goebel": PHOTOS / "ytf68" / "test" / "Timothy_Goebel_01.jpg",
}
CROSSING = ("ytf68_Timothy_Goebel", "single_face")
ON_SCREEN = 150.0  # face box side at scale 1, pixels
NOISE = 4.0  # sensor noise, grey levels (of 255), per pixel and frame
FAST = 0.02  # lag is measured where truth moves faster than this (face sizes per frame)


def eye_distance(truth: np.ndarray) -> np.ndarray:
    """``[..., K, 2]`` truth -> ``[...]`` normalising distance of its scheme (pixels)."""
    scheme = scheme_for(truth.shape[-2])
    a, b = scheme.normalisers[scheme.default_normaliser]
    return np.linalg.norm(
        truth[..., list(a), :].mean(-2) - truth[..., list(b), :].mean(-2), axis=-1
    )


def match(truth: np.ndarray, faces: list[np.ndarray], limit: float) -> list[int | None]:
    """For each truth face ``[N, K, 2]``, the index of the nearest predicted face within
    ``limit`` eye distances (mean point distance), each prediction used once."""
    out: list[int | None] = [None] * len(truth)
    taken: set[int] = set()
    pairs = sorted(
        (float(np.linalg.norm(p - t, axis=-1).mean() / eye_distance(t)), i, j)
        for i, t in enumerate(truth)
        for j, p in enumerate(faces)
    )
    for d, i, j in pairs:
        if d <= limit and out[i] is None and j not in taken:
            out[i] = j
            taken.add(j)
    return out


def raw_run(clip: Clip, detector: LandmarkDetector) -> list[list[np.ndarray]]:
    """The raw per-frame pipeline's landmarks: per frame, a list of ``[K, 2]``."""
    return [[f.landmarks for f in r.faces] for r in Pipeline(detector).run(clip.frames)]


def tracker_run(clip: Clip, tracker: LandmarkTracker) -> dict[str, Any]:
    """Tracker outputs per frame: landmarks before (``raw``) and after smoothing, ids, detection
    flags. One run gives both: the tracker's boxes follow the landmarks before smoothing, so
    smoothing never changes what the network sees."""
    tracker.reset()
    frames = []
    for t, rgb in enumerate(clip.frames):
        frames.append(tracker.update(rgb, t / FPS))
    return {
        "raw": [[f.raw_landmarks for f in fs] for fs in frames],
        "smoothed": [[f.landmarks for f in fs] for fs in frames],
        "ids": [[f.track_id for f in fs] for fs in frames],
        "detections": sum(any(f.detected for f in fs) for fs in frames),
    }


def frame_errors(clip: Clip, k: int, seq: list[list[np.ndarray]]) -> np.ndarray:
    """``[F, N]`` mean point error per frame and truth face, in eye distances; nan where the
    face was not found."""
    truth = clip.truth[k]  # [F, N, K, 2]
    out = np.full(truth.shape[:2], np.nan)
    for t, faces in enumerate(seq):
        for n, j in enumerate(match(truth[t], faces, 0.5)):
            if j is not None:
                out[t, n] = np.linalg.norm(faces[j] - truth[t, n], axis=-1).mean()
    return out / eye_distance(truth)


def score(clip: Clip, k: int, seq: list[list[np.ndarray]]) -> dict[str, float]:
    """Error, jitter and lag of per-frame landmarks against the clip's truth."""
    truth = clip.truth[k]  # [F, N, K, 2]
    errors = frame_errors(clip, k, seq)
    jitter, lag_num, lag_den, missed = [], 0.0, 0.0, 0
    prev: list[np.ndarray | None] = [None] * truth.shape[1]
    vel = np.gradient(truth, axis=0)  # truth motion per frame
    for t, faces in enumerate(seq):
        m = match(truth[t], faces, 0.5)
        for n, j in enumerate(m):
            if j is None:
                missed += 1
                prev[n] = None
                continue
            p, tr = faces[j], truth[t, n]
            eye = float(eye_distance(tr))
            if prev[n] is not None:
                jitter.append(float(np.linalg.norm(p - prev[n], axis=-1).mean()) / eye)
            prev[n] = p
            v = vel[t, n]
            extent = float(np.ptp(tr, axis=0).max())
            if float(np.linalg.norm(v, axis=-1).mean()) > FAST * extent:
                lag_num += float(((tr - p) * v).sum())
                lag_den += float((v * v).sum())
    return {
        "error_pct": round(100 * float(np.nanmean(errors)), 3) if missed < errors.size else nan,
        "jitter_pct": round(100 * float(np.mean(jitter)), 3) if jitter else nan,
        "lag_frames": round(lag_num / lag_den, 3) if lag_den else 0.0,
        "missed": missed,
    }


def id_switches(clip: Clip, k: int, seq: list[list[np.ndarray]], ids: list[list[int]]) -> dict:
    """Changes of the track id matched to each truth face (CLEAR-MOT style) and frames missed."""
    last: list[int | None] = [None] * clip.truth[k].shape[1]
    switches, missed = 0, 0
    for t, (faces, fids) in enumerate(zip(seq, ids)):
        for n, j in enumerate(match(clip.truth[k][t], faces, 0.5)):
            if j is None:
                missed += 1
                continue
            if last[n] is not None and fids[j] != last[n]:
                switches += 1
            last[n] = fids[j]
    return {
        "id_switches": switches,
        "frames_missed": missed,
        "track_ids": sorted({i for fs in ids for i in fs}),
    }


def clips(k_detectors: dict[int, LandmarkDetector], frames: int, quick: bool) -> list[Clip]:
    sprites = {name: make_sprite(str(p), k_detectors) for name, p in SOURCES.items()}
    out = []
    names = list(sprites)[:1] if quick else list(sprites)
    for name in names:
        for i, (motion, fn) in enumerate(paths(ON_SCREEN, frames).items()):
            seed = 10 * list(sprites).index(name) + i
            out.append(
                single_clip(f"{motion}/{name}", sprites[name], fn, frames, ON_SCREEN, NOISE, seed)
            )
    heads = {n: make_sprite(str(SOURCES[n]), k_detectors, margin=1.7) for n in CROSSING}
    a, b = (heads[n] for n in CROSSING)
    for offset in (0.6, 0.3):
        out.append(
            crossing_clip(f"crossing/offset{offset}", a, b, frames, ON_SCREEN, offset, NOISE)
        )
    return out


def accuracy(
    clip_list: list[Clip], k: int, det: LandmarkDetector, smoothing: Smoothing
) -> dict[str, Any]:
    tracker = LandmarkTracker(det, smoothing=smoothing)
    rows: dict[str, Any] = {}
    for clip in clip_list:
        raw = raw_run(clip, det)
        tr = tracker_run(clip, tracker)
        sm = tr["smoothed"]
        runs = {"raw": raw, "tracked": tr["raw"], "smoothed": sm}
        row: dict[str, Any] = {name: score(clip, k, seq) for name, seq in runs.items()}
        # The same frames for all three: the tracker also covers frames the detector misses.
        errors = {name: frame_errors(clip, k, seq) for name, seq in runs.items()}
        common = ~np.any([np.isnan(e) for e in errors.values()], axis=0)
        for name, e in errors.items():
            row[name]["error_common_pct"] = round(100 * float(e[common].mean()), 3)
        row["common_frames"] = int(common.sum())
        row["detector_frames"] = tr["detections"]
        row["frames"] = len(clip.frames)
        if clip.name.startswith("crossing"):
            row["ids"] = id_switches(clip, k, sm, tr["ids"])
        rows[clip.name] = row
        print(k, clip.name, json.dumps(row), flush=True)
    return rows


def throughput(clip: Clip, k: int, det: LandmarkDetector, repeats: int) -> dict[str, Any]:
    """Frames/s of tracker and raw pipeline, without and with decoding and drawing.

    Each with its defaults: the tracker builds its own detector (one ONNX Runtime thread), the
    raw pipeline uses ``det`` (all cores, batches across frames).
    """
    tracker = LandmarkTracker(points=k)

    def tracked(frames: Any) -> int:
        tracker.reset()
        n = 0
        for t, rgb in enumerate(frames):
            tracker.update(rgb, t / FPS)
            n += 1
        return n

    def raw(frames: Any) -> int:
        return sum(1 for _ in Pipeline(det).run(frames))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        w = VideoWriter(path, FPS, (clip.frames[0].shape[1], clip.frames[0].shape[0]))
        for rgb in clip.frames:
            w.write(rgb)
        w.close()

        def decoded_tracked() -> int:
            tracker.reset()
            n = 0
            with VideoReader(path) as video:
                for f in video:
                    np.asarray(draw_faces(f.rgb, tracker.update(f.rgb, f.time)))
                    n += 1
            return n

        def decoded_raw() -> int:
            n = 0
            with VideoReader(path) as video:
                for r in Pipeline(det, keep_images=True).run(f.rgb for f in video):
                    np.asarray(draw_faces(r.image, r.faces))
                    n += 1
            return n

        def best(fn: Any) -> dict[str, float]:
            """Best wall-clock frames/s, and frames per CPU-second of this process (all its
            threads): the second is the work per frame, much less sensitive to other load."""
            wall, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                n = fn()
                wall.append(n / (time.perf_counter() - t0))
                cpu.append(n / (time.process_time() - c0))
            return {"fps": round(max(wall), 1), "frames_per_cpu_s": round(max(cpu), 1)}

        load = Path("/proc/loadavg").read_text().split()[:3]
        return {
            "load_at_start": load,
            "tracked": best(lambda: tracked(clip.frames)),
            "raw_pipeline": best(lambda: raw(clip.frames)),
            "tracked_decode_draw": best(decoded_tracked),
            "raw_pipeline_decode_draw": best(decoded_raw),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    ap.add_argument("--quick", action="store_true", help="one face source, few frames, no file")
    ap.add_argument(
        "--points", type=int, nargs="+", default=[5, 68], choices=[5, 68], help="models to run"
    )
    ap.add_argument(
        "--skip-speed",
        action="store_true",
        help="accuracy, jitter and ids only (for a loaded machine); writes a file only with --out",
    )
    ap.add_argument("--min-cutoff", type=float, help="One Euro setting (default: the tracker's)")
    ap.add_argument("--beta", type=float, help="One Euro setting (default: the tracker's)")
    ap.add_argument("--d-cutoff", type=float, help="One Euro setting (default: the tracker's)")
    ap.add_argument("--out", help="results file (default results/video.json)")
    args = ap.parse_args()
    frames = 40 if args.quick else args.frames
    chosen = {"min_cutoff": args.min_cutoff, "beta": args.beta, "d_cutoff": args.d_cutoff}
    smoothing = Smoothing(**{k: v for k, v in chosen.items() if v is not None})
    # Both models always: the clips (face sizes from the first detector's box, truth for each
    # scheme) do not depend on which models are scored.
    detectors = {k: LandmarkDetector(points=k) for k in (5, 68)}
    clip_list = clips(detectors, frames, args.quick)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    result: dict[str, Any] = {
        "command": command(),
        "machine": machine(),
        "load_before": load_before,
        "frames": frames,
    }
    result["smoothing"] = dataclasses.asdict(smoothing)
    for k in args.points:
        det = detectors[k]
        result[f"{k}pt"] = {"accuracy": accuracy(clip_list, k, det, smoothing)}
        if args.skip_speed:
            continue
        speed = throughput(
            next(c for c in clip_list if c.name.startswith("translate")),
            k,
            det,
            1 if args.quick else 2,
        )
        result[f"{k}pt"]["throughput_640x480"] = speed
        print(k, speed, flush=True)
    result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    out = args.out or (None if args.skip_speed else str(RESULTS / "video.json"))
    if out is not None and not args.quick:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
