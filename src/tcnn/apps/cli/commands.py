"""The commands over the inference core and the apps: detect, demo, batch, evaluate, models,
video, serve."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tcnn.errors import TcnnError

if TYPE_CHECKING:
    import numpy as np

    from tcnn.apps.outputs import DetectOutput
    from tcnn.pipeline import FileList, Result
    from tcnn.predictor import LandmarkDetector


def at_least(option: str, value: float | None, low: float) -> None:
    """Refuse an option's value under ``low`` in one line, before any work (``None``: not given)."""
    if value is not None and value < low:
        raise TcnnError(f"{option} {value}: must be at least {low}")


def cmd_detect(args: argparse.Namespace) -> int:
    from tcnn.apps.outputs import DetectOutput
    from tcnn.pipeline import Pipeline, list_images
    from tcnn.predictor import LandmarkDetector

    listed = list_images(args.paths, exclude=Path(args.output))
    if not listed.files:
        passed = [f"{len(listed.skipped)} file(s) that are not images"] if listed.skipped else []
        passed += [f"{len(listed.results)} earlier tcnn result(s)"] if listed.results else []
        others = f" ({', '.join(passed)})" if passed else ""
        raise TcnnError(f"no images found in {' '.join(args.paths)}{others}")
    lm = LandmarkDetector(
        args.model, args.points, args.detector, args.upsample, args.threshold, refine=args.refine
    )
    pipe = Pipeline(lm, workers=args.workers, keep_images=args.draw)
    meta = _run_meta(lm, listed)
    out = DetectOutput(
        args.output,
        args.format,
        lm.model.points,
        meta,
        pixel_centers=args.pixel_centers,
        draw=args.draw_format if args.draw else None,
        draw_threads=min(2, pipe.workers),
    )
    code = _write_results(pipe.run(listed.files), out, len(listed.files), args.quiet)
    _report_listing(listed)
    return code


def _run_meta(lm: LandmarkDetector, listed: FileList | None = None) -> dict[str, object]:
    meta: dict[str, object] = {
        "model": lm.model.card.name,
        "points": lm.model.points,
        "detector": lm.face_detector,
        "refine": lm.refine,
    }
    if listed is not None:
        meta["skipped"] = [str(f) for f in listed.skipped]
        meta["duplicates"] = [str(f) for f in listed.duplicates]
    return meta


def _write_results(results: Iterable[Result], out: DetectOutput, total: int, quiet: bool) -> int:
    """Stream ``results`` into ``out`` with a progress bar; print the summary; the exit code."""
    from tqdm import tqdm

    bar = tqdm(results, total=total, desc="images", unit="img", disable=total < 2 or quiet)
    try:
        with out:
            for result in bar:
                out.add(result)
    except KeyboardInterrupt:
        bar.close()
        print(f"tcnn: interrupted: {out.summary()} (marked interrupted)", file=sys.stderr)
        return 130
    finally:
        bar.close()
        getattr(results, "close", lambda: None)()  # stop the pipeline's threads now
    print(out.summary())
    for failure in out.landmarks.failed:
        print(f"failed: {failure['error']}", file=sys.stderr)
    return 1 if out.landmarks.failed else 0


def _report_listing(listed: FileList, shown: int = 5) -> None:
    """Name the files a folder held that were not read, and the files given twice."""
    for what, files in (
        ("skipped (not images)", listed.skipped),
        ("given more than once (read once)", listed.duplicates),
    ):
        if files:
            names = ", ".join(str(f) for f in files[:shown])
            more = f" and {len(files) - shown} more" if len(files) > shown else ""
            print(f"{len(files)} file(s) {what}: {names}{more}")
    if listed.results:
        names = ", ".join(str(f) for f in listed.results[:shown])
        more = f" and {len(listed.results) - shown} more" if len(listed.results) > shown else ""
        print(f"not read, tcnn's own results from earlier runs: {names}{more}")


def cmd_demo(args: argparse.Namespace) -> int:
    from tcnn.apps.outputs import DetectOutput
    from tcnn.pipeline import Pipeline
    from tcnn.predictor import LandmarkDetector

    photo = None if args.image else _astronaut()
    lm = LandmarkDetector(args.model, args.points)
    out = DetectOutput(args.output, "json", lm.model.points, _run_meta(lm), draw="png")
    image = args.image if photo is None else str(_save_astronaut(photo, out.folder))
    results = list(Pipeline(lm, keep_images=True).run([image]))
    code = _write_results(iter(results), out, 1, quiet=True)
    for i, face in enumerate(results[0].faces):
        box = [round(v, 1) for v in face.box.as_tuple()]
        print(f"  face {i}: box {box}, {len(face.landmarks)} landmarks")
    return code


def _astronaut() -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        raise TcnnError(
            "the demo photo comes from scikit-image: pip install 'tcnn[demo]', "
            "or pass your own: tcnn demo PHOTO"
        ) from None
    return data.astronaut()


