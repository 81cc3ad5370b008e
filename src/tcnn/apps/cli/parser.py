"""The ``tcnn`` argument parser: one small function per command, in the order ``--help`` lists."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from tcnn.apps.cli.commands import (
    cmd_batch,
    cmd_demo,
    cmd_detect,
    cmd_evaluate,
    cmd_models,
    cmd_serve,
    cmd_video,
)
from tcnn.apps.cli.training import (
    cmd_calibrate,
    cmd_clusters,
    cmd_convert_caffe,
    cmd_ensemble,
    cmd_export,
    cmd_pseudo_label,
    cmd_quantize,
    cmd_stagger,
    cmd_train,
    cmd_tweak,
    cmd_tweak_head,
)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcnn", description="Facial landmarks (5 or 68 points) with Tweaked CNNs, offline."
    )
    from tcnn import __version__

    parser.add_argument("--version", action="version", version=f"tcnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo(sub)
    _detect(sub)
    _batch(sub)
    _evaluate(sub)
    _train(sub)
    _pseudo_label(sub)
    _tweak(sub)
    _tweak_head(sub)
    _clusters(sub)
    _export(sub)
    _video(sub)
    _models(sub)
    _quantize(sub)
    _ensemble(sub)
    _stagger(sub)
    _calibrate(sub)
    _convert_caffe(sub)
    _serve(sub)
    return parser


def _demo(sub: Subparsers) -> None:
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


def _detect(sub: Subparsers) -> None:
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
        help=(
            "face detector: retinaface-int8, retinaface (float), dlib (HOG) or dlib-cnn "
            "(default: the model card's; the default models' is retinaface-int8)"
        ),
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


def _batch(sub: Subparsers) -> None:
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


def _evaluate(sub: Subparsers) -> None:
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
        "300-W needs it): see docs/datasets.md",
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


def _train(sub: Subparsers) -> None:
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
        "else ../shared/data): see docs/datasets.md",
    )
    p.add_argument("--run-dir", help="run folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    p.set_defaults(func=cmd_train)


def _pseudo_label(sub: Subparsers) -> None:
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


def _tweak(sub: Subparsers) -> None:
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


def _tweak_head(sub: Subparsers) -> None:
    p = sub.add_parser(
        "tweak-head",
        help="fine-tune an exported model's FC5-FC6 head (the tweak's K = 1 control)",
        description="Fine-tune the FC5-FC6 head of a tcnn Vanilla CNN model with its "
        "convolutions frozen (their features on the training faces computed once from the "
        "ONNX graph), and write the model with the new head, the step recorded in its card. "
        "The shipped tcnn68 is runs/tcnn68-continue/model.onnx after this step: tcnn tweak-head "
        "runs/tcnn68-continue/model.onnx --config configs/tcnn68.toml -o tcnn68.onnx --name "
        "tcnn68. Needs tcnn[train].",
    )
    p.add_argument("model", help="a shipped model name or a tcnn .onnx file")
    p.add_argument("-o", "--output", required=True, help="output .onnx (its card beside it)")
    p.add_argument(
        "--config",
        help="TOML of the model's training config: the faces, split and augmentation "
        "(default: the training config in the model's card)",
    )
    p.add_argument("--name", help="the new model's name (default: the model's)")
    p.add_argument("--epochs", type=int, help="epochs over the features (default 3)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--batch", type=int, help="faces a step (default 256)")
    p.add_argument(
        "--passes",
        type=int,
        help="jittered crops per training face, beside the face and its mirror (default 1)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tweak_head)


def _clusters(sub: Subparsers) -> None:
    p = sub.add_parser(
        "clusters",
        help="picture of a Tweaked CNN's clusters",
        description="Mean training face of each cluster with its size and "
        "validation error, on one PNG sheet.",
    )
    p.add_argument("run", help="a Tweaked CNN run folder")
    p.add_argument("-o", "--output", help="PNG path (default RUN/clusters.png)")
    p.set_defaults(func=cmd_clusters)


def _export(sub: Subparsers) -> None:
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


def _video(sub: Subparsers) -> None:
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


def _models(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_models)


def _quantize(sub: Subparsers) -> None:
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
    p.add_argument(
        "--weight-bits",
        type=int,
        choices=(7, 8),
        default=7,
        help="bits of the int8 weights (default 7: within -64..64, which cannot saturate on "
        "x86 CPUs without VNNI; 8: the full range)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_quantize)


def _ensemble(sub: Subparsers) -> None:
    p = sub.add_parser(
        "ensemble",
        help="join landmark models into one whose answer is the mean of theirs",
        description="Write one ONNX model that runs every given model on the same crop and "
        "answers the mean of their answers (in crop units). The models must cut the same crop "
        "from the same boxes; a smaller input is resized inside the graph. Needs onnx "
        "(pip install 'tcnn[train]').",
    )
    p.add_argument("models", nargs="+", help="two or more shipped model names or .onnx paths")
    p.add_argument("-o", "--output", required=True, help="output .onnx (its card beside it)")
    p.add_argument("--name", help="the new model's name (default: the output's file name)")
    p.add_argument("--purpose", default="", help="the card's purpose sentence")
    p.add_argument(
        "--default-detector",
        help="the face detector users get when they name none (retinaface-int8, retinaface, dlib, "
        "dlib-cnn; default: the first member's that names one)",
    )
    p.set_defaults(func=cmd_ensemble)


def _stagger(sub: Subparsers) -> None:
    p = sub.add_parser(
        "stagger",
        help="split a mirror-averaging model's two views, so each face is placed twice at "
        "the cost of one pass",
        description="Write MODEL (mirror-averaging, with box_from_landmarks in its card) with "
        "its mirror average split into its two views: the graph gets a second input for the "
        "crops it sees mirrored, and tcnn then sees each face as it is in the detector's box "
        "and mirrored in the box that answer implies (the same network cost). No weight "
        "changes. Convert last (after quantize, ensemble and calibrate). Needs onnx "
        "(pip install 'tcnn[train]').",
    )
    p.add_argument("model", help="a shipped model name or .onnx path")
    p.add_argument("-o", "--output", required=True, help="output .onnx (its card beside it)")
    p.add_argument("--name", help="the new model's name (default: the output's file name)")
    p.add_argument("--purpose", default="", help="the card's purpose sentence")
    p.set_defaults(func=cmd_stagger)


def _calibrate(sub: Subparsers) -> None:
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
    p.add_argument(
        "--shape",
        action="store_true",
        help="fit a linear correction of the whole answer instead of fixed offsets: a ridge "
        "regression on the answer's principal components, with the boxes of the card's "
        "detector and of its default detector",
    )
    p.add_argument("--components", type=int, help="with --shape: components read (default 16)")
    p.add_argument("--ridge", type=float, help="with --shape: ridge penalty (default 0.03)")
    p.set_defaults(func=cmd_calibrate)


def _convert_caffe(sub: Subparsers) -> None:
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


def _serve(sub: Subparsers) -> None:
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
