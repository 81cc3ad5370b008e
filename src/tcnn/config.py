"""Typed training configuration: defaults here, overrides from TOML and ``--set key=value``."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from tcnn.errors import TcnnError


@dataclass
class TrainConfig:
    """One training recipe. Every field can be set in a TOML file or with ``--set``."""

    name: str = "vanilla5"
    data: str = "mtfl-train"
    data_root: str = ""
    detector: str = "dlib"
    missed: str = "landmarks"  # box for faces the detector missed: "landmarks" or "drop"
    limit: int = 0  # use only the first N faces (0 = all); for quick checks
    val_fraction: float = 0.05
    # architecture
    arch: str = "abstanh"  # "abstanh" (the seed) or "bnrelu"
    input_size: int = 40
    channels: tuple[int, int, int, int] = (16, 48, 64, 64)
    hidden: int = 100
    crop_scale: float = 1.0
    crop_shift_y: float = 0.0
    # optimisation
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 2
    # augmentation
    rotate_deg: float = 15.0
    scale_jitter: float = 0.1
    shift_jitter: float = 0.08
    aspect_jitter: float = 0.05
    mirror: bool = True
    colour: float = 0.3
    gray: float = 0.1
    # export
    mirror_average: bool = True
    correct_offset: bool = True  # learn the labels' mean offset on the training faces
    # the label-convention rule (tcnn.convention): training labels moved by -label_shift px
    # on both axes before training; measured by `benchmarks/label_rule.py` on training faces
    label_shift: float = 0.0
    # start from the weights of a tcnn ONNX model of the same architecture (a shipped name or a
    # path; its input standardisation too) instead of a random initialisation
    init: str = ""
    out_dir: str = "runs"


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
        item = typing.get_args(kind)[0]
        return tuple(_coerce(p, item, key) for p in parts)
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise TcnnError(f"config {key}: {value!r} is not a valid {kind.__name__}") from None


@dataclass
class TweakConfig:
    """Tweaking a trained Vanilla CNN into a Tweaked CNN (data and augmentation: the base's)."""

    base: str = "runs/vanilla5"  # the Vanilla run folder
    name: str = ""  # default: <base name>-k<k>
    k: int = 8
    covariance: str = "diag"  # "diag" or "full" (full after PCA to pca_dim)
    pca_dim: int = 32
    tweak_conv4: bool = True  # copy Conv4 into each head, not only FC5-FC6
    train_trunk: bool = True  # fine-tune the shared Conv1-Conv3 with the heads
    soft: bool = False  # export with soft routing (posterior-weighted heads)
    balance: int = 0  # oversample clusters to at least this many faces an epoch (0: off)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 2
    out_dir: str = "runs"


Config = typing.TypeVar("Config", TrainConfig, TweakConfig)


def apply(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with ``values`` (unknown keys are an error)."""
    hints = typing.get_type_hints(type(cfg))
    known = {f.name for f in fields(cfg)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise TcnnError(f"config: unknown key {key!r}")
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(cfg, **changes)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    default: Config | None = None,
) -> Config:
    """Defaults (``default`` or a :class:`TrainConfig`), the TOML at ``path``, then overrides."""
    cfg: Any = default if default is not None else TrainConfig()
    if path is not None:
        path = Path(path)
        try:
            cfg = apply(cfg, tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise TcnnError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise TcnnError(f"{path}: invalid TOML ({exc})") from None
    pairs = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise TcnnError(f"--set {item!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    return apply(cfg, pairs)


def to_toml(cfg: TrainConfig | TweakConfig) -> str:
    """Write ``cfg`` as TOML (flat keys; tuples as arrays)."""
    lines = []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, str):
            text = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(v, tuple):
            text = "[" + ", ".join(str(x) for x in v) + "]"
        else:
            text = repr(v)
        lines.append(f"{f.name} = {text}")
    return "\n".join(lines) + "\n"
