"""A captured frame's failing line: the source around it and the failing instruction's columns.

In an error storm the same lines fail again and again, so both answers are remembered:
the source context per (file, line, context size) while ``linecache`` holds the very same
list of lines, and the instruction's position per code object and offset (a code object
never changes). Neither ever raises: a file that cannot be read has no context.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from types import CodeType, FrameType, TracebackType

from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, safe_text, text_cost

__all__ = ["SourceContext", "failing_columns", "failing_lineno", "source_context"]

_MAX_LINE = 1_000  # characters of one source line
_MAX_CONTEXTS = 1024


@dataclass(frozen=True, slots=True)
class SourceContext:
    """The source lines around a failing line, cut as a report shows them, and their cost;
    remembered per (file, line) while ``linecache`` holds the same ``lines``."""

    lines: list[str]
    first: int
    context: tuple[str, ...]
    cost: int


_contexts: dict[tuple[str, int, int], SourceContext] = {}


def source_context(
    filename: str, lineno: int, frame: FrameType, context_lines: int
) -> SourceContext | None:
    """Up to ``context_lines`` lines either side of ``lineno``, or None when there are none."""
    try:
        lines = linecache.getlines(filename, frame.f_globals)
    except USER_CODE_ERRORS:
        return None
    if not lines or lineno < 1:
        return None
    key = (filename, lineno, context_lines)
    found = _contexts.get(key)
    if found is None or found.lines is not lines:  # new, or the file was read again
        first = max(1, lineno - context_lines)
        last = min(len(lines), lineno + context_lines)
        context = tuple(
            safe_text(line.rstrip("\r\n"), _MAX_LINE)[0] for line in lines[first - 1 : last]
        )
        cost = sum(text_cost(line) + 4 for line in context)
        found = SourceContext(lines, first, context, cost)
        if len(_contexts) >= _MAX_CONTEXTS:
            _contexts.clear()  # atomic, unlike evicting one entry while threads read
        _contexts[key] = found
    return found


def failing_lineno(tb: TracebackType) -> int:
    """The line ``traceback`` prints for ``tb``: its instruction's line (3.11+), else (no
    line for it, or 3.10) ``tb_lineno``; they differ only in a traceback built by hand."""
    lineno = tb.tb_lineno if isinstance(tb.tb_lineno, int) else (tb.tb_frame.f_lineno or 0)
    if sys.version_info < (3, 11):
        return lineno
    try:
        if tb.tb_lasti < 0:
            return lineno
        line = _position(tb.tb_frame.f_code, tb.tb_lasti)[0]
    except USER_CODE_ERRORS:
        return lineno
    return lineno if line is None else line


def failing_columns(tb: TracebackType, lineno: int) -> tuple[int | None, int | None, int | None]:
    """The failing instruction's end line, column and end column (characters; 3.11+)."""
    if sys.version_info < (3, 11):
        return None, None, None
    try:
        if tb.tb_lasti < 0:
            return None, None, None
        start, end, col, end_col = _position(tb.tb_frame.f_code, tb.tb_lasti)
        if start != lineno or end is None:
            return end, None, None
        filename = tb.tb_frame.f_code.co_filename
        first_line = linecache.getline(filename, start)
        last_line = first_line if end == start else linecache.getline(filename, end)
        if not first_line:
            return end, None, None
        return end, _char_offset(first_line, col), _char_offset(last_line, end_col)
    except USER_CODE_ERRORS:
        return None, None, None


def _char_offset(line: str, byte_offset: int | None) -> int | None:
    if byte_offset is None:
        return None
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="replace"))


_Position = tuple[int | None, int | None, int | None, int | None]


@lru_cache(maxsize=1024)
def _position(code: CodeType, lasti: int) -> _Position:
    """The failing instruction's (line, end line, column, end column) in bytes (3.11+): a
    walk over the code's positions up to it, so remembered (a code object never changes)."""
    positions: Iterator[_Position] = code.co_positions()  # type: ignore[attr-defined]
    return next(islice(positions, lasti // 2, None))
