"""The wire protocol between agents and the broker: typed messages and their msgpack codec.

Every message is a frozen, slotted dataclass tagged with a ``kind``. Plain dicts exist only
inside this module's codec (``to_wire``/``from_wire``); the broker stores and serves the
same wire dicts as JSON, so the dashboard's TypeScript types mirror these classes
(``tests/agent/test_protocol.py`` checks ``frontend/src/api/types.ts`` against them).

This module imports no zmq, asyncio or sqlite: it is tested with plain function calls.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import msgpack

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
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

PROTOCOL_VERSION = 1
# Both sides refuse bigger frames (zmq MAXMSGSIZE on the socket, this check on decode).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Report ids in one hello's ``held`` or one ``Released``: the receiver reads no more.
MAX_HELD_IDS = 1024


class ProtocolError(ValueError):
    """A message that cannot be decoded: malformed msgpack, unknown kind or wrong fields."""


# --- report model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReprNode:
    """A value rendered safely as a tree: never HTML, always bounded.

    ``kind`` says how to colour and expand it: ``str``, ``bytes``, ``number``, ``bool``,
    ``none``, ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``, ``pair`` (a dict
    item: children are key and value), ``object``, ``recursion``, ``broken``.
    ``text`` is the node's own text (a scalar's repr, or an object's repr); containers
    show their ``children``. ``omitted`` counts the children (or characters, for
    strings) left out; ``more`` is a handle the dashboard passes back to expand it.
    """

    kind: str
    type_name: str
    text: str = ""
    children: tuple[ReprNode, ...] = ()
    omitted: int = 0
    more: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A named value: a local variable or an attribute."""

    name: str
    value: ReprNode


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameInfo:
    """One traceback frame as captured, with its source context and locals.

    ``index`` is unique within a report; ``frame_id`` is the agent's handle on the live
    frame (None when the agent does not hold it). ``context_start`` is the line number of
    ``context[0]``. Columns are 0-based offsets into the failing line (3.11+), or None.
    """

    index: int
    frame_id: str | None
    filename: str
    lineno: int
    function: str
    module: str
    context_start: int
    context: tuple[str, ...]
    locals: tuple[Variable, ...]
    end_lineno: int | None = None
    colno: int | None = None
    end_colno: int | None = None
    is_library: bool = False
    hidden: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionInfo:
    """One exception of a chain or group, with its own frames.

    ``chain`` says how this exception is linked to the one printed before it in
    ``Report.exceptions``: ``"cause"`` ("The above exception was the direct cause…"),
    ``"context"`` ("During handling of the above exception…") or None for the first.
    ``exceptions`` holds the sub-exceptions of an exception group; ``omitted`` counts the
    sub-exceptions left out (CPython shows 15 per group and elides groups nested deeper than
    10 levels: such a group has no frames and no ``exceptions``).
    """

    type_name: str
    module: str
    message: str
    frames: tuple[FrameInfo, ...]
    notes: tuple[str, ...] = ()
    chain: str | None = None
    exceptions: tuple[ExceptionInfo, ...] = ()
    omitted: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInfo:
    """The request that failed, as the app saw it (secrets masked).

    ``query``, ``form``, ``cookies`` and ``environ`` are name/value pairs as text. ``form``
    holds only what the app itself parsed (the body is never read); ``form_note`` says why
    a form-encoded request shows none.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    environ: tuple[tuple[str, str], ...] = ()
    form_note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A captured error: the chain in CPython's print order and the plain-text traceback.

    ``text`` is exactly ``"".join(traceback.format_exception(exc))`` in the app process.
    ``exceptions`` lists the chain root-cause first, as CPython prints it; the last entry
    is the exception that was raised.
    """

    id: str
    agent_id: str
    created: float
    type_name: str
    message: str
    text: str
    exceptions: tuple[ExceptionInfo, ...]
    request: RequestInfo | None = None
    pid: int = 0
    host: str = ""
    app: str = ""
    paused: bool = False  # a breakpoint() pause (debugbroker.set_trace), not an error


# --- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """Agent → broker, first message on (re)connect: who this process is, and the secret."""

    kind: ClassVar[str] = "hello"
    agent_id: str
    secret: str
    pid: int
    host: str
    app: str
    python: str
    started: float
    evalex: bool
    protocol: int = PROTOCOL_VERSION
    console: bool = False  # offers a console on the live process (CONSOLE_FRAME_ID)
    eval_timeout: float = 0.0  # the agent's own time limit per eval (0: none)
    paused: tuple[str, ...] = ()  # reports whose thread waits at breakpoint() for Continue
    held: tuple[str, ...] = ()  # reports whose frames it still holds (at most MAX_HELD_IDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """Broker → agent: hello accepted; the dashboard URL for links in 500 pages."""

    kind: ClassVar[str] = "welcome"
    dashboard_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """Broker → agent: hello refused (wrong secret, protocol mismatch)."""

    kind: ClassVar[str] = "refused"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloRequest:
    """Broker → agent: the broker does not know this agent (it restarted); say hello again."""

    kind: ClassVar[str] = "hello_request"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Broker → agent: are you there? The agent answers with a heartbeat at once.

    The broker pings an agent while it waits for its eval: a send to a process whose
    connection is gone fails at once, so an eval never waits on a dead worker.
    """

    kind: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Agent → broker, every few seconds: still alive, and how many frames it holds."""

    kind: ClassVar[str] = "heartbeat"
    held_frames: int
    dropped_reports: int = 0
    held_reports: int = 0  # reports whose frames are held
    held_bytes: int = 0  # the registry's memory estimate of the held frames


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMessage:
    """Agent → broker: a captured error."""

    kind: ClassVar[str] = "report"
    report: Report


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalRequest:
    """Broker → agent: run ``code`` in the held frame ``frame_id``."""

    kind: ClassVar[str] = "eval"
    request_id: str
    frame_id: str
    code: str
    # The dashboard's REPL mode: a compound statement (for, def, with…) ends with an empty
    # line, so the answer is ``incomplete`` until then.
    interactive: bool = False


