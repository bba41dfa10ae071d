"""The protocol's limits, which both sides check: message size and nesting depth."""

from __future__ import annotations

import math

from debugbroker.protocol.messages import (
    MAX_REPEAT_COUNTS,
    MAX_REPEATS,
    EvalResult,
    ExpandResult,
    Message,
    Repeats,
    ReportMessage,
)
from debugbroker.protocol.report import ExceptionInfo, ReprNode

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_REPR_NESTING",
    "MAX_GROUP_NESTING",
    "ProtocolError",
    "check_nesting",
    "check_repeats",
]

# Both sides refuse bigger frames (zmq MAXMSGSIZE on the socket, this check on decode).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Deeper than any agent writes (the renderer stops at 32 container levels, a dict level
# being two tree levels; CPython shows groups 10 levels deep): see ``check_nesting``.
MAX_REPR_NESTING = 100
MAX_GROUP_NESTING = 32


class ProtocolError(ValueError):
    """A message that cannot be decoded: malformed msgpack, unknown kind or wrong fields."""


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


_HOUR = 3600


def check_repeats(message: Message) -> None:
    """Refuse a ``Repeats`` the broker could not count exactly: more than
    ``MAX_REPEAT_COUNTS`` entries, a count under 1 or over ``MAX_REPEATS``, a time that is
    not finite, ``first`` after ``last``, or times of two clock hours. Other messages pass."""
    if not isinstance(message, Repeats):
        return
    if len(message.counts) > MAX_REPEAT_COUNTS:
        raise ProtocolError(
            f"Repeats: {len(message.counts)} counts, at most {MAX_REPEAT_COUNTS} in one message"
        )
    for index, entry in enumerate(message.counts):
        where = f"Repeats.counts[{index}]"
        if not entry.report_id or len(entry.report_id) > 200:
            raise ProtocolError(f"{where}.report_id: expected 1 to 200 characters")
        if not 1 <= entry.count <= MAX_REPEATS:
            raise ProtocolError(f"{where}.count: expected 1 to {MAX_REPEATS}, got {entry.count}")
        if not (math.isfinite(entry.first) and math.isfinite(entry.last)):
            raise ProtocolError(f"{where}: times must be finite numbers")
        if entry.first > entry.last or entry.first < 0:
            raise ProtocolError(f"{where}: first must be >= 0 and not after last")
        if entry.first // _HOUR != entry.last // _HOUR:
            raise ProtocolError(f"{where}: first and last must be in the same clock hour")
