"""The protocol's limits, which both sides check: message size and nesting depth."""

from __future__ import annotations

from debugbroker.protocol.messages import EvalResult, ExpandResult, Message, ReportMessage
from debugbroker.protocol.report import ExceptionInfo, ReprNode

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_REPR_NESTING",
    "MAX_GROUP_NESTING",
    "ProtocolError",
    "check_nesting",
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
