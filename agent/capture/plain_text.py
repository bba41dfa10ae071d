"""A report's plain-text traceback: exactly what ``traceback.format_exception`` prints.

Formatting is a large part of a capture's cost in an error storm, where the same lines
fail again and again (BENCHMARKS.md). Two caches keep the text exact and make a
repeat cheap:

- ``traceback``'s caret placement (``~~~^^^``) parses the failing line with ``ast`` for every
  frame; that pure function is wrapped in a bounded cache once per process.
- The stack part of the text (``Traceback (most recent call last):`` and the frames) is
  remembered per failing stack: the code objects (by identity: two code objects compare
  equal whatever their ``co_filename``, so two identical functions in different files
  would share an entry) and instruction offsets of every frame.
  A repeat formats only the exception's own lines (``format_exception_only``). The
  stack is reused only while every file's lines in ``linecache`` are the very list they
  were (``linecache.checkcache`` first, as ``format_exception`` does), and only for an
  exception printed alone (no cause, context or group members).
"""

from __future__ import annotations

import linecache
import sys
import threading
import traceback
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, TracebackType

from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error, type_name_of

__all__ = ["MAX_TEXT", "format_text", "cache_caret_anchors", "is_stack_cached"]

MAX_TEXT = 1024 * 1024  # characters of the plain-text traceback
_CARET_ANCHORS = "_extract_caret_anchors_from_line_segment"
_MAX_STACKS = 256  # stacks remembered per process
_MAX_STACK_FRAMES = 200  # deeper stacks are formatted every time


def cache_caret_anchors() -> None:
    """Let CPython's traceback formatting remember where its ``~~~^^^`` markers go.

    For every frame of every traceback it formats, CPython 3.11+ parses the failing line's
    source with ``ast`` to place the markers (``traceback._extract_caret_anchors_…``). The
    function is pure (a source segment in, immutable anchors out), so it is wrapped in a
    bounded cache once per process; the text does not change, for the app's own
    tracebacks either. Pythons without it (3.10) are left alone.
    """
    original = getattr(traceback, _CARET_ANCHORS, None)
    if original is not None and not hasattr(original, "cache_info"):
        setattr(traceback, _CARET_ANCHORS, lru_cache(maxsize=512)(original))


cache_caret_anchors()


@dataclass(frozen=True, slots=True)
class _Stack:
    """The text before the exception's own lines, each file's lines it was read from, and
    the code objects its key names by ``id`` (held, so no other code object takes an id)."""

    text: str
    sources: tuple[tuple[str, list[str]], ...]
    codes: tuple[CodeType, ...]


_stacks: dict[Hashable, _Stack] = {}
_stacks_lock = threading.Lock()


def is_stack_cached(tb: TracebackType | None) -> bool:
    """Whether the text of ``tb``'s stack (all but the exception's own lines) is remembered."""
    key = _stack_key(tb)
    return key is not None and key in _stacks


def _stack_key(tb: TracebackType | None) -> tuple[Hashable, ...] | None:
    """What the stack part of the text depends on, or None when it is not worth keeping.

    Code objects go in by ``id``: ``==`` on code ignores ``co_filename`` (and
    ``co_qualname``), so equal functions in two files would otherwise share one text.
    """
    entries: list[Hashable] = [getattr(sys, "tracebacklimit", None)]
    while tb is not None:
        if len(entries) > _MAX_STACK_FRAMES:
            return None
        entries.append((id(tb.tb_frame.f_code), tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    return tuple(entries)


def _codes(tb: TracebackType | None) -> tuple[CodeType, ...]:
    codes: list[CodeType] = []
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return tuple(codes)


def _sources(codes: tuple[CodeType, ...]) -> tuple[tuple[str, list[str]], ...] | None:
    """Each file's lines as ``linecache`` holds them now; None if one is not loaded."""
    found: dict[str, list[str]] = {}
    for code in codes:
        filename = code.co_filename
        if filename not in found:
            cached = linecache.cache.get(filename)
            if cached is None or len(cached) != 4:
                return None
            found[filename] = cached[2]
    return tuple(found.items())


def _unchanged(stack: _Stack) -> bool:
    for filename, lines in stack.sources:
        linecache.checkcache(filename)
        cached = linecache.cache.get(filename)
        if cached is None or len(cached) != 4 or cached[2] is not lines:
            return False
    return True


def _formatted(exc: BaseException, alone: bool) -> str:
    """``"".join(traceback.format_exception(exc))``, the stack part remembered when
    ``exc`` is printed ``alone`` (no cause, context or group members)."""
    tb = exc.__traceback__
    key = _stack_key(tb) if alone else None
    if key is not None:
        with _stacks_lock:
            stack = _stacks.get(key)
        if stack is not None and _unchanged(stack):
            return stack.text + "".join(traceback.format_exception_only(type(exc), exc))
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if key is None:
        return text
    own = "".join(traceback.format_exception_only(type(exc), exc))
    codes = _codes(tb)
    sources = _sources(codes)
    if sources is not None and text.endswith(own):  # str(exc) may change between calls
        with _stacks_lock:
            if len(_stacks) >= _MAX_STACKS:
                del _stacks[next(iter(_stacks))]  # the oldest
            _stacks[key] = _Stack(text[: len(text) - len(own)], sources, codes)
    return text


def format_text(exc: BaseException, *, alone: bool = False) -> str:
    """The plain traceback of ``exc`` as CPython prints it, lone surrogates escaped and cut
    at ``MAX_TEXT`` characters; never raises. ``alone``: ``exc`` has no cause, context or
    group members to print (its stack may then come from the cache)."""
    try:
        text = _formatted(exc, alone)
    except USER_CODE_ERRORS as error:
        try:
            text = "".join(traceback.format_exception_only(type(exc), exc))
        except USER_CODE_ERRORS:
            text = f"{type_name_of(exc)}: <traceback could not be formatted>\n"
        text += f"(debugbroker could not format the traceback: {describe_error(error)})\n"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escaped as Python's stderr shows them
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n[{len(text) - MAX_TEXT} more characters cut]\n"
