"""The ``tcnn`` command: one short function per subcommand over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tcnn.errors import TcnnError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def iter_images(paths: Sequence[str]) -> Iterator[Path]:
    """Files named directly, and image files found (recursively, sorted) in named folders."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield p


def cmd_detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tcnn.draw import draw_faces
    from tcnn.imaging import load_image
    from tcnn.outputs import ensure_dir, records_csv, records_json, save_image, write_text
    from tcnn.predictor import LandmarkDetector

    files = list(iter_images(args.paths))
    if not files:
        raise TcnnError(f"no images found in {' '.join(args.paths)}")
    out = ensure_dir(args.output)
    lm = LandmarkDetector(args.model, args.points, args.detector, args.upsample, args.threshold)
    records, failures, empty, drawn = [], [], [], 0
    for path in tqdm(files, desc="images", unit="img", disable=len(files) < 2 or args.quiet):
        try:
            rgb = load_image(path)
            faces = lm.detect(rgb)
            if args.draw:
                save_image(draw_faces(rgb, faces), out / _drawn_name(path, files))
                drawn += 1
        except TcnnError as exc:
            failures.append(str(exc))
            continue
        if not faces:
            empty.append(str(path))
        records += [{"file": str(path), "face": i, **f.to_dict()} for i, f in enumerate(faces)]
    meta = {
        "model": lm.model.card.get("name", lm.model.path.stem),
        "points": lm.model.points,
        "detector": args.detector,
        "images": len(files),
        "no_face": empty,
        "failed": failures,
    }
    text = records_csv(records) if args.format == "csv" else records_json(records, **meta)
    result = write_text(out / f"landmarks.{args.format}", text)
    ok = len(files) - len(failures)
    print(
        f"{ok} image(s), {len(records)} face(s), {len(empty)} without a face: wrote {result}"
        + (f" and {drawn} annotated image(s) in {out}" if drawn else "")
    )
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


def _drawn_name(path: Path, files: list[Path]) -> str:
    same = [f for f in files if f.stem == path.stem]
    stem = path.stem if len(same) < 2 else f"{path.stem}-{same.index(path) + 1}"
    return f"{stem}.landmarks.png"


