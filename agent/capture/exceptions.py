"""Turn a raised exception into a ``Report``: its chain, groups, frames, source and locals.

Which exceptions a report holds, in which order and how they are linked, is decided by
``chain`` exactly as ``traceback.format_exception`` decides it, so ``Report.exceptions``
agrees with ``Report.text``: root cause first, raised exception last.

Exception groups (3.11+): ``ExceptionInfo.exceptions`` of a group holds its sub-exceptions'
chains one after another, each chain in print order exactly like ``Report.exceptions``: an
entry whose ``chain`` is None starts the next sub-exception (a new ``+---- n ----`` box in
the text), and entries with ``chain`` "cause"/"context" continue the chain before them, the
last of each run being the sub-exception itself. Like CPython, at most 15 sub-exceptions
per group are shown (``omitted`` counts the rest) and groups nested deeper than 10 levels
are elided (no frames, no members, ``omitted`` = their member count).

Frames follow Paste's ``__traceback_hide__`` protocol (``True``, ``"before"``,
``"before_and_this"``, ``"after"``, ``"after_and_this"``, ``"reset"``, ``"reset_and_this"``),
applied to each exception's own frame list; ``FrameInfo.hidden`` marks what the dashboard
hides by default. If the innermost frame would be hidden, nothing is (as Paste does). The
agent's own frames (the middleware that caught the error) are always hidden. Those rules
live in ``hiding``; each frame's source context and columns come from ``failing_line``.

Exception messages and notes are masked by content (``secret_values.mask_text``: URL
passwords, secret-named ``name=value`` parameters), and so are the same lines in the plain
text (``Report.text``): the exception's own lines, never the source lines of its stack, which
show the file as it is (the frames' source context shows them unmasked too).

Capture never raises and is bounded: frames per exception, exceptions per report, locals
per frame, the repr time budget and the approximate encoded size are all capped.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from types import CodeType, FrameType, TracebackType
from typing import Any

from debugbroker.agent.capture.chain import PrintedException, link_tree, printed_chain, prints_notes
from debugbroker.agent.capture.failing_line import (
    failing_columns,
    failing_lineno,
    source_context,
)
from debugbroker.agent.capture.hiding import (
    hidden_flags,
    hide_marker,
    is_agent_frame,
    is_library_file,
)
from debugbroker.agent.capture.plain_text import format_text
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import (
    USER_CODE_ERRORS,
    describe_error,
    safe_text,
    text_cost,
    type_name_of,
)
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.reprs.secret_values import mask_text
from debugbroker.agent.reprs.tree import Budget, shared_leaves, variables_of
from debugbroker.protocol import (
    ExceptionInfo,
    Panel,
    Report,
    RequestInfo,
    Variable,
    new_frame_info,
)

__all__ = [
    "MAX_EXCEPTIONS",
    "MAX_FRAME_LOCALS_BYTES",
    "MAX_STRUCTURE_BYTES",
    "build_report",
    "capture_seconds",
]

MAX_EXCEPTIONS = 200  # exceptions (chain entries and group members) per report
_MAX_MESSAGE = 8_192  # characters of an exception message or note
_MAX_NOTES = 32
_MIN_MESSAGE = 100  # characters of a message (or name) kept once the size budget is spent
# The documented size limits (docs/limits.md). The plain text (<= 4 MiB as UTF-8) plus the
# structure and the request stay well under the protocol's 8 MiB message cap.
MAX_STRUCTURE_BYTES = 3 * 1024 * 1024  # approximate encoded bytes of everything but the text
MAX_FRAME_LOCALS_BYTES = 512 * 1024  # approximate encoded bytes of one frame's locals
_NO_SOURCE: tuple[str, ...] = ()
_FRAME_COST = 160  # msgpack keys and numbers of one frame, roughly
_TYPE_QUALNAME = type.__dict__["__qualname__"]
_TYPE_MODULE = type.__dict__["__module__"]


def capture_seconds(options: Options) -> float:
    """The time one capture may take: past it, locals not yet rendered are skipped."""
    return max(0.25, options.repr_budget_seconds * 20)


def _safe_str(value: object, limit: int) -> str:
    try:
        text = value if isinstance(value, str) else str(value)
        return safe_text(text, limit)[0]
    except USER_CODE_ERRORS:
        return f"<{type_name_of(value)} str() failed>"


def _safe_attr(value: object, name: str) -> object:
    try:
        return getattr(value, name, None)
    except USER_CODE_ERRORS:
        return None


def _type_parts(exc: BaseException) -> tuple[str, str]:
    try:
        qualname = _TYPE_QUALNAME.__get__(type(exc))
        module = _TYPE_MODULE.__get__(type(exc))
        return _safe_str(qualname, 200), _safe_str(module, 200)
    except USER_CODE_ERRORS:
        return type_name_of(exc), "?"


def _cpython_str(value: object, what: str, limit: int, func: str = "str") -> str:
    """``traceback._safe_string``: the text, or ``<what str() failed>`` like CPython."""
    try:
        text = repr(value) if func == "repr" else str(value)
        return safe_text(text, limit)[0]
    except USER_CODE_ERRORS:
        return f"<{what} {func}() failed>"


def _notes(exc: BaseException) -> tuple[str, ...]:
    """The notes as ``format_exception_only`` prints them (a Sequence, else its repr).

    Since 3.12 a ``str`` or ``bytes`` is not taken as a sequence of notes; since 3.13 an
    error reading ``__notes__`` is shown as a note; 3.10 prints notes only when the
    ``exceptiongroup`` backport has patched ``traceback``.
    """
    if not prints_notes():
        return ()
    try:
        notes = getattr(exc, "__notes__", None)
    except USER_CODE_ERRORS as error:
        if sys.version_info < (3, 13) or not isinstance(error, Exception):
            return ()
        reason = _cpython_str(error, "__notes__", _MAX_MESSAGE, "repr")
        return (f"Ignored error getting __notes__: {reason}",)
    if notes is None:
        return ()
    try:
        if isinstance(notes, Sequence) and not (
            sys.version_info >= (3, 12) and isinstance(notes, (str, bytes))
        ):
            return tuple(
                _cpython_str(note, "note", _MAX_MESSAGE) for note in islice(notes, _MAX_NOTES)
            )
    except USER_CODE_ERRORS:
        return ()
    return (_cpython_str(notes, "__notes__", _MAX_MESSAGE, "repr"),)


def _qualifies(qualname: str, name: str) -> bool:
    """Whether ``qualname`` names the same function as ``name`` (the text prints
    ``co_name``): not when a tool renamed only ``co_name``, as Jinja2 does for template
    frames (``block 'content'``, ``top-level template code``)."""
    return qualname == name or qualname.endswith("." + name)


def _tracebacks(tb: TracebackType | None, limit: int) -> list[TracebackType]:
    items: list[TracebackType] = []
    while tb is not None:
        items.append(tb)
        tb = tb.tb_next
        if len(items) > 100_000:  # a cycle built by hand; CPython cannot make one
            break
    return items[-limit:] if limit > 0 else []


def _text_limit(printed: tuple[PrintedException, ...]) -> int | None:
    """``sys.tracebacklimit`` as ``format_exception`` applies it (never below 0) when it left
    a frame out of the text of ``printed``; None when the text prints every frame."""
    limit = getattr(sys, "tracebacklimit", None)
    if not isinstance(limit, int):  # unset; anything else makes the text fail, not cut
        return None
    limit = max(0, int(limit))
    for entry in printed:
        tb = None if entry.elided else _safe_attr(entry.exc, "__traceback__")
        length = 0
        while isinstance(tb, TracebackType) and length <= limit:
            length += 1
            tb = tb.tb_next
        if length > limit:
            return limit
        for member in entry.members:
            if _text_limit(member) is not None:
                return limit
    return None


class _Capture:
    """State of one capture: caps left, frames already held."""

    def __init__(
        self,
        options: Options,
        registry: FrameRegistry | None,
        report_id: str,
        environ: object | None = None,
        snapshot: bool = False,
    ) -> None:
        self.options = options
        self.snapshot = snapshot  # copy each held frame's locals now (HeldFrame.snapshot)
        self.environ = environ  # the request's (the Request panel lists it)
        self.registry = registry
        self.report_id = report_id
        self.size_left = MAX_STRUCTURE_BYTES
        self.exceptions_left = MAX_EXCEPTIONS
        self.held: dict[int, str | None] = {}
        self.secret = secret_pattern(options)
        # Lines of messages and notes as printed, and as masked: ``masked_text`` applies them
        # to the plain text.
        self.masked_lines: dict[str, str] = {}
        self.deadline = time.monotonic() + capture_seconds(options)
        self.leaves = shared_leaves(options)  # equal small values share one node

    def chain(self, printed: tuple[PrintedException, ...]) -> list[_Draft]:
        """One chain in print order; past the exception cap its oldest causes are left out."""
        kept = printed[-max(1, self.exceptions_left) :]
        self.exceptions_left -= len(kept)
        out: list[_Draft] = []
        # The raised exception first, so the caps and budgets favour it over its causes.
        for position in reversed(range(len(kept))):
            entry = kept[position]
            out.append(self.exception(entry, entry.link if position else None))
        out.reverse()
        return out

    def fitted(self, text: str) -> str:
        """``text`` cut to what the size budget has left (at least ``_MIN_MESSAGE``
        characters), the cut said at its end; the cost taken from the budget."""
        cost = text_cost(text)
        if cost > self.size_left and len(text) > _MIN_MESSAGE:
            per_char = max(1, cost // max(1, len(text)))
            keep = max(_MIN_MESSAGE, self.size_left // per_char)
            if keep < len(text):
                text = text[:keep] + f"… [{len(text) - keep} more characters cut: report size]"
                cost = text_cost(text)
        self.size_left -= cost
        return text

    def fitted_notes(self, notes: tuple[str, ...]) -> tuple[str, ...]:
        """The notes that fit the size budget; the rest become one note saying so."""
        kept: list[str] = []
        for position, note in enumerate(notes):
            if kept and self.size_left <= 0:
                left = len(notes) - position
                kept.append(f"[{left} more note{'s' if left > 1 else ''} cut: report size]")
                break
            kept.append(self.fitted(note))
        return tuple(kept)

    def exception(self, entry: PrintedException, link: str | None) -> _Draft:
        exc = entry.exc
        type_name, module = _type_parts(exc)
        message = self.fitted(self.masked(_cpython_str(exc, "exception", _MAX_MESSAGE)))
        notes = self.fitted_notes(tuple(self.masked(note) for note in _notes(exc)))
        self.size_left -= 200
        built: list[dict[str, Any]] = []
        if not entry.elided:
            tb = _safe_attr(exc, "__traceback__")
            tracebacks = _tracebacks(
                tb if isinstance(tb, TracebackType) else None, self.options.max_frames
            )
            flags = hidden_flags([hide_marker(item.tb_frame) for item in tracebacks])
            # Innermost first, so the time and size budgets favour the frames that matter most;
            # once the report's size budget is spent, outer frames are left out.
            order = [
                (item, hide, is_agent_frame(item.tb_frame))
                for item, hide in zip(tracebacks, flags, strict=True)
            ]
            order.reverse()
            held_now = self.hold_all([item.tb_frame for item, _, own in order if not own])
            for item, hide, own in order:
                if built and self.size_left <= 0:
                    break
                built.append(self.frame(item, hide, own))
            self.let_go([item.tb_frame for item, _, _ in order[len(built) :]], held_now)
            built.reverse()
        members: list[_Draft] = []
        omitted = entry.omitted
        for position, member in enumerate(entry.members):
            if self.exceptions_left <= 0:
                omitted += len(entry.members) - position
                break
            members.extend(self.chain(member))
        fields = {"type_name": type_name, "module": module, "message": message, "notes": notes}
        return _Draft(fields | {"chain": link, "omitted": omitted}, built, members)

    def masked(self, text: str) -> str:
        """``text`` masked by content; its changed lines are remembered for the plain text."""
        masked = mask_text(text, self.secret)
        if masked is not text:
            for line, masked_line in zip(text.splitlines(), masked.splitlines(), strict=False):
                if line != masked_line and len(self.masked_lines) < _MAX_NOTES * 4:
                    self.masked_lines[line] = masked_line
        return masked

    def masked_text(self, text: str) -> str:
        """The plain traceback with the masked message and note lines replaced."""
        for line, masked_line in self.masked_lines.items():
            text = text.replace(line, masked_line)
        return text

    def frame(self, tb: TracebackType, hidden: bool, own: bool = False) -> dict[str, Any]:
        """One frame's fields but its index; ``own`` (a frame of this package, catching the
        error) is hidden and shows no locals and is not held: they are the agent's."""
        frame = tb.tb_frame
        code = frame.f_code
        spent = self.size_left <= 0  # the innermost frame still goes, its names cut short
        filename, function, is_library, filename_cost = _code_names(code, spent)
        lineno = failing_lineno(tb)
        module = _safe_str(frame.f_globals.get("__name__", ""), _MIN_MESSAGE if spent else 500)
        self.size_left -= _FRAME_COST + filename_cost + text_cost(module)
        found = (
            source_context(code.co_filename, lineno, frame, self.options.context_lines)
            if self.size_left > 0
            else None
        )
        context_start, context = lineno, _NO_SOURCE  # none, or no size left for it
        if found is not None:
            self.size_left -= found.cost
            context_start, context = found.first, found.context
        end_lineno, colno, end_colno = failing_columns(tb, lineno)
        frame_id = None if own else self.hold(frame)
        # A held frame's values get "+" handles: the dashboard can fetch more of each.
        variables = () if own else self.locals(frame, handles=frame_id is not None)
        return {
            "frame_id": frame_id,
            "filename": filename,
            "lineno": lineno,
            "function": function,
            "module": module,
            "context_start": context_start,
            "context": context,
            "locals": variables,
            "end_lineno": end_lineno,
            "colno": colno,
            "end_colno": end_colno,
            "is_library": is_library,
            "hidden": hidden or own,
        }

    def hold_all(self, frames: list[FrameType]) -> set[int]:
        """Hold the frames not held yet in one go (``FrameRegistry.hold_many``: one lock and
        one eviction for a whole traceback); the ``id`` of each frame held now."""
        if self.registry is None:
            return set()
        new = list({id(frame): frame for frame in frames if id(frame) not in self.held}.values())
        try:
            held = self.registry.hold_many(self.report_id, new, self.snapshot)
        except USER_CODE_ERRORS:
            return set()  # each is tried again on its own (``hold``)
        for frame, (frame_id, kept) in zip(new, held, strict=True):
            self.held[id(frame)] = frame_id if kept else None
        return {id(frame) for frame in new}

    def let_go(self, frames: list[FrameType], held_now: set[int]) -> None:
        """Frames ``hold_all`` held that the report leaves out (its size budget ran out): let
        them go, so they are not kept alive for nothing."""
        if self.registry is None:
            return
        dropped = []
        for frame in frames:
            key = id(frame)
            if key in held_now:
                frame_id = self.held.pop(key, None)
                if frame_id is not None:
                    dropped.append(frame_id)
        if dropped:
            self.registry.let_go(self.report_id, dropped)

    def hold(self, frame: FrameType) -> str | None:
        if self.registry is None:
            return None
        key = id(frame)  # frames are alive during capture, so id() is unique here
        if key not in self.held:
            try:
                frame_id = self.registry.hold(self.report_id, frame, self.snapshot)
                self.held[key] = frame_id if frame_id in self.registry else None
            except USER_CODE_ERRORS:
                self.held[key] = None
        return self.held[key]

    def locals(self, frame: FrameType, *, handles: bool) -> tuple[Variable, ...]:
        now = time.monotonic()
        if self.size_left <= 0 or now >= self.deadline:
            return ()
        try:
            namespace = frame.f_locals
            if namespace is frame.f_globals:  # module level: leave out the dunder noise
                namespace = {k: v for k, v in namespace.items() if not _is_dunder(k)}
        except USER_CODE_ERRORS:
            return ()
        seconds = min(self.options.repr_budget_seconds, self.deadline - now)
        budget = Budget(seconds, min(MAX_FRAME_LOCALS_BYTES, self.size_left))
        start = budget.remaining
        variables = variables_of(
            namespace, self.options, budget, self.environ, handles=handles, leaves=self.leaves
        )
        self.size_left -= start - budget.remaining
        return variables


