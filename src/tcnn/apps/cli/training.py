"""The commands of the training wing: train, pseudo-label, tweak, tweak-head, clusters, export,
quantize, calibrate, convert-caffe (torch and onnx imported only when one runs)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from tcnn.apps.cli.commands import at_least
from tcnn.errors import TcnnError


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


def cmd_pseudo_label(args: argparse.Namespace) -> int:
    from tcnn.train.data.datasets import default_root
    from tcnn.train.data.filters import Thresholds, describe
    from tcnn.train.data.pseudo import cache_file, make_pseudo

    for flag in ("max_flip", "max_flip_retina", "max_human"):
        if getattr(args, flag) <= 0:
            raise TcnnError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be above 0")
    at_least("--workers", args.workers, 1)
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

    at_least("--k", args.k, 1)
    overrides = [f"base={args.base}", *([f"k={args.k}"] if args.k else []), *args.set]
    cfg = load_config(args.config, overrides, default=TweakConfig())
    run = tweak(cfg, args.run_dir, resume=args.resume)
    print(f"tweaked {cfg.base} into {run}/model.onnx (card {run}/model.json)")
    return 0


def cmd_tweak_head(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.heads import HeadRecipe, tune_head

    given = {k: getattr(args, k) for k in ("epochs", "lr", "batch", "passes")}
    recipe = HeadRecipe(**{k: v for k, v in given.items() if v is not None})
    if min(recipe.epochs, recipe.passes) < 0 or min(recipe.batch, recipe.lr) <= 0:
        raise TcnnError("tweak-head: --epochs and --passes at least 0, --batch and --lr above 0")
    if not Path(args.output).resolve().parent.is_dir():
        raise TcnnError(f"tweak-head: no folder {Path(args.output).parent} for the output")
    note = tune_head(args.model, args.output, args.config, args.name or "", recipe, not args.quiet)
    print(
        f"wrote {args.output} (card {Path(args.output).with_suffix('.json')}): validation "
        f"error {100 * note['val_before']:.2f}% before, {100 * note['val_after']:.2f}% after"
    )
    return 0


def cmd_clusters(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.tweak import cluster_sheet

    out = cluster_sheet(args.run, args.output or Path(args.run) / "clusters.png")
    print(f"wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _need_torch()
    from tcnn.train.export import export_run

    soft = {"hard": False, "soft": True, None: None}[args.routing]
    out = export_run(
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


def cmd_quantize(args: argparse.Namespace) -> int:
    from tcnn.train.quantize import quantize_model

    name = Path(str(args.model)).stem
    out = Path(args.output or f"{name}-int8.onnx")
    card = quantize_model(
        args.model,
        out,
        args.faces,
        args.seed,
        args.data,
        args.root,
        args.name,
        not args.quiet,
        args.weight_bits,
    )
    q = (card.source or {}).get("quantization", {})
    calib = q.get("calibration", {})
    print(
        f"wrote {out} (card {out.with_suffix('.json')}): {card.name}, "
        f"{len(q.get('quantized_nodes', []))} layers int8 ({args.weight_bits}-bit weights), "
        "calibrated on "
        f"{calib.get('faces')} faces of {calib.get('data')}"
    )
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from tcnn.train.ensemble import ensemble_models

    out = Path(args.output)
    if out.suffix != ".onnx":
        raise TcnnError(f"{out}: the output must be an .onnx file")
    card = ensemble_models(
        args.models, out, args.name or out.stem, args.purpose, args.default_detector
    )
    members = ", ".join(m["name"] for m in card.source["ensemble"])  # type: ignore[index]
    print(f"wrote {out} (card {out.with_suffix('.json')}): {card.name}, the mean of {members}")
    return 0


def cmd_stagger(args: argparse.Namespace) -> int:
    need_onnx("stagger")
    from tcnn.train.stagger import stagger_model

    out = Path(args.output)
    if out.suffix != ".onnx":
        raise TcnnError(f"{out}: the output must be an .onnx file")
    card = stagger_model(args.model, out, args.name or out.stem, args.purpose)
    print(f"wrote {out} (card {out.with_suffix('.json')}): {card.name}, staggered views")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    need_onnx("calibrate")
    from tcnn.train.calibrate import COMPONENTS, RIDGE, calibrate

    if not args.shape and (args.components is not None or args.ridge is not None):
        raise TcnnError(
            "calibrate: --components and --ridge set the shape calibration: add --shape"
        )
    out = calibrate(
        args.model,
        args.data,
        args.output,
        args.name or "",
        args.root,
        args.shape,
        COMPONENTS if args.components is None else args.components,
        RIDGE if args.ridge is None else args.ridge,
    )
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def cmd_convert_caffe(args: argparse.Namespace) -> int:
    need_onnx("convert-caffe")
    from tcnn.train.caffe import convert_caffe

    out = convert_caffe(args.model, args.mean, args.std, args.output)
    print(f"wrote {out} (card {out.with_suffix('.json')})")
    return 0


def need_onnx(command: str) -> None:
    """Raise a one-line error when ``command`` cannot write models (no ``onnx`` package)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise TcnnError(
            f"{command} writes the model with the onnx package: pip install 'tcnn[train]'"
        ) from None


def _need_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise TcnnError("training needs PyTorch: pip install 'tcnn[train]'")