def cmd_demo(args: argparse.Namespace) -> int:
    if args.image is None:
        try:
            from skimage import data
        except ImportError:
            raise TcnnError(
                "the demo photo comes from scikit-image: pip install 'tcnn[demo]', "
                "or pass your own: tcnn demo PHOTO"
            ) from None
        from PIL import Image

        from tcnn.outputs import ensure_dir, save_image

        src = ensure_dir(args.output) / "astronaut.png"
        save_image(Image.fromarray(data.astronaut()), src)
        args.image = str(src)
    ns = argparse.Namespace(
        paths=[args.image],
        output=args.output,
        format="json",
        draw=True,
        model=args.model,
        points=args.points,
        detector="dlib",
        upsample=None,
        threshold=0.3,
        quiet=True,
    )
    code = cmd_detect(ns)
    result = json.loads((Path(args.output) / "landmarks.json").read_text())
    for face in result["faces"]:
        print(f"  face {face['face']}: box {face['box']}, {len(face['landmarks'])} landmarks")
    return code


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tcnn.evaluate import evaluate, evaluate_300w, plot_ced

    if args.data == "300w":
        if not args.root:
            raise TcnnError("--data 300w needs --root (the folder holding lfpw, helen, afw, ibug)")
        rows = evaluate_300w(args.model, args.root, args.detector, progress=not args.quiet)
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

    res = evaluate(
        args.model, args.data, args.root, args.detector, args.normaliser, progress=not args.quiet
    )
    summary = res.summary()
    if args.ced:
        plot_ced({summary["model"]: res.errors}, args.ced, title=f"{args.data}")
        summary["ced_png"] = str(args.ced)
    if args.format == "json":
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{summary['model']} on {args.data} ({summary['normaliser']} normalisation)")
    print(f"  faces evaluated  {summary['faces']}   missed by the detector {summary['missed']}")
    print(f"  mean error       {summary['mean']:.2f}%   median {summary['median']:.2f}%")
    print(f"  failures > 8%    {summary['failure_8']:.2f}%   > 10% {summary['failure_10']:.2f}%")
    print(f"  AUC at 10%       {summary['auc_10']:.2f}")
    print(f"  boxes            {summary['protocol']}")
    if args.ced:
        print(f"  CED curve        {args.ced}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.config import load_config
    from tcnn.train import train

    cfg = load_config(args.config, args.set)
    run = train(cfg, args.run_dir, resume=args.resume)
    print(f"trained {cfg.name}: {run}/model.onnx (card {run}/model.json, curve {run}/loss.png)")
    return 0


def cmd_tweak(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.config import TweakConfig, load_config
    from tcnn.tweak import tweak

    overrides = [f"base={args.base}", *([f"k={args.k}"] if args.k else []), *args.set]
    cfg = load_config(args.config, overrides, default=TweakConfig())
    run = tweak(cfg, args.run_dir, resume=args.resume)
    print(f"tweaked {cfg.base} into {run}/model.onnx (card {run}/model.json)")
    return 0


def cmd_clusters(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.tweak import cluster_sheet

    out = cluster_sheet(args.run, args.output or Path(args.run) / "clusters.png")
    print(f"wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train import finish

    soft = {"hard": False, "soft": True, None: None}[args.routing]
    out = finish(
        Path(args.run),
        out=Path(args.output) if args.output else None,
        soft=soft,
        mirror=args.mirror,
    )
    if args.name:
        from tcnn.export import update_card

        update_card(out, name=args.name)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from tcnn.models.registry import list_models

    models = list_models()
    if args.format == "json":
        print(json.dumps(models, indent=1))
        return 0
    for m in models:
        mark = " (default)" if m["default"] else ""
        metric = m["metrics"].get("headline", "")
        print(f"{m['name']:<16} {m['points']:>2} points {m['size_kb']:>6} KB  {metric}{mark}")
    return 0


def cmd_convert_caffe(args: argparse.Namespace) -> int:
    from tcnn.caffe import convert_caffe

    out = convert_caffe(args.model, args.mean, args.std, args.output)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from tcnn.serve import ServeConfig, create_app, serve
    except ImportError:
        raise TcnnError("the web service needs its extra: pip install 'tcnn[serve]'") from None
    if args.workers < 1:
        raise TcnnError(f"--workers {args.workers}: must be at least 1")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    cfg = ServeConfig(args.max_upload_mb, int(args.max_pixels), threads, args.queue)
    if args.openapi:
        print(json.dumps(create_app(cfg).openapi(), indent=1))
        return 0
    serve(cfg, args.host, args.port, args.workers, access_log=not args.quiet)
    return 0


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TcnnError("training needs PyTorch: pip install 'tcnn[train]'") from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="shipped model name (see `tcnn models`) or .onnx path")
    p.add_argument(
        "--points",
        type=int,
        choices=(5, 68),
        default=5,
        help="landmark scheme when --model is not given (default 5)",
    )


def _datasets_epilog() -> str:
    from tcnn.data.datasets import DATASETS

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
        description="Find faces, place landmarks, write one record per face.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("-o", "--output", default="tcnn-out", help="output folder (default tcnn-out)")
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="landmarks file format (default json)",
    )
    p.add_argument("--draw", action="store_true", help="also write annotated images")
    _add_model_args(p)
    p.add_argument("--detector", default="dlib", help="face detector: dlib (HOG) or dlib-cnn")
    p.add_argument("--upsample", type=int, help="face detector upsampling (default: by size)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.3,
        help="face detector score threshold (default 0.3; dlib's own is 0)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)

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
        help="mtfl-aflw, ytf68-test, 300w (all 300-W test sets), 300w-common, ...",
    )
    p.add_argument(
        "--root", help="data folder (default $TCNN_DATA or ../shared/data; 300-W needs it)"
    )
    p.add_argument("--detector", default="dlib", help="face detector for the boxes")
    p.add_argument("--normaliser", help="eye-centres (5 points); inter-ocular or inter-pupil (68)")
    p.add_argument("--ced", help="write the CED curve to this PNG")
    p.add_argument("--format", choices=("text", "json"), default="text")
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
    p.add_argument("--run-dir", help="run folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    p.set_defaults(func=cmd_train)

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

    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_models)

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
    p.add_argument("--threads", type=int, help="inference threads per worker (default cores/N)")
    p.add_argument("--queue", type=int, default=32, help="waiting requests before 503 (32)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload (10 MB)")
    p.add_argument("--max-pixels", type=float, default=40e6, help="largest image (40e6 pixels)")
    p.add_argument("--openapi", action="store_true", help="print the OpenAPI schema and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no access log")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 on a handled error, 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TcnnError as exc:
        print(f"tcnn: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tcnn: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
