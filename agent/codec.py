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
- ``decode_message(payload)``: what the broker's relay reads. Reports and the answers the
  console passes on as JSON (eval and completion results) come as checked wire dicts
  (``WireReport``, ``WireResult``); every other message as ``protocol.decode`` builds it.

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
    CompleteResult,
    EvalResult,
    Message,
    ProtocolError,
    ReportMessage,
    _fields_of,
    decode,
    unpack_message,
)

__all__ = ["encode", "decode_wire", "decode_message", "to_wire", "WireReport", "WireResult"]

Check = Callable[[Any], Any]  # plain data -> normalized plain data, or _Mismatch
Encode = Callable[[Any], Any]  # protocol value -> plain data

_encoders: dict[Any, Encode | None] = {}  # None: the value is its own wire form
_checkers: dict[Any, Check] = {}


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
#
# The checkers accept exactly what ``protocol._convert`` accepts and raise ``_Mismatch``
# (no message, no path) where it raises ``ProtocolError``: the hot path builds no strings.
# On a mismatch ``decode_wire`` runs the reference decoder, which says exactly what is wrong.


class _Mismatch(Exception):
    """Not what the type wants: the reference decoder then explains why."""


# How a dataclass field is checked, inline in the loop (no call for the common leaves).
_STR, _INT, _FLOAT, _BOOL, _OPT_STR, _OPT_INT, _OTHER = range(7)
_LEAF_CODES = {str: _STR, int: _INT, float: _FLOAT, bool: _BOOL}
_ABSENT = object()
_REQUIRED = object()


def _checker(tp: Any) -> Check:
    """The function that validates plain data against ``tp`` and normalizes it."""
    found = _checkers.get(tp)
    if found is None:
        found = _build_checker(tp)
        _checkers[tp] = found
    return found


def _build_checker(tp: Any) -> Check:
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


def _check_float(data: Any) -> float:
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        raise _Mismatch
    return float(data)


def _check_int(data: Any) -> int:
    if isinstance(data, bool) or not isinstance(data, int):
        raise _Mismatch
    return data


def _check_str(data: Any) -> str:
    if not isinstance(data, str):
        raise _Mismatch
    return data


def _check_bool(data: Any) -> bool:
    if not isinstance(data, bool):
        raise _Mismatch
    return data


def _lazy(tp: Any) -> Callable[[], Check]:
    """The checker of ``tp``, looked up on first use (types may refer to themselves)."""
    resolved: list[Check] = []

    def get() -> Check:
        if not resolved:
            resolved.append(_checker(tp))
        return resolved[0]

    return get


def _union_checker(args: tuple[Any, ...]) -> Check:
    optional = type(None) in args
    options = [_lazy(a) for a in args if a is not type(None)]

    def check_union(data: Any) -> Any:
        if data is None and optional:
            return None
        for option in options:
            try:
                return option()(data)
            except _Mismatch:
                pass
        raise _Mismatch

    return check_union


def _tuple_checker(args: tuple[Any, ...]) -> Check:
    if len(args) == 2 and args[1] is Ellipsis:
        if args[0] is str:

            def check_strings(data: Any) -> list[Any]:
                if not isinstance(data, (list, tuple)):
                    raise _Mismatch
                for value in data:
                    if not isinstance(value, str):
                        raise _Mismatch
                return list(data)

            return check_strings
        item = _lazy(args[0])

        def check_items(data: Any) -> list[Any]:
            if not isinstance(data, (list, tuple)):
                raise _Mismatch
            check = item()
            return [check(value) for value in data]

        return check_items
    items = [_lazy(a) for a in args]

    def check_fixed(data: Any) -> list[Any]:
        if not isinstance(data, (list, tuple)) or len(items) != len(data):
            raise _Mismatch
        return [get()(value) for get, value in zip(items, data, strict=True)]

    return check_fixed


