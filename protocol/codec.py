"""The reference codec: protocol dataclasses to msgpack bytes and back, checked field by field.

Plain dicts exist only here (``to_wire``/``from_wire``) and in the agent's generated
``encoder``; the broker stores and serves the same wire dicts as JSON, and decodes with
msgspec (``broker/wire.py``), falling back on ``decode`` to say why a message is refused.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

import msgpack

from debugbroker.protocol.limits import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    check_nesting,
    check_repeats,
)
from debugbroker.protocol.messages import MESSAGE_TYPES, Message

__all__ = ["encode", "decode", "unpack_message", "to_wire", "from_wire", "fields_of"]

_FIELDS: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def fields_of(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    """Field names and resolved types of a dataclass, cached (the codec's hot path)."""
    cached = _FIELDS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        _FIELDS[cls] = cached
    return cached


def to_wire(value: Any) -> Any:
    """Turn a protocol dataclass (recursively) into plain dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        kind = getattr(type(value), "kind", None)
        if isinstance(kind, str):
            out["kind"] = kind
        for name, _ in fields_of(type(value)):
            out[name] = to_wire(getattr(value, name))
        return out
    if isinstance(value, (tuple, list)):
        return [to_wire(item) for item in value]
    return value


def _convert(tp: Any, data: Any, where: str) -> Any:
    """Check ``data`` against the type ``tp`` and build dataclasses and tuples from it."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, data, where)
            except ProtocolError as error:
                errors.append(str(error))
        raise ProtocolError(f"{where}: {'; '.join(errors)}")
    if origin is Literal:
        if not any(data == choice and type(data) is type(choice) for choice in typing.get_args(tp)):
            choices = ", ".join(repr(choice) for choice in typing.get_args(tp))
            raise ProtocolError(f"{where}: expected one of {choices}, got {data!r:.80}")
        return data
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise ProtocolError(f"{where}: expected a list, got {type(data).__name__}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
        if len(args) != len(data):
            raise ProtocolError(f"{where}: expected {len(args)} items, got {len(data)}")
        pairs = enumerate(zip(args, data, strict=True))
        return tuple(_convert(a, item, f"{where}[{i}]") for i, (a, item) in pairs)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, data, where)
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ProtocolError(f"{where}: expected a number, got {type(data).__name__}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ProtocolError(f"{where}: expected an integer, got {type(data).__name__}")
        return data
    if tp in (str, bool):
        if not isinstance(data, tp):
            raise ProtocolError(f"{where}: expected {tp.__name__}, got {type(data).__name__}")
        return data
    raise ProtocolError(f"{where}: unsupported type {tp!r}")  # pragma: no cover


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ProtocolError(f"{where}: expected a map, got {type(data).__name__}")
    kwargs: dict[str, Any] = {}
    for name, tp in fields_of(cls):
        if name in data:
            kwargs[name] = _convert(tp, data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ProtocolError(f"{where}: {error}") from None


def from_wire(cls: type[Any], data: Any) -> Any:
    """Build a protocol dataclass from plain data, raising ProtocolError on any mismatch."""
    return _build(cls, data, cls.__name__)


def encode(message: Message) -> bytes:
    """Encode a message as msgpack bytes."""
    packed: bytes = msgpack.packb(to_wire(message), use_bin_type=True)
    return packed


def unpack_message(payload: bytes) -> tuple[type[Any], dict[str, Any]]:
    """The message class a payload names and its map, not yet checked field by field.

    Size cap, msgpack syntax and the ``kind`` are checked here; anything wrong raises
    ProtocolError. ``decode`` and the agent's fast codec both start with this.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"malformed msgpack: {type(error).__name__}: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a map, got {type(data).__name__}")
    kind = data.get("kind")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    return cls, data


# Per message class whose fields are all ``str``, ``bool`` or ``int`` (or None-able): each
# field's name, type and whether None is allowed; None for the other classes.
_FLAT: dict[type[Any], tuple[tuple[str, type[Any], bool], ...] | None] = {}


def _flat_fields(cls: type[Any]) -> tuple[tuple[str, type[Any], bool], ...] | None:
    flat = _FLAT.get(cls, ())
    if flat != ():
        return flat
    found: list[tuple[str, type[Any], bool]] | None = []
    for name, tp in fields_of(cls):
        optional = False
        if typing.get_origin(tp) in (Union, types.UnionType):
            args = typing.get_args(tp)
            if len(args) != 2 or type(None) not in args:
                found = None
                break
            tp = next(arg for arg in args if arg is not type(None))
            optional = True
        if tp not in (str, bool, int):
            found = None
            break
        found.append((name, tp, optional))  # type: ignore[union-attr]
    flat = tuple(found) if found is not None else None
    _FLAT[cls] = flat
    return flat


def _build_flat(cls: type[Any], data: dict[str, Any]) -> Any | None:
    """``_build`` for a class of plain fields (the requests the agent reads): msgpack gives
    exact types, so a type check per field is the whole check. None when ``data`` does not
    fit: then ``_build`` says why."""
    flat = _flat_fields(cls)
    if flat is None:
        return None
    kwargs: dict[str, Any] = {}
    for name, tp, optional in flat:
        if name in data:
            value = data[name]
            if type(value) is not tp and not (optional and value is None):
                return None
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError:  # a required field is missing
        return None


def decode(payload: bytes) -> Message:
    """Decode msgpack bytes into a message; anything unexpected raises ProtocolError."""
    cls, data = unpack_message(payload)
    flat = _build_flat(cls, data)
    if flat is not None:
        return flat  # type: ignore[no-any-return]  # (plain fields: nothing nests)
    try:
        message: Message = _build(cls, data, cls.__name__)
    except RecursionError:
        raise ProtocolError("message nested too deeply") from None
    check_nesting(message)
    check_repeats(message)
    return message
