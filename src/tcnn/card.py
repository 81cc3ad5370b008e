"""The model card: one typed, frozen description of a model, embedded in its ONNX file.

A card holds everything needed to run a model correctly (input size, crop rule, channel
order, landmark scheme, label offset, the detector whose boxes it was trained on) and where it
came from (architecture, training data and recipe, measured metrics). It is written in one
place (:meth:`ModelCard.to_dict`, by :mod:`tcnn.train.export` and :mod:`tcnn.train.caffe`) and
read in one place (:meth:`ModelCard.from_dict`, by :mod:`tcnn.registry`), stored as JSON under
the ONNX metadata key ``tcnn_card`` and, for people, in ``<model>.json`` beside the file.

Torch-free; writing a card into an ONNX file (:func:`update_card`) needs the ``onnx`` package.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tcnn.codec import Crop
from tcnn.errors import TcnnError
from tcnn.typed import coerce

#: The ONNX metadata key that holds the card's JSON.
CARD_KEY = "tcnn_card"

INPUT = "float32 [N, 3, S, S] pixel values 0-255; normalisation is inside the graph"
OUTPUT = "float32 [N, K, 2] (x, y) in crop units, 0 to 1 across the crop"

#: Keys of cards written before this version, and the field each is now.
_RENAMED = {"colour": "channel_order"}


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """Everything needed to run a model correctly, and where it came from.

    Built with keyword arguments; ``name``, ``points``, ``input_size`` and ``crop`` are
    required. The ``dict`` fields are plain JSON data: treat them as read-only (use
    :meth:`replace`).

    Attributes:
        name: the model's name.
        points: landmarks per face (5 or 68).
        scheme: the landmark scheme's name (:func:`tcnn.schemes.scheme_for`); ``"5pt"`` or
            ``"68pt"`` from ``points`` when not given.
        input_size: side ``S`` of the square input crop in pixels.
        channel_order: ``"RGB"`` or ``"BGR"``: the order the graph expects its input channels
            in (the runtime reorders RGB crops for a BGR model). Cards before this version
            called it ``colour``.
        input, output: the graph's input and output in words.
        crop: how the crop is cut from the face box.
        detector: the face detector whose boxes the model was trained on (the box convention
            a detector's boxes are mapped onto, :func:`tcnn.detect.box_map`).
        default_detector: the face detector used when none is named; ``""``: ``detector``.
        purpose: what the model is for, in a sentence (``tcnn models`` shows it).
        boxes: how the training boxes were made, in words.
        coordinates: the coordinate convention of the training labels, in words.
        mirror_average: whether the graph averages in the prediction on the mirrored crop.
        staggered_mirror: whether the graph takes the two views of its mirror average apart
            (``tcnn stagger``, :mod:`tcnn.train.stagger`): a second input,
            ``image_mirrored``, for the crops it sees mirrored, and the answers of both inputs
            stacked. :class:`~tcnn.predictor.LandmarkDetector` then sees each face as it is in
            the detector's box and mirrored in the box that answer implies
            (``box_from_landmarks``), at the cost of one mirror-averaged pass. Written only
            when true.
        offset: ``(dx, dy)`` in crop units added to every point inside the graph (the labels'
            mean offset learned on the training faces; informational, already applied).
        pixel_offset: ``(dx, dy)`` image pixels added to every point after mapping it back to
            the image: 0 for tcnn's models (continuous outputs), 0.5 for the seed's converted
            model (its outputs are 0-based pixel indices).
        box_from_landmarks: ``(dx, dy, size)``: the median relation of the detector's face box
            to the landmarks on the training faces, as :meth:`tcnn.types.Box.landmark_relation`
            measures it; :meth:`tcnn.types.Box.from_landmarks` turns landmarks into the box
            the detector would give for a typical face (video tracking measures each face's own
            relation, in the detector's box shape). ``None`` when not measured.
        architecture: the network's arguments (``family``, ``channels``, ``activation``, ...).
        parameters: number of weights.
        training: where the weights came from: ``data``, face counts, ``epochs``, ``seed``,
            and ``config`` (the training config as saved; older cards use older key names).
        source: for converted models, the files they were converted from.
        licence: the terms of the weights.
        metrics: measured results (the benchmarks write ``benchmark``, ``protocol``,
            ``headline``, ``mean``, ``failure_10``, ...); free-form numbers and text.
        extra: keys this version does not know, kept so that rewriting a card loses nothing.
    """

    name: str
    points: int
    scheme: str = ""
    input_size: int
    channel_order: str = "RGB"
    input: str = INPUT
    output: str = OUTPUT
    crop: Crop
    detector: str = "dlib"
    default_detector: str = ""
    purpose: str = ""
    boxes: str = ""
    coordinates: str = ""
    mirror_average: bool = False
    staggered_mirror: bool = False
    offset: tuple[float, float] = (0.0, 0.0)
    pixel_offset: tuple[float, float] = (0.0, 0.0)
    box_from_landmarks: tuple[float, float, float] | None = None
    architecture: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    licence: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.scheme:
            object.__setattr__(self, "scheme", f"{self.points}pt")
        if self.channel_order not in ("RGB", "BGR"):
            raise TcnnError(f"model card channel_order: {self.channel_order!r} is not RGB or BGR")
        if self.default_detector not in ("", "retinaface", "retinaface-int8", "dlib", "dlib-cnn"):
            raise TcnnError(
                f"model card default_detector: {self.default_detector!r} is not retinaface, "
                "retinaface-int8, dlib or dlib-cnn"
            )
        if self.points <= 0 or self.input_size <= 0 or self.crop.scale <= 0:
            raise TcnnError("model card: points, input_size and crop.scale must be positive")
        if self.staggered_mirror and (not self.mirror_average or self.box_from_landmarks is None):
            raise TcnnError(
                "model card: staggered_mirror needs mirror_average and box_from_landmarks"
            )

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (tuples as lists, unknown keys last)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Crop):
                value = dataclasses.asdict(value)
                if not value["clip"]:  # written only when set: earlier cards stay current
                    del value["clip"]
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "staggered_mirror" and not value:
                continue  # written only when set: earlier cards stay current
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> ModelCard:
        """Read a card written by :meth:`to_dict` (or by an earlier version of tcnn).

        Args:
            source: what the card came from (a file name), for error messages.

        Raises:
            TcnnError: a required field (``name``, ``points``, ``input_size``, ``crop``) is
                missing, or a field has the wrong type; one line naming the field.
        """
        if not isinstance(data, dict):
            raise TcnnError(f"{source}: the model card is not a JSON object")
        data = {_RENAMED.get(k, k): v for k, v in data.items()}
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)} - {"extra"}
        context = f"{source}: model card"
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise TcnnError(f"{context} lacks {f.name!r}")
                continue
            values[f.name] = coerce(data[f.name], hints[f.name], f.name, context)
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**values, extra=extra)
        except TcnnError as exc:
            raise TcnnError(f"{source}: {exc}") from None

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, source: str = "model card") -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise TcnnError(f"{source}: its model card is not valid JSON") from None
        return cls.from_dict(data, source)

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` (field names; checked like :meth:`from_dict`)."""
        return ModelCard.from_dict({**self.to_dict(), **changes}, self.name)


def write_card(card: ModelCard, onnx_path: str | Path) -> Path:
    """Write the human-readable card ``<stem>.json`` beside ``onnx_path`` (atomically)."""
    from tcnn.files import write_text

    return write_text(Path(onnx_path).with_suffix(".json"), card.to_json(indent=2) + "\n")


def check_unstaggered(card: ModelCard, path: str | Path, tool: str) -> None:
    """Refuse a staggered model (its card's ``staggered_mirror``: a graph with two inputs) to
    ``tool``, which takes a graph with one; one line.

    Raises:
        TcnnError: ``PATH: staggered (two inputs); tcnn stagger comes last: run TOOL on the
            model it was made from (NAME)``.
    """
    if card.staggered_mirror:
        made_from = (card.source or {}).get("staggered", {}).get("from", "its source")
        raise TcnnError(
            f"{path}: staggered (two inputs); tcnn stagger comes last: run {tool} on the model "
            f"it was made from ({made_from})"
        )


def read_card(onnx_path: str | Path) -> ModelCard:
    """The card embedded in an ONNX file (needs ``onnx``)."""
    path = Path(onnx_path)
    entry = _card_entry(_load_onnx(path), path)
    return ModelCard.from_json(entry.value, str(path))


def save_model(model: Any, card: ModelCard, out: str | Path) -> Path:
    """Write the ``onnx.ModelProto`` ``model`` to ``out`` with ``card`` as its only metadata,
    and the card beside it as ``.json``; both atomically. Returns ``out``."""
    from tcnn.files import atomic_path

    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(model.SerializeToString())
    write_card(card, out)
    return out


def update_card(onnx_path: str | Path, **changes: Any) -> ModelCard:
    """Change fields of the card embedded in ``onnx_path`` and of its ``.json``.

    Only the ONNX file's metadata changes; the graph and weights are written back as they were.
    Both files are written atomically.

    Args:
        changes: card fields, e.g. ``metrics={...}`` or ``name="..."``.
    """
    from tcnn.files import atomic_path

    path = Path(onnx_path)
    model = _load_onnx(path)
    entry = _card_entry(model, path)
    card = ModelCard.from_json(entry.value, str(path)).replace(**changes)
    entry.value = card.to_json()
    with atomic_path(path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    write_card(card, path)
    return card


def graph_digest(onnx_path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of an ONNX model without its metadata (needs ``onnx``).

    It names the graph and weights, so it stays the same when only the card changes
    (``update_card``), and changes when the model is retrained or replaced.
    """
    import hashlib

    model = _load_onnx(Path(onnx_path))
    del model.metadata_props[:]
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:16]


def _load_onnx(path: Path) -> Any:
    try:
        import onnx
    except ImportError:
        raise TcnnError("writing model cards needs onnx: pip install onnx") from None
    if not path.is_file():
        raise TcnnError(f"{path}: no such model file")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises protobuf's DecodeError and others
        raise TcnnError(f"{path}: not a valid ONNX model ({type(exc).__name__})") from None


def _card_entry(model: Any, path: Path) -> Any:
    entry = next((p for p in model.metadata_props if p.key == CARD_KEY), None)
    if entry is None:
        raise TcnnError(f"{path}: ONNX model without a tcnn model card (export it with tcnn)")
    return entry
