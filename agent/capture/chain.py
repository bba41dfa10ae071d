"""Which exceptions CPython prints for an error, in which order, and how each is linked.

``traceback.format_exception`` decides this in two passes, and so does this module, so that a
report's structure agrees with the text exactly, even for odd cases (one exception object
reachable twice, a cause that closes a cycle, ``__bool__`` overrides):

1. ``link_tree`` mirrors ``TracebackException.__init__`` (compact mode, as
   ``format_exception`` uses it): a LIFO work queue and one ``seen`` set shared by the whole
   tree decide each exception's cause, context and group members.
2. ``printed_chain`` mirrors ``TracebackException.format``: each chain in print order (root
   cause first), groups cut at 15 members ("and N more exceptions") and nested groups past
   depth 10 elided ("... (max_group_depth is 10)").

Exception groups are expanded when the running ``traceback`` module prints them: always on
3.11+, and on 3.10 once the ``exceptiongroup`` backport has patched ``traceback`` (it does so
on import, as trio, anyio and pytest import it), for the backport's own group classes.

Nothing here runs user code unguarded: every attribute read is wrapped, so a hostile
exception gives a smaller tree, never an error. Pure functions, no I/O.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from dataclasses import dataclass, field

__all__ = [
    "MAX_GROUP_DEPTH",
    "MAX_GROUP_WIDTH",
    "ExceptionLinks",
    "PrintedException",
    "group_type",
    "is_group",
    "link_tree",
    "prints_notes",
    "printed_chain",
]

MAX_GROUP_WIDTH = 15  # TracebackException's default max_group_width
MAX_GROUP_DEPTH = 10  # TracebackException's default max_group_depth
_MAX_NODES = 10_000  # a runaway structure stops being expanded here (CPython has no cap)
_BUILTIN_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)
_BACKPORT_FORMATTER = "exceptiongroup._formatting"
_ABSORBED: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)


@dataclass(slots=True, eq=False)
class ExceptionLinks:
    """One exception as ``TracebackException`` links it: its cause, context and members.

    ``members`` is None for an exception that is not a group (as ``te.exceptions``).
    """

    exc: BaseException
    cause: ExceptionLinks | None = None
    context: ExceptionLinks | None = None
    members: list[ExceptionLinks] | None = None


@dataclass(frozen=True, slots=True)
class PrintedException:
    """One exception as ``format`` prints it.

    ``link`` is how it follows the exception printed before it in its chain ("cause",
    "context", or None for a chain's first). ``members`` holds each shown sub-exception's
    own chain; ``omitted`` counts the members past the width cap; ``elided`` marks a group
    nested too deep, which CPython replaces by one "max_group_depth" line.
    """

    exc: BaseException
    link: str | None
    members: tuple[tuple[PrintedException, ...], ...] = field(default=())
    omitted: int = 0
    elided: bool = False


def _attr(exc: BaseException, name: str) -> object:
    try:
        return getattr(exc, name, None)
    except _ABSORBED:
        return None


def _truthy(exc: BaseException) -> bool:
    """``bool(exc)``, as CPython tests ``if e and ...`` (a ``__len__`` of 0 ends the chain)."""
    try:
        return bool(exc)
    except _ABSORBED:
        return False


def _backport_formatter() -> object:
    """The ``exceptiongroup`` module that patched ``traceback`` (3.10), or None."""
    formatter = getattr(traceback.TracebackException.format, "__module__", None)
    return sys.modules.get(_BACKPORT_FORMATTER) if formatter == _BACKPORT_FORMATTER else None


def group_type() -> type[BaseException] | None:
    """The exception-group class whose members ``traceback.format_exception`` prints.

    ``BaseExceptionGroup`` on 3.11+; on 3.10 the ``exceptiongroup`` backport's class once
    the backport has patched ``traceback``, else None (groups print as plain exceptions).
    """
    if _BUILTIN_GROUP is not None:
        return _BUILTIN_GROUP
    found = getattr(_backport_formatter(), "BaseExceptionGroup", None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


def prints_notes() -> bool:
    """Whether ``traceback.format_exception`` prints ``__notes__`` (3.11+, or 3.10 patched)."""
    return sys.version_info >= (3, 11) or _backport_formatter() is not None


def is_group(exc: BaseException, group: type[BaseException] | None = None) -> bool:
    """Whether ``exc`` is an exception group that ``traceback`` prints as one.

    ``group`` is ``group_type()``, when the caller has it already.
    """
    group = group_type() if group is None else group
    return group is not None and isinstance(exc, group)


def _group_members(exc: BaseException) -> list[BaseException]:
    """``exc.exceptions`` as ``TracebackException`` iterates it: any iterable (a subclass's
    property may return a list), its exceptions kept; nothing if reading it fails."""
    members = _attr(exc, "exceptions")
    if members is None or isinstance(members, (str, bytes)):
        return []
    try:
        return [member for member in members if isinstance(member, BaseException)]  # type: ignore[attr-defined]
    except _ABSORBED:
        return []


def link_tree(exc: BaseException) -> ExceptionLinks:
    """Link ``exc`` and everything it leads to exactly as ``TracebackException`` does.

    CPython walks without a limit; this walk stops expanding at ``_MAX_NODES`` exceptions.
    CPython's LIFO queue reaches a group's last member first, so a capped walk in its order
    would lose the first members' causes, the ones the text prints. When the cap is hit,
    the tree is linked again in print order (an exception's cause and context, then its
    members first to last): what is left out is then the end, as the text cuts a group at
    its end (``MAX_GROUP_WIDTH``).
    """
    root, complete = _linked(exc, printed_first=False)
    if complete:
        return root
    return _linked(exc, printed_first=True)[0]


def _linked(exc: BaseException, *, printed_first: bool) -> tuple[ExceptionLinks, bool]:
    """The linked tree and whether it is complete (the node cap was not hit)."""
    group = group_type()
    seen = {id(exc)}
    root = ExceptionLinks(exc)
    queue = [root]
    made = 1
    complete = True
    while queue:
        node = queue.pop()
        current = node.exc
        truthy = _truthy(current)
        if made >= _MAX_NODES:
            complete = False
            continue
        cause = _attr(current, "__cause__")
        if truthy and isinstance(cause, BaseException) and id(cause) not in seen:
            seen.add(id(cause))
            node.cause = ExceptionLinks(cause)
            made += 1
        need_context = node.cause is None and not _attr(current, "__suppress_context__")
        context = _attr(current, "__context__")
        if truthy and need_context and isinstance(context, BaseException):
            if id(context) not in seen:
                seen.add(id(context))
                node.context = ExceptionLinks(context)
                made += 1
        if truthy and is_group(current, group):
            # Members are always shown, even when seen before; they only mark themselves.
            node.members = []
            for member in _group_members(current):
                seen.add(id(member))
                node.members.append(ExceptionLinks(member))
            made += len(node.members)
        if printed_first and node.members:  # popped last: the chain is printed first
            queue.extend(reversed(node.members))
        if node.cause is not None:
            queue.append(node.cause)
        if node.context is not None:
            queue.append(node.context)
        if node.members and not printed_first:
            queue.extend(node.members)
    return root, complete


def printed_chain(node: ExceptionLinks, depth: int = 0) -> tuple[PrintedException, ...]:
    """The chain starting at ``node`` in print order (root cause first), groups expanded.

    ``depth`` is ``format``'s ``exception_group_depth`` when this chain is printed.
    """
    found: list[tuple[ExceptionLinks, str | None]] = []
    current: ExceptionLinks | None = node
    while current is not None:
        if current.cause is not None:
            following, link = current.cause, "cause"
        elif current.context is not None:
            following, link = current.context, "context"
        else:
            following, link = None, None
        found.append((current, link))
        current = following
    found.reverse()
    out: list[PrintedException] = []
    for position, (entry, link) in enumerate(found):
        # Each link points at the next exception found, which is printed just before it.
        shown_link = None if position == 0 else link
        if entry.members is None:
            out.append(PrintedException(entry.exc, shown_link))
        elif depth > MAX_GROUP_DEPTH:
            out.append(
                PrintedException(entry.exc, shown_link, omitted=len(entry.members), elided=True)
            )
        else:
            member_depth = max(depth, 1) + 1
            members = tuple(
                printed_chain(member, member_depth) for member in entry.members[:MAX_GROUP_WIDTH]
            )
            omitted = max(0, len(entry.members) - MAX_GROUP_WIDTH)
            out.append(PrintedException(entry.exc, shown_link, members, omitted))
    return tuple(out)
