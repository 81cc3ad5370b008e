"""Plain data (JSON, TOML, ``--set key=value``) checked against a dataclass field's type.

The one coercion behind the model card (:meth:`tcnn.card.ModelCard.from_dict`, strict: a
card's JSON must hold the right types) and the training config (:func:`tcnn.train.config.apply`,
converting: ``--set lr=0.01`` gives text). Errors are one-line :class:`TcnnError` messages that
name the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from tcnn.errors import TcnnError

#: Text that ``convert`` reads as a boolean.
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def coerce(value: Any, kind: Any, key: str, context: str, convert: bool = False) -> Any:
    """``value`` as a value of the field type ``kind``.

    Handles the field types of cards and configs: ``bool``, ``int``, ``float``, ``str``,
    ``dict``, tuples (fixed size or ``tuple[T, ...]``; lists become tuples), dataclasses (from
    a dict; keys the dataclass lacks are passed over) and ``X | None``.

    Args:
        key: the field's name (dotted inside a dataclass), for messages.
        context: what holds the field, the start of messages (``"config"``,
            ``"model.onnx: model card"``).
        convert: convert what the type's constructor accepts (``"0.01"`` and ``1`` as a float,
            ``"16,48"`` as a tuple, ``"yes"``/``"off"`` as a boolean, anything as a string)
            instead of requiring the type itself (an int is still a valid float).

    Raises:
        TcnnError: ``"{context} field '{key}': {value} is not a valid {type}"``, or
            ``"{context} lacks '{key}'"`` for a dataclass field without a default.
    """
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    name = kind.__name__ if isinstance(kind, type) else str(kind)
    bad = TcnnError(f"{context} field {key!r}: {value!r:.60} is not a valid {name}")
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise bad
        return _dataclass(value, kind, key, context, convert)
    if origin is tuple:
        args = typing.get_args(kind)
        sized = not (len(args) == 2 and args[1] is Ellipsis)
        if convert and not isinstance(value, (list, tuple)):
            value = str(value).split(",")
        if not isinstance(value, (list, tuple)) or (sized and len(value) != len(args)):
            raise bad
        items = args if sized else args[:1] * len(value)
        return tuple(coerce(v, a, key, context, convert) for v, a in zip(value, items))
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if kind not in (bool, int, float, str):
        raise TypeError(f"{key}: unsupported field type {kind}")  # a bug here, not bad input
    if convert:
        return _converted(value, kind, bad)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    else:  # bool is an int to Python, never to a card
        numbers = (int, float) if kind is float else (int,)
        ok = not isinstance(value, bool) and isinstance(value, numbers)
    if not ok:
        raise bad
    return float(value) if kind is float else value


def _dataclass(value: dict[str, Any], kind: Any, key: str, context: str, convert: bool) -> Any:
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        path = f"{key}.{f.name}"
        if f.name in value:
            values[f.name] = coerce(value[f.name], hints[f.name], path, context, convert)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TcnnError(f"{context} lacks {path!r}")
    return kind(**values)


def _converted(value: Any, kind: type, bad: TcnnError) -> Any:
    try:
        if kind is not bool:
            return kind(value)
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE:
            return True
        if str(value).lower() in _FALSE:
            return False
    except (TypeError, ValueError):
        pass
    raise bad
