"""Shipped models by name, and loading any tcnn ONNX file with its model card."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcnn.card import CARD_KEY, ModelCard
from tcnn.errors import TcnnError

WEIGHTS = Path(__file__).resolve().parent / "weights"

#: Guards the lazily built bulk session of every :class:`Model`.
_BULK_LOCK = threading.Lock()

#: The views :meth:`Model.predict` takes (one alone only from a staggered model).
VIEWS = ("both", "plain", "mirrored")
#: A staggered graph's input for the crops it sees mirrored (:mod:`tcnn.train.stagger`).
MIRRORED = "image_mirrored"

#: The model each scheme uses when none is named.
DEFAULTS = {5: "vanilla5-int8", 68: "tcnn68st-int8"}


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model as :func:`list_models` describes it (read from its card).

    Attributes:
        name: what :func:`load_model` takes.
        points: 5 or 68.
        default: whether it is the model used for ``points`` when none is named.
        size_kb: the ONNX file's size in KiB, rounded.
        purpose: one line on what it is for (the card's).
        metrics: measured results from the card (``"headline"``: a one-line summary).
    """

    name: str
    points: int
    default: bool
    size_kb: int
    purpose: str
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``tcnn models --format json``, ``GET /v1/models``)."""
        return asdict(self)


def list_models() -> list[ModelInfo]:
    """The shipped models by name, with points, file size and measured metrics from each card."""
    out = []
    for path in sorted(WEIGHTS.glob("*.onnx")):
        side = path.with_suffix(".json")
        card = ModelCard.from_json(side.read_text(), str(side))
        out.append(
            ModelInfo(
                name=path.stem,
                points=card.points,
                default=DEFAULTS.get(card.points) == path.stem,
                size_kb=round(path.stat().st_size / 1024),
                purpose=card.purpose,
                metrics=card.metrics,
            )
        )
    return out


@dataclass
class Model:
    """A loaded landmark model: an ONNX Runtime session and its card.

    Attributes:
        card: the model card (input size, crop rule, channel order, scheme, metrics ...).
    """

    path: Path
    card: ModelCard
    session: Any
    threads: int | None = None
    _bulk: Any = None

    @property
    def points(self) -> int:
        return self.card.points

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def predict(self, crops: np.ndarray, bulk: bool = False, view: str = "both") -> np.ndarray:
        """Landmarks of ``[N, S, S, 3]`` uint8 RGB crops: ``[N, K, 2]`` in crop units (0-1).

        Args:
            bulk: run on :attr:`bulk_session` (for chunks of large batches) instead of the
                multi-threaded :attr:`session`.
            view: ``"both"``: the graph's answer (with ``mirror_average``, the mean of the crop
                and its mirror image). A staggered model (the card's ``staggered_mirror``)
                also answers for one view alone: ``"plain"`` (the crops as they are) or
                ``"mirrored"`` (their mirror images, the answer mirrored back); each costs
                half of ``"both"``.
        """
        session = self.bulk_session if bulk else self.session
        x = self.network_input(crops)
        if not self.card.staggered_mirror:
            if view != "both":
                raise ValueError(f"{self.card.name}: view {view!r} needs a staggered model")
            out: np.ndarray = session.run(None, {self._input: x})[0]
            return out.reshape(len(crops), self.points, 2)
        if view not in VIEWS:
            raise ValueError(f"view {view!r}: one of {', '.join(VIEWS)}")
        feed = {
            "image": x if view != "mirrored" else x[:0],
            MIRRORED: x if view != "plain" else x[:0],
        }
        views = 2 if view == "both" else 1
        answers = session.run(None, feed)[0].reshape(views, len(crops), self.points, 2)
        return answers.mean(axis=0) if view == "both" else answers[0]

    def network_input(self, crops: np.ndarray) -> np.ndarray:
        """``[N, S, S, 3]`` uint8 RGB crops as the network's ``[N, 3, S, S]`` float32 input."""
        planes = crops.transpose(0, 3, 1, 2)
        if self.card.channel_order == "BGR":
            planes = planes[:, ::-1]
        x = np.empty(planes.shape, np.float32)
        np.copyto(x, planes)  # cast and reorder in one pass
        return x

    @property
    def bulk_session(self) -> Any:
        """The session for chunks of large batches, built on first use.

        Single-threaded, so that it runs on the calling thread and :attr:`bulk_workers`
        threads can run chunks side by side (no hand-over between ONNX Runtime's threads
        inside each operator).
        """
        if self._bulk is None:
            with _BULK_LOCK:
                if self._bulk is None:
                    self._bulk = _session(self.path, 1)
        return self._bulk

    @property
    def bulk_workers(self) -> int:
        """Threads that run a large batch's chunks at once: ``threads``, else one per core."""
        if self.threads:
            return self.threads
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1

    @property
    def _input(self) -> str:
        return str(self.session.get_inputs()[0].name)


def resolve(name_or_path: str | os.PathLike[str] | None, points: int = 5) -> Path:
    """The ONNX file of a shipped model name, a file path, or the default for ``points``."""
    if name_or_path is None:
        if points not in DEFAULTS:
            raise TcnnError(f"no shipped model has {points} points (5 or 68)")
        name_or_path = DEFAULTS[points]
    text = str(name_or_path)
    shipped = WEIGHTS / f"{text}.onnx"
    if shipped.exists():
        return shipped
    path = Path(text)
    if path.exists():
        return path
    if os.sep in text or text.endswith(".onnx"):
        raise TcnnError(f"{path}: no such model file")
    known = ", ".join(m.name for m in list_models()) or "none"
    raise TcnnError(f"unknown model {text!r} (shipped: {known}; or give an .onnx path)")


def load_model(
    name_or_path: str | os.PathLike[str] | None = None, points: int = 5, threads: int | None = None
) -> Model:
    """Load a shipped model by name, or a tcnn ONNX file by path.

    Args:
        name_or_path: a name from :func:`list_models`, a path, or ``None`` for the default.
        points: picks the default model when ``name_or_path`` is ``None``.
        threads: ONNX Runtime intra-op threads (``None``: all cores).
    """
    path = resolve(name_or_path, points)
    if path.is_dir() or path.stat().st_size == 0:
        raise TcnnError(f"{path}: not a model file ({'a folder' if path.is_dir() else 'empty'})")
    session = _session(path, threads)
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise TcnnError(f"{path}: ONNX model without a tcnn model card (export it with tcnn)")
    card = ModelCard.from_json(meta[CARD_KEY], str(path))
    inputs = [i.name for i in session.get_inputs()]
    if (inputs != ["image", MIRRORED]) if card.staggered_mirror else len(inputs) != 1:
        raise TcnnError(
            f"{path}: its graph's inputs ({', '.join(inputs)}) do not match its card "
            f"({f'staggered: image, {MIRRORED}' if card.staggered_mirror else 'one input'})"
        )
    return Model(path, card, session, threads)


def _session(path: Path, threads: int | None) -> Any:
    """An ONNX Runtime session whose threads wait without spinning between calls.

    A spinning thread holds a core after every call, taken from whatever runs next (cropping,
    decoding, face detection): end to end on photos (``LandmarkDetector().detect``, 2 cores)
    the process used 43 ms of CPU a photo with spinning threads and 31 ms without, at the same
    wall time.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for every load failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TcnnError(f"{path}: not a valid ONNX model ({first[:200]})") from None
