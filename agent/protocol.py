"""The wire protocol between agents and the broker: typed messages and their msgpack codec.

Every message is a frozen, slotted dataclass tagged with a ``kind`` (``messages``; the
report they carry is the model in ``report``); this module re-exports them all, so the
rest of the code imports the protocol from here. Plain dicts exist only inside this
module's codec (``to_wire``/``from_wire``); the broker stores and serves the same wire
dicts as JSON, so the dashboard's TypeScript types mirror these classes
(``tests/agent/test_protocol.py`` checks ``frontend/src/api/types.ts`` against them).

This module imports no zmq, asyncio or sqlite: it is tested with plain function calls.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgpack

from .messages import (
    _MESSAGE_TYPES,
    CONSOLE_FRAME_ID,
    MAX_HELD_IDS,
    PROTOCOL_VERSION,
    Bye,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    ExpandResult,
    Heartbeat,
    Hello,
    HelloRequest,
    InterruptRequest,
    InterruptResult,
    Message,
    OutputChunk,
    Ping,
    Refused,
    Release,
    Released,
    ReportMessage,
    Resume,
    Resumed,
    SourceRequest,
    SourceResult,
    Welcome,
)
from .report import ExceptionInfo, FrameInfo, Report, ReprNode, RequestInfo, Variable

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_REPR_NESTING",
    "MAX_GROUP_NESTING",
    "check_nesting",
    "ProtocolError",
    "ReprNode",
    "Variable",
    "FrameInfo",
    "ExceptionInfo",
    "RequestInfo",
    "Report",
    "Hello",
    "Welcome",
    "Refused",
    "HelloRequest",
    "Ping",
    "Heartbeat",
    "ReportMessage",
    "EvalRequest",
    "EvalResult",
    "OutputChunk",
    "CONSOLE_FRAME_ID",
    "CompleteRequest",
    "CompleteResult",
    "InterruptRequest",
    "InterruptResult",
    "Bye",
    "Resume",
    "Resumed",
    "Release",
    "Released",
    "MAX_HELD_IDS",
    "ExpandRequest",
    "ExpandResult",
    "SourceRequest",
    "SourceResult",
    "Message",
    "encode",
    "decode",
    "unpack_message",
    "to_wire",
    "from_wire",
]

# Both sides refuse bigger frames (zmq MAXMSGSIZE on the socket, this check on decode).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Deeper than any agent writes (the renderer stops at 32 container levels, a dict level
# being two tree levels; CPython shows groups 10 levels deep): see ``check_nesting``.
MAX_REPR_NESTING = 100
MAX_GROUP_NESTING = 32


class ProtocolError(ValueError):
    """A message that cannot be decoded: malformed msgpack, unknown kind or wrong fields."""


# --- codec --------------------------------------------------------------------------------

_FIELDS: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def _fields_of(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
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
        for name, _ in _fields_of(type(value)):
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
    for name, tp in _fields_of(cls):
        if name in data:
            kwargs[name] = _convert(tp, data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ProtocolError(f"{where}: {error}") from None


class _Mismatch(Exception):
    """The fast decoder's "not this": ``_build`` then runs again to say exactly why."""


_Convert = Callable[[Any], Any]
_FAST: dict[Any, _Convert] = {}


