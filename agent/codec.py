"""The protocol's codec compiled per message class: the hot path of an error storm.

``protocol.to_wire``/``protocol.decode`` walk type hints for every value they meet, which
costs hundreds of microseconds per report. This module builds, once per dataclass, small
closures that do the same work with the types already resolved:

- ``encode(message)``: the same msgpack bytes as ``protocol.encode`` (the agent's side).
- ``decode_wire(payload)``: the message's class and its wire dict, validated exactly as
  ``protocol.decode`` validates (same accepted inputs, ``ProtocolError`` for the rest) and
  equal to ``to_wire(decode(payload))``: defaults filled in, unknown keys dropped, numbers
  in float fields made floats, sequences made lists. The broker stores a report's wire
  dict as JSON, so it never needs the dataclasses in between.

``tests/agent/test_codec.py`` checks both against the reference functions in ``protocol``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgpack

from .protocol import (
    _MESSAGE_TYPES,
    MAX_MESSAGE_BYTES,
    Message,
    ProtocolError,
    ReportMessage,
    _fields_of,
    decode,
)

__all__ = ["encode", "decode_wire", "decode_message", "to_wire", "WireReport"]

Convert = Callable[[Any, str], Any]  # (plain data, where) -> normalized plain data
Encode = Callable[[Any], Any]  # protocol value -> plain data

_encoders: dict[Any, Encode | None] = {}  # None: the value is its own wire form
_checkers: dict[Any, Convert] = {}


# --- encoding -----------------------------------------------------------------------------


def _encoder(tp: Any) -> Encode | None:
    """The function turning a value of type ``tp`` into plain data; None for identity."""
    if tp not in _encoders:
        _encoders[tp] = _build_encoder(tp)
    return _encoders[tp]


def _build_encoder(tp: Any) -> Encode | None:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if all(_is_leaf(o) for o in options):
            return None
        if len(options) == 1:  # Optional[X]: callers skip None themselves
            return _encoder(options[0])
        return _dynamic
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if all(_is_leaf(a) for a in args):
            return list
        if len(args) == 1:
            return _sequence_encoder(args[0])
        return _dynamic
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_encoder(tp)
    return None


def _is_leaf(tp: Any) -> bool:
    return tp in (str, int, float, bool, type(None))


def _sequence_encoder(item_type: Any) -> Encode:
    resolved: list[Encode] = []

    def encode_items(value: Any) -> list[Any]:
        if not resolved:  # on first use: the item type may be the one being built
            resolved.append(_encoder(item_type) or _dynamic)
        encode_item = resolved[0]
        return [encode_item(item) for item in value]

    return encode_items


def _dataclass_encoder(cls: type[Any]) -> Encode:
    kind = getattr(cls, "kind", None)
    head: dict[str, Any] = {"kind": kind} if isinstance(kind, str) else {}
    fields: list[tuple[str, Encode | None]] = []

    def encode_dataclass(value: Any) -> dict[str, Any]:
        if not fields:  # on first use: field types may refer back to this class
            fields.extend((name, _encoder(tp)) for name, tp in _fields_of(cls))
        out = head.copy()
        for name, encoder in fields:
            item = getattr(value, name)
            out[name] = item if encoder is None or item is None else encoder(item)
        return out

    return encode_dataclass


def _dynamic(value: Any) -> Any:
    """Plain data of a value whose declared type does not settle its shape."""
    if isinstance(value, (tuple, list)):
        return [_dynamic(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoder = _encoder(type(value))
        return value if encoder is None else encoder(value)
    return value


def to_wire(message: Any) -> Any:
    """``protocol.to_wire`` of a protocol dataclass, compiled."""
    encoder = _encoder(type(message))
    return message if encoder is None else encoder(message)


def encode(message: Message) -> bytes:
    """The same bytes as ``protocol.encode(message)``, compiled."""
    packed: bytes = msgpack.packb(to_wire(message), use_bin_type=True)
    return packed


# --- validating ---------------------------------------------------------------------------


def _checker(tp: Any) -> Convert:
    """The function that validates plain data against ``tp`` and normalizes it."""
    found = _checkers.get(tp)
    if found is None:

        def late(data: Any, where: str) -> Any:  # for recursive types: resolved on use
            return _checkers[tp](data, where)

        _checkers[tp] = late
        found = _build_checker(tp)
        _checkers[tp] = found
    return found


def _build_checker(tp: Any) -> Convert:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _union_checker(typing.get_args(tp))
    if origin is tuple:
        return _tuple_checker(typing.get_args(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_checker(tp)
    if tp is float:
        return _check_float
    if tp is int:
        return _check_int
    if tp is str:
        return _check_str
    if tp is bool:
        return _check_bool
    raise TypeError(f"unsupported type {tp!r}")  # pragma: no cover - the protocol's own types


def _check_float(data: Any, where: str) -> float:
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        raise ProtocolError(f"{where}: expected a number, got {type(data).__name__}")
    return float(data)


def _check_int(data: Any, where: str) -> int:
    if isinstance(data, bool) or not isinstance(data, int):
        raise ProtocolError(f"{where}: expected an integer, got {type(data).__name__}")
    return data


def _check_str(data: Any, where: str) -> str:
    if not isinstance(data, str):
        raise ProtocolError(f"{where}: expected str, got {type(data).__name__}")
    return data


def _check_bool(data: Any, where: str) -> bool:
    if not isinstance(data, bool):
        raise ProtocolError(f"{where}: expected bool, got {type(data).__name__}")
    return data


def _union_checker(args: tuple[Any, ...]) -> Convert:
    optional = type(None) in args
    options = [_checker(a) for a in args if a is not type(None)]
    if len(options) == 1:
        (only,) = options

        def check_optional(data: Any, where: str) -> Any:
            if data is None and optional:
                return None
            try:
                return only(data, where)
            except ProtocolError as error:
                raise ProtocolError(f"{where}: {error}") from None

        return check_optional

    def check_union(data: Any, where: str) -> Any:
        if data is None and optional:
            return None
        errors = []
        for option in options:
            try:
                return option(data, where)
            except ProtocolError as error:
                errors.append(str(error))
        raise ProtocolError(f"{where}: {'; '.join(errors)}")

    return check_union


def _tuple_checker(args: tuple[Any, ...]) -> Convert:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _checker(args[0])
        if item is _check_str:

            def check_strings(data: Any, where: str) -> list[Any]:
                if not isinstance(data, (list, tuple)):
                    raise ProtocolError(f"{where}: expected a list, got {type(data).__name__}")
                for i, value in enumerate(data):
                    if not isinstance(value, str):
                        _check_str(value, f"{where}[{i}]")
                return list(data)

            return check_strings

        def check_items(data: Any, where: str) -> list[Any]:
            if not isinstance(data, (list, tuple)):
                raise ProtocolError(f"{where}: expected a list, got {type(data).__name__}")
            return [item(value, f"{where}[{i}]") for i, value in enumerate(data)]

        return check_items
    items = [_checker(a) for a in args]

    def check_fixed(data: Any, where: str) -> list[Any]:
        if not isinstance(data, (list, tuple)):
            raise ProtocolError(f"{where}: expected a list, got {type(data).__name__}")
        if len(items) != len(data):
            raise ProtocolError(f"{where}: expected {len(items)} items, got {len(data)}")
        pairs = enumerate(zip(items, data, strict=True))
        return [check(value, f"{where}[{i}]") for i, (check, value) in pairs]

    return check_fixed


_REQUIRED = object()


def _dataclass_checker(cls: type[Any]) -> Convert:
    kind = getattr(cls, "kind", None)
    declared = {f.name: f for f in dataclasses.fields(cls)}
    fields: list[tuple[str, Convert, Any]] = []
    for name, tp in _fields_of(cls):
        spec = declared[name]
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory
        else:
            default = _REQUIRED
        fields.append((name, _checker(tp), default))
    name_of = cls.__name__

    def check_dataclass(data: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected a map, got {type(data).__name__}")
        out: dict[str, Any] = {"kind": kind} if isinstance(kind, str) else {}
        missing = []
        for name, check, default in fields:
            if name in data:
                out[name] = check(data[name], f"{where}.{name}")
            elif default is _REQUIRED:
                missing.append(name)
            else:  # the wire form of the default (a fresh list for a tuple)
                out[name] = list(default) if isinstance(default, tuple) else default
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise ProtocolError(f"{where}: {name_of}() is missing required fields: {names}")
        return out

    return check_dataclass


def decode_wire(payload: bytes) -> tuple[type[Any], dict[str, Any]]:
    """The message class and validated wire dict of ``payload`` (see the module's docstring);
    anything ``protocol.decode`` refuses raises ``ProtocolError``."""
    cls, data = _unpack(payload)
    return cls, _check_message(cls, data)


def _unpack(payload: bytes) -> tuple[type[Any], dict[str, Any]]:
    """The message's class and its unchecked map; ``ProtocolError`` as ``decode``."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"malformed msgpack: {type(error).__name__}: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a map, got {type(data).__name__}")
    kind = data.get("kind")
    cls = _MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    return cls, data


def _check_message(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    try:
        checked: dict[str, Any] = _checker(cls)(data, cls.__name__)
    except RecursionError:
        raise ProtocolError("message nested too deeply") from None
    return checked


@dataclasses.dataclass(frozen=True, slots=True)
class WireReport:
    """A report message as the broker takes it: the report's validated wire dict (what it
    stores as JSON) and the size of the message that carried it."""

    report: dict[str, Any]
    size: int


def decode_message(payload: bytes) -> Message | WireReport:
    """``protocol.decode``, except that a report comes as a ``WireReport`` (checked by
    ``decode_wire``, never built into dataclasses); ``ProtocolError`` as ``decode``."""
    cls, data = _unpack(payload)
    if cls is ReportMessage:
        wire = _check_message(cls, data)
        return WireReport(report=wire["report"], size=len(payload))
    return decode(payload)  # small messages: built as dataclasses (a second, cheap unpack)