# What a frame shows of its code object (``_code_names``), by ``id(code)``: the same functions
# fail again and again. Each entry keeps its code object, so an id is never reused while its
# entry lives; cleared when full.
_code_cache: dict[int, tuple[CodeType, str, str, bool, int]] = {}
_MAX_CODES = 2_048


def _code_names(code: CodeType, spent: bool) -> tuple[str, str, bool, int]:
    """A frame's file name, function name (its qualified name when it names the same
    function), whether the file is a library's, and the file name's cost; names cut short
    when the size budget is ``spent``."""
    found = None if spent else _code_cache.get(id(code))
    if found is not None and found[0] is code:
        return found[1], found[2], found[3], found[4]
    filename = _safe_str(code.co_filename, _MIN_MESSAGE if spent else 4096)
    function = code.co_name
    if sys.version_info >= (3, 11) and _qualifies(code.co_qualname, function):
        function = code.co_qualname
    names = (
        filename,
        _safe_str(function, _MIN_MESSAGE if spent else 500),
        is_library_file(filename),
        text_cost(filename),
    )
    if not spent:
        if len(_code_cache) >= _MAX_CODES:
            _code_cache.clear()
        _code_cache[id(code)] = (code, *names)
    return names


@dataclass(frozen=True, slots=True)
class _Draft:
    """An exception captured but not yet built: its fields, its frames' fields and its
    members. Frames are numbered in print order across the whole report, which is known
    only once everything is captured (the raised exception and inner frames go first)."""

    fields: dict[str, Any]
    frames: list[dict[str, Any]]
    members: list[_Draft]