def _fast(tp: Any) -> _Convert:
    """A converter for ``tp`` that accepts exactly what ``_convert`` accepts, without the
    error paths' bookkeeping (``where`` strings, ``get_origin`` per value); it raises
    ``_Mismatch`` where ``_convert`` raises ``ProtocolError``. Built once per type."""
    cached = _FAST.get(tp)
    if cached is not None:
        return cached
    origin = typing.get_origin(tp)
    convert: _Convert
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        options = [option for option in args if option is not type(None)]

        def convert(data: Any) -> Any:
            if data is None and nullable:
                return None
            for option in options:
                try:
                    return _fast(option)(data)
                except _Mismatch:
                    pass
            raise _Mismatch

    elif origin is tuple and len(typing.get_args(tp)) == 2 and typing.get_args(tp)[1] is Ellipsis:
        item_type = typing.get_args(tp)[0]

        def convert(data: Any) -> Any:
            if not isinstance(data, (list, tuple)):
                raise _Mismatch
            item = _fast(item_type)
            return tuple([item(value) for value in data])

    elif origin is tuple:
        item_types = typing.get_args(tp)

        def convert(data: Any) -> Any:
            if not isinstance(data, (list, tuple)) or len(data) != len(item_types):
                raise _Mismatch
            return tuple(_fast(t)(value) for t, value in zip(item_types, data, strict=True))

    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls: type[Any] = tp
        fields: list[tuple[str, _Convert]] = []  # filled on first use (types may recurse)

        def convert(data: Any) -> Any:
            if not isinstance(data, dict):
                raise _Mismatch
            if not fields:
                fields.extend((name, _fast(field_type)) for name, field_type in _fields_of(cls))
            kwargs = {name: field(data[name]) for name, field in fields if name in data}
            try:
                return cls(**kwargs)
            except TypeError:
                raise _Mismatch from None

    elif tp is float:

        def convert(data: Any) -> Any:
            if type(data) is float:
                return data
            if isinstance(data, bool) or not isinstance(data, (int, float)):
                raise _Mismatch
            return float(data)

    elif tp is int:

        def convert(data: Any) -> Any:
            if isinstance(data, bool) or not isinstance(data, int):
                raise _Mismatch
            return data

    elif tp in (str, bool):

        def convert(data: Any) -> Any:
            if not isinstance(data, tp):
                raise _Mismatch
            return data

    else:

        def convert(data: Any) -> Any:
            raise _Mismatch

    _FAST[tp] = convert
    return convert


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
    cls = _MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    return cls, data


def decode(payload: bytes) -> Message:
    """Decode msgpack bytes into a message; anything unexpected raises ProtocolError."""
    cls, data = unpack_message(payload)
    try:
        try:
            message: Message = _fast(cls)(data)
        except _Mismatch:  # invalid: the thorough decoder says where and why
            message = _build(cls, data, cls.__name__)
    except RecursionError:
        raise ProtocolError("message nested too deeply") from None
    check_nesting(message)
    return message


def _repr_roots(message: Message) -> list[ReprNode]:
    """The value trees a message carries (the only place besides groups that nests)."""
    if isinstance(message, ReportMessage):
        return [
            variable.value
            for info in _exception_infos(message.report.exceptions)
            for frame in info.frames
            for variable in frame.locals
        ]
    if isinstance(message, EvalResult):
        roots = [chunk.value for chunk in message.chunks if chunk.value is not None]
        return roots + ([message.result] if message.result is not None else [])
    if isinstance(message, ExpandResult) and message.node is not None:
        return [message.node]
    return []


def _exception_infos(exceptions: tuple[ExceptionInfo, ...]) -> list[ExceptionInfo]:
    """Every exception of a report, group members included (iteratively: no recursion)."""
    found: list[ExceptionInfo] = []
    stack = [(info, 1) for info in exceptions]
    while stack:
        info, depth = stack.pop()
        if depth > MAX_GROUP_NESTING:
            raise ProtocolError(f"exception groups nested over {MAX_GROUP_NESTING} levels")
        found.append(info)
        stack.extend((member, depth + 1) for member in info.exceptions)
    return found


def check_nesting(message: Message) -> None:
    """Refuse a message nested deeper than any agent writes: value trees over
    ``MAX_REPR_NESTING`` levels, exception groups over ``MAX_GROUP_NESTING``.

    Decoders differ in how deep they can go (CPython's recursion limits changed in 3.12;
    msgspec's are its own): an explicit limit makes every broker refuse the same
    messages, and keeps the broker's own walks over a report shallow. Iterative, so a
    deep message cannot make this function fail.
    """
    stack = [(node, 1) for node in _repr_roots(message) if node.children]  # leaves: depth 1
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_REPR_NESTING:  # its children would be deeper
            raise ProtocolError(f"a value nested over {MAX_REPR_NESTING} levels")
        stack.extend((child, depth + 1) for child in node.children if child.children)
