"""The ``tcnn`` command: one short function per subcommand over the Python API."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tcnn.errors import TcnnError

if TYPE_CHECKING:
    import numpy as np

    from tcnn.apps.outputs import DetectOutput
    from tcnn.pipeline import FileList, Result
    from tcnn.predictor import LandmarkDetector


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
        "detector": lm.detector_name,
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
        args.inputs, args.output, points=args.points, model=args.model, detector=args.detector,
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
    from tcnn.train.evaluate import evaluate, evaluate_300w, plot_ced

    if args.data == "300w":
        if not args.root:
            raise TcnnError("--data 300w needs --root (the folder holding lfpw, helen, afw, ibug)")
        rows = evaluate_300w(
            args.model, args.root, args.detector, progress=not args.quiet, refine=args.refine
        )
        if args.format == "json":
            print(json.dumps(rows, indent=1))
            return 0
        print(
            f"{'subset':<12} {'normaliser':<13} {'faces':>5} {'missed':>6} {'mean':>7} "
            f"{'median':>7} {'fail>8%':>8} {'fail>10%':>9} {'AUC@10%':>8}"
        )
        for r in rows:
            print(
                f"{r['subset']:<12} {r['normaliser']:<13} {r['faces']:>5} {r['missed']:>6} "
                f"{r['mean']:>6.2f}% {r['median']:>6.2f}% {r['failure_8']:>7.2f}% "
                f"{r['failure_10']:>8.2f}% {r['auc_10']:>8.2f}"
            )
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
    if args.format == "json":
        print(json.dumps(summary, indent=1))
        return 0
    print(
        f"{summary['model']} on {args.data} ({summary['normaliser']} normalisation: "
        f"{summary['normaliser_points']} of the labels)"
    )
    print(f"  faces evaluated  {summary['faces']}   missed by the detector {summary['missed']}")
    print(f"  mean error       {summary['mean']:.2f}%   median {summary['median']:.2f}%")
    print(f"  failures > 8%    {summary['failure_8']:.2f}%   > 10% {summary['failure_10']:.2f}%")
    print(f"  AUC at 10%       {summary['auc_10']:.2f}")
    print(f"  boxes            {summary['protocol']}")
    if "scoring" in summary:
        print(f"  scoring          {summary['scoring']}")
    if "by_region" in summary:
        parts = ", ".join(f"{k} {v:.2f}%" for k, v in summary["by_region"].items())
        print(f"  by part          {parts}")
    if "by_group" in summary:
        groups = ", ".join(
            f"{k} {v['mean']:.2f}% ({v['faces']})" for k, v in summary["by_group"].items()
        )
        print(f"  by group         {groups}")
    if args.ced:
        print(f"  CED curve        {args.ced}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.config import load_config
    from tcnn.train.loop import train

    overrides = [*args.set, *([f"data_root={args.root}"] if args.root else [])]
    cfg = load_config(args.config, overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path(cfg.out_dir) / cfg.name
    with _remove_if_left_empty(run_dir):
        run = train(cfg, run_dir, resume=args.resume)
    print(f"trained {cfg.name}: {run}/model.onnx (card {run}/model.json, curve {run}/loss.png)")
    return 0


def cmd_pseudo_label(args: argparse.Namespace) -> int:
    from tcnn.train.data.datasets import default_root
    from tcnn.train.data.pseudo import Thresholds, cache_file, describe, make_pseudo

    root = Path(args.root) if args.root else default_root()
    if not root.is_dir():
        raise TcnnError(f"data folder {root} not found; pass --root FOLDER (or set TCNN_DATA)")
    thresholds = Thresholds(args.max_flip, args.max_flip_retina, args.max_human)
    for name in args.datasets:
        result = make_pseudo(name, root, thresholds, not args.quiet, args.workers)
        print("\n".join(describe(result)))
        print(f"  wrote {cache_file(name)}")
    return 0


def cmd_tweak(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.config import TweakConfig, load_config
    from tcnn.train.tweak import tweak

    overrides = [f"base={args.base}", *([f"k={args.k}"] if args.k else []), *args.set]
    cfg = load_config(args.config, overrides, default=TweakConfig())
    run = tweak(cfg, args.run_dir, resume=args.resume)
    print(f"tweaked {cfg.base} into {run}/model.onnx (card {run}/model.json)")
    return 0


def cmd_clusters(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.tweak import cluster_sheet

    out = cluster_sheet(args.run, args.output or Path(args.run) / "clusters.png")
    print(f"wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.export import finish

    soft = {"hard": False, "soft": True, None: None}[args.routing]
    out = finish(
        Path(args.run),
        out=Path(args.output) if args.output else None,
        soft=soft,
        mirror=args.mirror,
    )
    if args.name:
        from tcnn.card import update_card

        update_card(out, name=args.name)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
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


def cmd_quantize(args: argparse.Namespace) -> int:
    from tcnn.train.quantize import quantize_model

    name = Path(str(args.model)).stem
    out = Path(args.output or f"{name}-int8.onnx")
    card = quantize_model(
        args.model, out, args.faces, args.seed, args.data, args.root, args.name, not args.quiet
    )
    q = (card.source or {}).get("quantization", {})
    calib = q.get("calibration", {})
    print(
        f"wrote {out} (card {out.with_suffix('.json')}): {card.name}, "
        f"{len(q.get('quantized_nodes', []))} layers int8, calibrated on "
        f"{calib.get('faces')} faces of {calib.get('data')}"
    )
    return 0


def need_onnx(command: str) -> None:
    """Raise a one-line error when ``command`` cannot write models (no ``onnx`` package)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise TcnnError(
            f"{command} writes the model with the onnx package: pip install 'tcnn[train]'"
        ) from None


