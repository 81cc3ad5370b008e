"""Typed training configuration: defaults here, overrides from TOML and ``--set key=value``.

:class:`TrainConfig` and :class:`TweakConfig` share one :class:`Optim` (the optimiser) and a
Vanilla run's :class:`Augment` (the augmentation, which tweaking reuses). In TOML they are the
tables ``[optim]`` and ``[augment]``; a key of a table may also be given on its own, so
``--set lr=0.01`` is short for ``--set optim.lr=0.01`` (no name is in two tables).

Keys renamed in this version (``arch`` -> ``activation``, ``colour`` -> ``colour_jitter``)
fail with an error naming the new key; checkpoints saved before the change still load
(:meth:`TrainConfig.from_saved`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tcnn.errors import TcnnError
from tcnn.typed import coerce


@dataclass(frozen=True)
class Optim:
    """AdamW with a cosine learning-rate decay over every step of ``epochs``."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    # the training loss on each point's distance d (in normalising distances, as the metric):
    # () trains on d itself (the mean error); (w, eps) on the Wing loss (Feng et al., CVPR
    # 2018): w * ln(1 + d / eps) below w, linear above, which weighs small and middle errors
    # more than the mean error does. Validation always reports the mean error.
    wing: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.wing and (len(self.wing) != 2 or min(self.wing) <= 0):
            raise TcnnError(f"optim.wing {list(self.wing)}: expected [] or [width, curvature] > 0")


@dataclass(frozen=True)
class Augment:
    """Random jitter of each training crop (uniform in ``[-x, x]`` unless stated).

    Attributes:
        rotate_deg: rotation in degrees.
        scale_jitter: relative change of the crop's size.
        shift_jitter: shift of the crop, in crop sides.
        aspect_jitter: relative change of the crop's aspect ratio.
        mirror: mirror half of the crops (points swap by the scheme's flip pairs).
        colour_jitter: relative change of saturation, contrast and brightness.
        gray: share of crops turned to grey.
        channel_gain: colour casts: each channel of a crop scaled by ``exp(u)``, ``u``
            uniform in ``[-x, x]`` (0: none). Photos with a strong cast (a red or yellow
            print, blue almost gone) are otherwise outside what the faces teach.
        gamma: exposure: each crop's values ``v`` (0-1) become ``v ** exp(u)``, ``u`` uniform
            in ``[-x, x]`` (0: none); dark faces in bright scenes, and the reverse.
    """

    rotate_deg: float = 15.0
    scale_jitter: float = 0.1
    shift_jitter: float = 0.08
    aspect_jitter: float = 0.05
    mirror: bool = True
    colour_jitter: float = 0.3
    gray: float = 0.1
    channel_gain: float = 0.0
    gamma: float = 0.0


@dataclass
class TrainConfig:
    """One training recipe. Every field can be set in a TOML file or with ``--set``."""

    name: str = "vanilla5"
    data: str = "mtfl-train"
    data_root: str = ""
    detector: str = "dlib"
    # the face detector the model card names for use when none is given ("": ``detector``)
    default_detector: str = ""
    missed: str = "landmarks"  # box for faces the detector missed: "landmarks" or "drop"
    limit: int = 0  # use only the first N faces (0 = all); for quick checks
    val_fraction: float = 0.05
    # architecture
    activation: str = "abstanh"  # "abstanh" (the seed), "bnrelu", or "relu" (bnrelu folded)
    input_size: int = 40
    channels: tuple[int, ...] = (16, 48, 64, 64)  # four; five with trunk "deep" or "strided"
    hidden: int = 100
    trunk: str = "vanilla"  # "vanilla" (the seed's), "deep" or "strided" (tcnn.train.models)
    crop_scale: float = 1.0
    crop_shift_y: float = 0.0
    optim: Optim = field(default_factory=Optim)
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    threads: int = 2
    # export
    mirror_average: bool = True
    correct_offset: bool = True  # learn the labels' mean offset on the training faces
    # the label-convention rule (tcnn.train.convention): training labels moved by -label_shift px
    # on both axes before training; measured by `benchmarks/studies/label_rule.py` on training
    # faces. One value for every source, or one per source of a "+" union, in its order.
    label_shift: tuple[float, ...] = (0.0,)
    # the style rule (tcnn.train.convention.restyle): one entry per source of a "+" union, "" or a
    # JSON file of per-point offsets (`benchmarks/studies/label_style.py`, measured on training
    # faces) that moves that source's labels into the reference style, after label_shift
    label_style: tuple[str, ...] = ()
    # how often a face of each source is drawn relative to the others (one positive value per
    # source of a "+" union; empty: every face equally often), e.g. to weigh a small set of
    # human labels against many pseudo-labels
    source_weights: tuple[float, ...] = ()
    # start from the weights of a model of the same architecture instead of a random
    # initialisation (its input standardisation too): a run folder or its checkpoint.pt, or a
    # tcnn ONNX model (a shipped name or a path; not a BatchNorm one: its export folds them)
    init: str = ""
    out_dir: str = "runs"

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> TrainConfig:
        """The config saved in a checkpoint (also one saved before keys were renamed)."""
        return apply(cls(), saved, legacy=True)


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
    optim: Optim = field(default_factory=lambda: Optim(epochs=30, lr=2e-4))
    seed: int = 0
    threads: int = 2
    out_dir: str = "runs"

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> TweakConfig:
        """The tweak config saved in a checkpoint."""
        return apply(cls(), saved, legacy=True)