def _save_astronaut(astronaut: np.ndarray, folder: Path) -> Path:
    from PIL import Image

    from tcnn.files import save_image

    return save_image(Image.fromarray(astronaut), folder / "astronaut.png")


def cmd_batch(args: argparse.Namespace) -> int:
    from tcnn.apps.batch import failures, run

    summary = run(
        args.inputs, args.output, points=args.points, model=args.model, face_detector=args.detector,
        upsample=args.upsample, align=args.align, workers=args.workers, resume=args.resume,
        ray=False if args.ray is None else args.ray, path_column=args.path_column,
        part_size=args.part_size, progress=not args.quiet, refine=args.refine,
    )  # fmt: skip
    print(f"{summary.line()} in {summary.seconds:.1f} s")
    if not summary.failed:
        return 0
    # As tcnn detect: a run with inputs that failed exits 1; the rows hold every error.
    shown = failures(summary.out)
    for path, error in shown:
        print(f"failed: {error}" if path in error else f"failed: {path}: {error}", file=sys.stderr)
    more = f" ({summary.failed - len(shown)} more)" if summary.failed > len(shown) else ""
    print(
        f"tcnn: {summary.failed} input(s) failed{more}: the rows with status 'failed' in "
        f"{summary.out} hold each one's error",
        file=sys.stderr,
    )
    return 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tcnn.train.evaluate import evaluate, evaluate_300w, format_300w, format_summary, plot_ced

    if args.data == "300w":
        if not args.root:
            raise TcnnError("--data 300w needs --root (the folder holding lfpw, helen, afw, ibug)")
        given = {"--normaliser": args.normaliser, "--limit": args.limit, "--ced": args.ced}
        if unused := [flag for flag, value in given.items() if value]:
            raise TcnnError(
                f"{', '.join(unused)}: not with --data 300w (all its faces, both normalisers)"
            )
        rows = evaluate_300w(
            args.model, args.root, args.detector, progress=not args.quiet, refine=args.refine
        )
        print(json.dumps(rows, indent=1) if args.format == "json" else format_300w(rows))
        return 0

    if args.limit < 0:
        raise TcnnError(f"--limit {args.limit}: must be 0 (all faces) or more")
    res = evaluate(
        args.model,
        args.data,
        args.root,
        args.detector,
        args.normaliser,
        progress=not args.quiet,
        limit=args.limit,
        refine=args.refine,
    )
    summary = res.summary()
    if args.ced:
        plot_ced({summary["model"]: res.errors}, args.ced, title=f"{args.data}")
        summary["ced_png"] = str(args.ced)
    print(json.dumps(summary, indent=1) if args.format == "json" else format_summary(summary))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from tcnn.registry import list_models

    models = list_models()
    if args.format == "json":
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    for m in models:
        mark = " (default)" if m.default else ""
        metric = m.metrics.get("headline", "")
        print(f"{m.name:<16} {m.points:>2} points {m.size_kb:>6} KB  {metric}{mark}")
        if m.purpose:
            print(f"{'':<16} {m.purpose}")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from tcnn.apps.video import LandmarkTracker, Smoothing, annotate_video, parse_source

    if args.output is None and args.jsonl is None:
        raise TcnnError("nothing to write: give -o OUT.mp4 and/or --jsonl LANDMARKS.jsonl")
    at_least("--max-frames", args.max_frames, 1)
    given = {"min_cutoff": args.min_cutoff, "beta": args.beta}
    params = Smoothing(**{k: v for k, v in given.items() if v is not None})
    tracker = LandmarkTracker(
        points=args.points,
        model=args.model,
        face_detector=args.detector,
        detect_every=args.detect_every,
        max_faces=args.max_faces,
        smoothing=params if args.smooth else None,
    )
    source = parse_source(args.input)
    run = annotate_video(source, tracker, args.output, args.jsonl, args.max_frames, not args.quiet)
    fps = run.frames / run.seconds if run.seconds else 0.0
    wrote = " and ".join(str(p) for p in run.outputs)
    print(f"{run.frames} frame(s), {run.faces} face(s), {run.tracks} track(s), {fps:.0f} frames/s")
    print(f"wrote {wrote}")
    if run.error:
        print(
            f"tcnn: error: {run.error} (the output holds the {run.frames} frames before it)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from tcnn.apps.serve import ServeConfig, create_app, serve
    except ImportError:
        raise TcnnError("the web service needs its extra: pip install 'tcnn[serve]'") from None
    if args.workers < 1:
        raise TcnnError(f"--workers {args.workers}: must be at least 1")
    at_least("--threads", args.threads, 1)
    if not 0 <= args.port <= 65535:
        raise TcnnError(f"--port {args.port}: must be 0 to 65535")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    cfg = ServeConfig(
        args.max_upload_mb, int(args.max_pixels), threads, args.queue, args.max_wait_ms
    )
    if args.openapi:
        print(json.dumps(create_app(cfg).openapi(), indent=1))
        return 0
    serve(cfg, args.host, args.port, args.workers, access_log=not args.quiet)
    return 0