def _field_code(tp: Any) -> int:
    code = _LEAF_CODES.get(tp)
    if code is not None:
        return code
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        if len(args) == 2 and type(None) in args:
            other = args[0] if args[1] is type(None) else args[1]
            if other is str:
                return _OPT_STR
            if other is int:
                return _OPT_INT
    return _OTHER


def _dataclass_checker(cls: type[Any]) -> Check:
    kind = getattr(cls, "kind", None)
    head: dict[str, Any] = {"kind": kind} if isinstance(kind, str) else {}
    declared = {f.name: f for f in dataclasses.fields(cls)}
    fields: list[tuple[str, int, Any, Any]] = []  # name, code, checker (or None), default

    def resolve() -> None:
        for name, tp in _fields_of(cls):
            spec = declared[name]
            if spec.default is not dataclasses.MISSING:
                default = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                default = spec.default_factory()
            else:
                default = _REQUIRED
            code = _field_code(tp)
            fields.append((name, code, _checker(tp) if code == _OTHER else None, default))

    def check_dataclass(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _Mismatch
        if not fields:
            resolve()
        out = head.copy()
        get = data.get
        for name, code, check, default in fields:
            value = get(name, _ABSENT)
            if value is _ABSENT:
                if default is _REQUIRED:
                    raise _Mismatch
                # the wire form of the default (a fresh list for a tuple)
                out[name] = list(default) if isinstance(default, tuple) else default
            elif code == _STR or (code == _OPT_STR and value is not None):
                if not isinstance(value, str):
                    raise _Mismatch
                out[name] = value
            elif code == _INT or (code == _OPT_INT and value is not None):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise _Mismatch
                out[name] = value
            elif code == _OTHER:
                out[name] = check(value)
            elif code == _FLOAT:
                out[name] = _check_float(value)
            elif code == _BOOL:
                if not isinstance(value, bool):
                    raise _Mismatch
                out[name] = value
            else:  # an optional leaf that is None
                out[name] = None
        return out

    return check_dataclass


def decode_wire(payload: bytes) -> tuple[type[Any], dict[str, Any]]:
    """The message class and validated wire dict of ``payload`` (see the module's docstring);
    anything ``protocol.decode`` refuses raises ``ProtocolError``."""
    cls, data = unpack_message(payload)
    return cls, _check_message(cls, data, payload)


def _check_message(cls: type[Any], data: dict[str, Any], payload: bytes) -> dict[str, Any]:
    try:
        checked: dict[str, Any] = _checker(cls)(data)
    except (_Mismatch, RecursionError):
        decode(payload)  # the reference decoder raises ProtocolError, saying exactly why
        raise ProtocolError(f"{cls.__name__}: does not match the protocol") from None
    return checked


@dataclasses.dataclass(frozen=True, slots=True)
class WireReport:
    """A report message as the broker takes it: the report's validated wire dict (what it
    stores as JSON) and the size of the message that carried it."""

    report: dict[str, Any]
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class WireResult:
    """An eval's or a completion's answer as the broker takes it: its class (``EvalResult``
    or ``CompleteResult``), its request id and its validated wire dict, ``kind`` and
    ``request_id`` included (equal to ``protocol.to_wire`` of the decoded message). The
    console answers and stores that dict as JSON, so it never needs the dataclass."""

    cls: type[EvalResult] | type[CompleteResult]
    request_id: str
    wire: dict[str, Any]


def decode_message(payload: bytes) -> Message | WireReport | WireResult:
    """``protocol.decode``, except that a report comes as a ``WireReport`` and an eval's or
    completion's answer as a ``WireResult`` (checked like ``decode_wire``, never built into
    dataclasses); ``ProtocolError`` for exactly what ``decode`` refuses."""
    cls, data = unpack_message(payload)
    if cls is ReportMessage:
        wire = _check_message(cls, data, payload)
        return WireReport(report=wire["report"], size=len(payload))
    if cls is EvalResult or cls is CompleteResult:
        wire = _check_message(cls, data, payload)
        return WireResult(cls=cls, request_id=wire["request_id"], wire=wire)
    return decode(payload)  # other messages: built as dataclasses (a second, cheap unpack)