Config = typing.TypeVar("Config", TrainConfig, TweakConfig)

#: Keys renamed in this version: old name -> new name.
RENAMED = {"arch": "activation", "colour": "colour_jitter"}


def _tables(cfg: Any) -> dict[str, type]:
    """The nested settings of a config: ``{"optim": Optim, ...}``."""
    hints = typing.get_type_hints(type(cfg))
    return {f.name: hints[f.name] for f in fields(cfg) if dataclasses.is_dataclass(hints[f.name])}


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` and ``{"optim.lr": 1}`` both as ``{"optim.lr": 1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _resolve(cfg: Any, key: str, legacy: bool) -> str:
    """The dotted field name ``key`` stands for in ``cfg`` (``lr`` -> ``optim.lr``)."""
    tables = _tables(cfg)
    table, _, leaf = key.rpartition(".")
    if leaf in RENAMED:
        new = RENAMED[leaf]
        if not legacy:
            raise TcnnError(f"config {key}: renamed to {new!r}")
        leaf = new
    if table:
        if table in tables and leaf in {f.name for f in fields(tables[table])}:
            return f"{table}.{leaf}"
    elif leaf in {f.name for f in fields(cfg)} and leaf not in tables:
        return leaf
    else:
        owners = [t for t, kind in tables.items() if leaf in {f.name for f in fields(kind)}]
        if owners:
            return f"{owners[0]}.{leaf}"
    raise TcnnError(f"config: unknown key {key!r}")


def apply(cfg: Config, values: dict[str, Any], legacy: bool = False) -> Config:
    """A copy of ``cfg`` with ``values`` (unknown keys are an error).

    Args:
        values: flat keys, dotted keys (``optim.lr``) or tables (``{"optim": {...}}``).
        legacy: map keys renamed in this version instead of failing (saved checkpoints).
    """
    hints = typing.get_type_hints(type(cfg))
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in _flat(values).items():
        name = _resolve(cfg, key, legacy)
        table, _, leaf = name.rpartition(".")
        if table:
            kind = typing.get_type_hints(hints[table])[leaf]
            nested.setdefault(table, {})[leaf] = coerce(value, kind, name, "config", convert=True)
        else:
            top[name] = coerce(value, hints[name], name, "config", convert=True)
    for table, changes in nested.items():
        top[table] = dataclasses.replace(getattr(cfg, table), **changes)
    return dataclasses.replace(cfg, **top)


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
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise TcnnError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise TcnnError(f"{path}: invalid TOML ({exc})") from None
        try:
            cfg = apply(cfg, values)
        except TcnnError as exc:
            raise TcnnError(f"{path}: {exc}") from None
    pairs = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise TcnnError(f"--set {item!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    return apply(cfg, pairs)


def to_toml(cfg: TrainConfig | TweakConfig) -> str:
    """Write ``cfg`` as TOML: its own keys, then one table per nested setting."""
    tables = _tables(cfg)
    lines = [_line(f.name, getattr(cfg, f.name)) for f in fields(cfg) if f.name not in tables]
    for table in tables:
        sub = getattr(cfg, table)
        lines += ["", f"[{table}]", *(_line(f.name, getattr(sub, f.name)) for f in fields(sub))]
    return "\n".join(lines) + "\n"


def _line(key: str, v: Any) -> str:
    if isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, str):
        text = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(v, tuple):
        text = "[" + ", ".join(str(x) for x in v) + "]"
    else:
        text = repr(v)
    return f"{key} = {text}"