def _built(drafts: list[_Draft], counter: Iterator[int]) -> tuple[ExceptionInfo, ...]:
    """The exceptions with their frames numbered in print order, across the whole report."""
    out = []
    for draft in drafts:
        frames = tuple(new_frame_info(next(counter), **fields) for fields in draft.frames)
        members = _built(draft.members, counter)
        out.append(ExceptionInfo(frames=frames, exceptions=members, **draft.fields))
    return tuple(out)


def _is_dunder(name: object) -> bool:
    return isinstance(name, str) and name.startswith("__") and name.endswith("__")


@lru_cache(maxsize=1)
def _hostname() -> str:
    try:
        return socket.gethostname()
    except USER_CODE_ERRORS:
        return ""


def _request_cost(request: RequestInfo | None) -> int:
    """An upper bound of the request panel's encoded size (it shares the size budget)."""
    if request is None:
        return 0
    tables = (request.headers, request.query, request.form, request.cookies, request.environ)
    pairs = sum(text_cost(name) + text_cost(value) + 4 for table in tables for name, value in table)
    return pairs + text_cost(request.method) + text_cost(request.url) + text_cost(request.form_note)


def build_report(
    exc: BaseException,
    *,
    report_id: str,
    agent_id: str,
    options: Options,
    registry: FrameRegistry | None,
    request: RequestInfo | None = None,
    environ: object | None = None,
    pid: int | None = None,
    host: str | None = None,
    app: str | None = None,
    panels: tuple[Panel, ...] = (),
    snapshot: bool = False,
) -> Report:
    """Build the ``Report`` of ``exc`` (holding its frames in ``registry``); never raises.

    ``environ`` is the WSGI environ ``request`` was built from: the Request panel lists it,
    so a local holding it shows as ``{...}`` (``reprs.collapsed``) instead of again in every
    frame of the server and the framework. (An ASGI scope is not passed: the panel shows
    only part of it.)

    ``panels`` say where the error came from (``capture.panels``). ``snapshot`` keeps a copy
    of each held frame's locals as they are now, for frames their host clears or runs on.
    """
    created = time.time()
    pid = os.getpid() if pid is None else pid
    host = _hostname() if host is None else host
    app = options.app_name if app is None else app
    type_name = type_name_of(exc)
    try:
        links = link_tree(exc)
        alone = links.cause is None and links.context is None and links.members is None
        printed = printed_chain(links)
        capture = _Capture(options, registry, report_id, environ, snapshot)
        capture.size_left -= _request_cost(request)
        drafts = capture.chain(printed)
        exceptions = _built(drafts, itertools.count())
        message = exceptions[-1].message
        return Report(
            id=report_id,
            agent_id=agent_id,
            created=created,
            type_name=exceptions[-1].type_name,
            message=message,
            text=capture.masked_text(format_text(exc, alone=alone)),
            exceptions=exceptions,
            request=request,
            pid=pid,
            host=host,
            app=app,
            panels=panels,
            tracebacklimit=_text_limit(printed),
        )
    except USER_CODE_ERRORS as error:  # a bug here must not hide the app's own error
        note = f"<debugbroker could not capture this error: {describe_error(error)}>"
        try:
            text = mask_text(format_text(exc), secret_pattern(options))
        except USER_CODE_ERRORS:
            text = note
        return Report(
            id=report_id,
            agent_id=agent_id,
            created=created,
            type_name=type_name,
            message=note,
            text=text,
            exceptions=(ExceptionInfo(type_name=type_name, module="?", message=note, frames=()),),
            request=request,
            pid=pid,
            host=host,
            app=app,
            panels=panels,
        )