# ``frame_id`` of the process console (``DebuggedApplication(app, console=True)``): evals,
# completions and interrupts addressed to it run in a namespace of the live process.
CONSOLE_FRAME_ID = "console"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputChunk:
    """One piece of an eval's output, in the order it happened.

    ``stream`` is ``stdout``, ``stderr`` (``text`` holds what was written) or ``result``
    (``value`` holds an echoed expression's value, as the interpreter would print it).
    """

    stream: str
    text: str = ""
    value: ReprNode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """Agent → broker: what an eval printed and returned, or why it failed.

    ``ok`` is False when the code raised (``error`` holds the formatted traceback) or
    could not run at all (``error`` says why: frame released, evalex disabled…).
    ``incomplete`` means the input needs more lines and nothing ran. ``output`` is all
    stdout and stderr text, ``result`` the last echoed value, ``chunks`` both in order.
    """

    kind: ClassVar[str] = "eval_result"
    request_id: str
    ok: bool
    output: str = ""
    result: ReprNode | None = None
    error: str | None = None
    incomplete: bool = False
    chunks: tuple[OutputChunk, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRequest:
    """Broker → agent: completions for the name ending ``text`` in frame ``frame_id``."""

    kind: ClassVar[str] = "complete"
    request_id: str
    frame_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteResult:
    """Agent → broker: each match replaces the last ``replace`` characters of the text."""

    kind: ClassVar[str] = "complete_result"
    request_id: str
    ok: bool
    matches: tuple[str, ...] = ()
    replace: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptRequest:
    """Broker → agent: raise KeyboardInterrupt in every eval running in ``frame_id``."""

    kind: ClassVar[str] = "interrupt"
    request_id: str
    frame_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptResult:
    """Agent → broker: how many running evals were interrupted."""

    kind: ClassVar[str] = "interrupt_result"
    request_id: str
    interrupted: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye:
    """Agent → broker, as its process exits: mark it gone now, not after the heartbeat timeout."""

    kind: ClassVar[str] = "bye"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Broker → agent: let the thread paused at ``breakpoint()`` in ``report_id`` go on."""

    kind: ClassVar[str] = "resume"
    report_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """Agent → broker: the thread paused in ``report_id`` goes on (``continue`` or ``timeout``)."""

    kind: ClassVar[str] = "resumed"
    report_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Broker → agent: drop the frames held for ``report_id`` (the dashboard's Release)."""

    kind: ClassVar[str] = "release"
    report_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """Agent → broker: these reports' frames are no longer held (LRU, caps or Release)."""

    kind: ClassVar[str] = "released"
    report_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandRequest:
    """Broker → agent: the next slice of a truncated value of a held frame (the "+").

    ``handle`` is a ``ReprNode.more`` the agent gave out; ``offset`` is how many children
    (or characters, for a string) the dashboard already shows.
    """

    kind: ClassVar[str] = "expand"
    request_id: str
    frame_id: str
    handle: str
    offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandResult:
    """Agent → broker: the value from ``offset`` on, or why it cannot be shown."""

    kind: ClassVar[str] = "expand_result"
    request_id: str
    ok: bool
    node: ReprNode | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRequest:
    """Broker → agent: the whole source file of a held frame (never a path from outside)."""

    kind: ClassVar[str] = "source"
    request_id: str
    frame_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceResult:
    """Agent → broker: the lines of the frame's file as the process loaded them."""

    kind: ClassVar[str] = "source_result"
    request_id: str
    ok: bool
    filename: str = ""
    lines: tuple[str, ...] = ()
    truncated: bool = False
    error: str | None = None


Message = Union[  # noqa: UP007 - a runtime alias that also works on 3.10
    Bye,
    Resume,
    Resumed,
    Release,
    Released,
    Hello,
    Welcome,
    Refused,
    HelloRequest,
    Ping,
    Heartbeat,
    ReportMessage,
    EvalRequest,
    EvalResult,
    CompleteRequest,
    CompleteResult,
    InterruptRequest,
    InterruptResult,
    ExpandRequest,
    ExpandResult,
    SourceRequest,
    SourceResult,
]
_MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        Bye,
        Resume,
        Resumed,
        Release,
        Released,
        Hello,
        Welcome,
        Refused,
        HelloRequest,
        Ping,
        Heartbeat,
        ReportMessage,
        EvalRequest,
        EvalResult,
        CompleteRequest,
        CompleteResult,
        InterruptRequest,
        InterruptResult,
        ExpandRequest,
        ExpandResult,
        SourceRequest,
        SourceResult,
    )
}


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
    return message