def cmd_calibrate(args: argparse.Namespace) -> int:
    need_onnx("calibrate")
    from tcnn.train.calibrate import calibrate

    out = calibrate(args.model, args.data, args.output, args.name or "", args.root)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def cmd_convert_caffe(args: argparse.Namespace) -> int:
    need_onnx("convert-caffe")
    from tcnn.train.caffe import convert_caffe

    out = convert_caffe(args.model, args.mean, args.std, args.output)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from tcnn.apps.serve import ServeConfig, create_app, serve
    except ImportError:
        raise TcnnError("the web service needs its extra: pip install 'tcnn[serve]'") from None
    if args.workers < 1:
        raise TcnnError(f"--workers {args.workers}: must be at least 1")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    cfg = ServeConfig(
        args.max_upload_mb, int(args.max_pixels), threads, args.queue, args.max_wait_ms
    )
    if args.openapi:
        print(json.dumps(create_app(cfg).openapi(), indent=1))
        return 0
    serve(cfg, args.host, args.port, args.workers, access_log=not args.quiet)
    return 0


@contextlib.contextmanager
def _remove_if_left_empty(folder: Path) -> Iterator[None]:
    """Remove ``folder`` if the block made it and fails leaving it empty."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def cmd_video(args: argparse.Namespace) -> int:
    from tcnn.apps.video import LandmarkTracker, Smoothing, annotate_video, parse_source

    if args.output is None and args.jsonl is None:
        raise TcnnError("nothing to write: give -o OUT.mp4 and/or --jsonl LANDMARKS.jsonl")
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


def _need_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise TcnnError("training needs PyTorch: pip install 'tcnn[train]'")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="shipped model name (see `tcnn models`) or .onnx path")
    p.add_argument(
        "--points",
        type=int,
        choices=(5, 68),
        default=5,
        help="landmark scheme when --model is not given (default 5)",
    )


def _add_refine_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--refine",
        action="store_true",
        help="place each face twice, from the detector's box and from the box its first "
        "answer implies, and average: more precise, twice the landmark stage's time",
    )


def _datasets_epilog() -> str:
    from tcnn.train.data.datasets import DATASETS

    lines = [f"  {name:<18} {spec.description}" for name, spec in DATASETS.items()]
    lines.append(f"  {'300w':<18} all three 300-W test sets, both normalisations")
    return "datasets:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcnn", description="Facial landmarks (5 or 68 points) with Tweaked CNNs, offline."
    )
    from tcnn import __version__

    parser.add_argument("--version", action="version", version=f"tcnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="find faces in a sample photo, draw and save landmarks",
        description="Run the whole pipeline on scikit-image's astronaut photo "
        "(or IMAGE) and write landmarks.json and an annotated image.",
    )
    p.add_argument("image", nargs="?", help="a photo of your own (default: the astronaut)")
    p.add_argument("-o", "--output", default="tcnn-demo", help="output folder (default tcnn-demo)")
    _add_model_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "detect",
        help="landmarks of every face in images and folders",
        description="Find faces, place landmarks, write one record per face to "
        "OUTPUT/landmarks.json (or .csv) as the results come: Ctrl-C keeps every result so far "
        "in a complete file marked interrupted. Landmarks and boxes are in continuous pixel "
        "coordinates (pixel i covers [i, i+1)); subtract 0.5 for OpenCV/dlib pixel indices, "
        "or pass --pixel-centers. Folders are read recursively, except the output folder; "
        "files that are not images (videos, ...) are skipped and listed; a GIF is read as its "
        "first frame.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("-o", "--output", default="tcnn-out", help="output folder (default tcnn-out)")
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="landmarks file format (default json)",
    )
    p.add_argument(
        "--pixel-centers",
        action="store_true",
        help="write landmarks as OpenCV/dlib pixel indices (continuous value - 0.5)",
    )
    p.add_argument("--draw", action="store_true", help="also write annotated images")
    p.add_argument(
        "--draw-format",
        choices=("jpg", "png"),
        default="jpg",
        help="annotated image format (default jpg: several times faster to write than png)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="threads that read images and find faces (default: one per core, at most 4)",
    )
    _add_model_args(p)
    p.add_argument(
        "--detector",
        help="face detector: retinaface, dlib (HOG) or dlib-cnn (default: the model card's)",
    )
    p.add_argument("--upsample", type=int, help="face detector upsampling (default: by size)")
    p.add_argument(
        "--threshold",
        type=float,
        help="face detector score threshold (default: 0.8 for retinaface, 0.3 for dlib)",
    )
    _add_refine_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "batch",
        help="landmarks of millions of images into a resumable Parquet dataset",
        description="One row per face, per image without a face and per failed file, "
        "written as Parquet part files as work completes; all cores, or a Ray cluster. "
        "Boxes and landmarks are in continuous pixels (pixel i covers [i, i+1)).",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="a folder (recursive), a text file of paths, or a .parquet/.csv manifest",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="output folder (a Parquet dataset)")
    _add_model_args(p)
    p.add_argument("--detector", help="face detector (default: the model card's)")
    p.add_argument("--upsample", type=int, help="face detector upsampling (default: by size)")
    p.add_argument("--align", type=int, metavar="SIZE", help="also write aligned SIZExSIZE crops")
    p.add_argument(
        "--workers", type=int,
        help="worker processes (or Ray actors), each one process on one core (default: cores)",
    )  # fmt: skip
    p.add_argument(
        "--ray", nargs="?", const="", metavar="ADDRESS",
        help="run on Ray Data: a local runtime, or the cluster at ADDRESS (host:port)",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue a killed or stopped run")
    p.add_argument("--path-column", default="path", help="manifest column of paths (path)")
    p.add_argument("--part-size", type=int, default=256, help="inputs per part file (256)")
    _add_refine_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser(
        "evaluate",
        help="accuracy on a benchmark dataset",
        description="Mean error, median, failure rates, AUC and the CED curve of "
        "a model on a dataset, with boxes from a face detector.",
        epilog=_datasets_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="shipped model name or .onnx path (default: by the data)")
    p.add_argument(
        "--data",
        required=True,
        help="mtfl-aflw, aflw68, ytf68-test, 300w (all 300-W test sets), 300w-common, ...",
    )
    p.add_argument(
        "--root",
        help="folder holding the datasets (default $TCNN_DATA, else ../shared/data; "
        "300-W needs it): see Datasets in the README",
    )
    p.add_argument("--detector", help="face detector for the boxes (default: the model card's)")
    p.add_argument(
        "--normaliser",
        help="eye-centres (5 points); inter-ocular or inter-pupil (68); default: the "
        "dataset's (inter-pupil, the eye centres, for aflw68; inter-ocular for other 68)",
    )
    p.add_argument("--ced", help="write the CED curve to this PNG")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--limit", type=int, default=0, help="read only the first N faces (0: all; not 300w)"
    )
    _add_refine_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "train",
        help="train a Vanilla CNN (needs tcnn[train])",
        description="Train from a TOML config; writes a run folder with the "
        "checkpoint, metrics, loss curve, model.onnx and its card.",
    )
    p.add_argument("config", nargs="?", help="TOML config (see configs/); defaults otherwise")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    p.add_argument(
        "--root",
        help="folder holding the training data (same as --set data_root=; default $TCNN_DATA, "
        "else ../shared/data): see Datasets in the README",
    )
    p.add_argument("--run-dir", help="run folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "pseudo-label",
        help="68-point training labels from dlib's predictor, filtered",
        description="Run dlib's 68-point predictor (trained on iBUG 300-W: no commercial use) "
        "on MTFL's training faces or UTKFace, directly and mirrored, and write the faces that "
        "pass the filters to the data cache (continuous pixels), where the datasets "
        "mtfl-train-dlib68 and utkface-dlib68 read them. The teacher's answers are cached, so "
        "a second run with other thresholds only filters. Reports the filters' distributions.",
    )
    p.add_argument(
        "datasets",
        nargs="+",
        choices=("mtfl-train-dlib68", "utkface-dlib68"),
        metavar="DATASET",
        help="mtfl-train-dlib68 and/or utkface-dlib68",
    )
    p.add_argument("--root", help="folder holding mtfl/ and utkface/ (default ../shared/data)")
    p.add_argument(
        "--max-flip",
        type=float,
        default=0.05,
        help="most disagreement between direct and mirrored answers, over the eye distance "
        "(default 0.05)",
    )
    p.add_argument(
        "--max-flip-retina",
        type=float,
        default=0.03,
        help="the same for faces HOG missed, boxed by RetinaFace (default 0.03)",
    )
    p.add_argument(
        "--max-human",
        type=float,
        default=0.10,
        help="most 5-point error against MTFL's human points, over their eye distance "
        "(default 0.10)",
    )
    p.add_argument("--workers", type=int, help="processes (default: one per core, at most 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pseudo_label)

    p = sub.add_parser(
        "tweak",
        help="turn a trained Vanilla CNN into a Tweaked CNN",
        description="Cluster the features entering FC5 of a trained Vanilla "
        "CNN with a Gaussian mixture and fine-tune one head per cluster.",
    )
    p.add_argument("--base", required=True, help="the Vanilla CNN's run folder")
    p.add_argument("--k", type=int, help="clusters and heads (default 8)")
    p.add_argument("--config", help="TOML with tweak settings (see configs/)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a tweak setting (repeatable): covariance, pca_dim, "
        "tweak_conv4, train_trunk, soft, balance, epochs, lr, ...",
    )
    p.add_argument("--run-dir", help="run folder (default runs/<base>-k<K>)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    p.set_defaults(func=cmd_tweak)

    p = sub.add_parser(
        "clusters",
        help="picture of a Tweaked CNN's clusters",
        description="Mean training face of each cluster with its size and "
        "validation error, on one PNG sheet.",
    )
    p.add_argument("run", help="a Tweaked CNN run folder")
    p.add_argument("-o", "--output", help="PNG path (default RUN/clusters.png)")
    p.set_defaults(func=cmd_clusters)

    p = sub.add_parser(
        "export",
        help="export a run's checkpoint to ONNX again",
        description="Wrap a run's checkpoint for inference (mirror averaging, "
        "label offset) and write model.onnx with its card.",
    )
    p.add_argument("run", help="a run folder")
    p.add_argument("-o", "--output", help="ONNX path (default RUN/model.onnx)")
    p.add_argument("--routing", choices=("hard", "soft"), help="Tweaked CNN routing override")
    p.add_argument("--name", help="model name written into the card (default: the run's)")
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average with the prediction on the mirrored crop (default: as trained)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "video",
        help="landmarks on every frame of a video or camera, tracked and smoothed",
        description="Track faces through a video file or a camera: the face detector runs "
        "every N frames (and when a track is unsure), landmarks on every frame, a One Euro "
        "filter smooths them. Writes the annotated video and/or one JSON line per frame "
        "(frame, time, faces with a stable id, box, landmarks in continuous pixels, detected "
        "or tracked). Outputs appear only when finished.",
    )
    p.add_argument("input", metavar="INPUT", help="a video file, or a camera index (0, 1, ...)")
    p.add_argument("-o", "--output", help="annotated video (.mp4, .mov or .mkv)")
    p.add_argument("--jsonl", help="landmarks, one JSON line per frame")
    _add_model_args(p)
    p.add_argument("--detector", help="face detector name (default: the model's)")
    p.add_argument(
        "--smooth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="One Euro smoothing of the landmarks (default on)",
    )
    p.add_argument(
        "--min-cutoff", type=float, help="smoothing cutoff of a still face, Hz (default 0.2)"
    )
    p.add_argument("--beta", type=float, help="smoothing cutoff rise per face size/s (default 100)")
    p.add_argument(
        "--detect-every", type=int, default=10, metavar="N", help="detect faces every N frames"
    )
    p.add_argument("--max-faces", type=int, metavar="K", help="track at most K faces")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "quantize",
        help="write the int8 version of a model (ONNX Runtime static quantization)",
        description="Quantize a landmark model to int8 (QDQ), calibrated on faces of the "
        "training data its card names, cut by its crop rule; the card of the new model says "
        "how it was made. Needs onnx (pip install 'tcnn[train]').",
    )
    p.add_argument("model", help="shipped model name or float .onnx path")
    p.add_argument("-o", "--output", help="output .onnx (default MODEL-int8.onnx)")
    p.add_argument("--name", help="the new model's name (default MODEL-int8)")
    p.add_argument("--faces", type=int, default=512, help="calibration faces (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of the faces' draw (default 0)")
    p.add_argument("--data", help="calibration dataset (default: the card's training data)")
    p.add_argument("--root", help="data folder (default $TCNN_DATA or ../shared/data)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "calibrate",
        help="fit a model's per-point offsets to a dataset's labelling style",
        description="Fit the mean per-point offset between a dataset's labels and the model's "
        "answers on its faces (crop units, the card's detector's boxes) and write a copy of the "
        "model that adds it. Fit on training labels only (e.g. aflw68-train), never on a set "
        "you then report. Needs tcnn[train].",
    )
    p.add_argument("model", help="a shipped model name or an .onnx file")
    p.add_argument("--data", required=True, help="the dataset whose labels set the style")
    p.add_argument("-o", "--output", required=True, help="output .onnx")
    p.add_argument("--name", help="the new model's name (default MODEL-DATA)")
    p.add_argument("--root", help="data folder (default $TCNN_DATA or ../shared/data)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "convert-caffe",
        help="convert the seed's Caffe model to ONNX",
        description="Read vanillaCNN.caffemodel (no Caffe needed) with its mean "
        "and std images and write a tcnn ONNX model.",
    )
    p.add_argument("model", help="vanillaCNN.caffemodel")
    p.add_argument("--mean", required=True, help="trainMean.png")
    p.add_argument("--std", required=True, help="trainSTD.png")
    p.add_argument("-o", "--output", default="seed.onnx", help="output .onnx (default seed.onnx)")
    p.set_defaults(func=cmd_convert_caffe)

    p = sub.add_parser(
        "serve",
        help="web service and a page to try it (needs tcnn[serve])",
        description="Landmarks over HTTP (POST /v1/landmarks, /v1/align; GET /v1/models, "
        "/healthz, /metrics, /openapi.json) and a page at / to try them in a browser.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="processes, each loads the models")
    p.add_argument(
        "--threads",
        type=int,
        help="inference threads per worker, each with one-thread ONNX Runtime sessions "
        "(default cores / workers)",
    )
    p.add_argument(
        "--queue",
        type=int,
        help="requests per worker that may wait for an inference thread (default 16 per "
        f"core: {16 * (os.cpu_count() or 1)} on this machine's {os.cpu_count() or 1} cores); "
        "one more gets 503 with Retry-After before its upload is read, so a worker holds at "
        "most threads + queue uploads",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="optional bound by time (0, the default: none): also refuse when more requests "
        "wait than threads finish in this many ms at the recent mean run time, or when one "
        "has waited longer while others wait behind it",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload (10 MB)")
    p.add_argument("--max-pixels", type=float, default=40e6, help="largest image (40e6 pixels)")
    p.add_argument("--openapi", action="store_true", help="print the OpenAPI schema and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no access log")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 on a handled error, 2 on bad usage, 130 on
    Ctrl-C, 141 when the reader of the output went away, as in ``tcnn models | head``)."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except TcnnError as exc:
        print(f"tcnn: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tcnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:
    sys.exit(main())
