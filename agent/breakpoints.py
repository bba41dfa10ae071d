"""Breakpoints set from the dashboard: armed in this process, a hit pauses like ``breakpoint()``.

The broker sends each agent its whole list (``protocol.SetBreakpoints``) after every welcome
and change; ``Breakpoints.apply`` (on the agent's I/O thread) finds the code objects of each
breakpoint's file that hold its line, and arms only those:

- Python 3.12+: ``sys.monitoring`` LINE events, switched on with ``set_local_events`` for
  those code objects alone; a line of theirs without a breakpoint answers ``DISABLE`` the
  first time it runs. Code that holds no breakpoint runs exactly as before.
- Python 3.10 and 3.11: a ``sys.settrace`` call hook on the threads that serve requests
  (the middlewares call ``trace_this_thread`` while breakpoints are armed; threads started
  later get it from ``threading.settrace``); it traces lines only in the code objects that
  hold a breakpoint. Every call on those threads pays the hook, so it is there only while a
  breakpoint is armed.

The code objects come from the functions the garbage collector knows (and their nested code)
and the frames running now; a file not loaded yet is "pending" and looked for again every few
seconds. A line of no code, or one that runs only at import, is refused with the reason, as is
a breakpoint in debugbroker's own code or in code without a file (the console's), and every
breakpoint of an agent with ``evalex=False``. A file changed on disk since the process loaded
it arms with a warning: the line numbers of the dashboard's view may not be the code that runs.

On a hit the condition is evaluated in the frame, bounded in time like an eval (an interrupt
after ``CONDITION_SECONDS``); one that raises does not pause and puts its error in the state,
and one that runs too long is switched off until the breakpoint changes. The hit count counts
the hits whose condition held; from the ``hit_count``-th on, the thread pauses through
``trace.pause_here``, exactly as ``breakpoint()`` pauses it, steps included.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FrameType, FunctionType
from typing import Any

from debugbroker.agent.stepping import Stepper, continued_here, is_own_file
from debugbroker.protocol import (
    MAX_BREAKPOINTS,
    BreakpointSpec,
    BreakpointState,
    BreakpointStates,
    BreakpointStatus,
    SetBreakpoints,
)

__all__ = [
    "Breakpoints",
    "PauseFunction",
    "CONDITION_SECONDS",
    "USES_MONITORING",
    "THREAD_TRACE",
    "trace_this_thread",
    "armed_code",
]

CONDITION_SECONDS = 0.5  # the longest a condition may run at one hit
# Files not loaded yet are looked for again after 5 s, then half as often each time they are
# still missing, down to once a minute (each look walks the garbage collector's objects).
_RESCAN_SECONDS = 5.0
_RESCAN_MAX_SECONDS = 60.0
_HITS_SECONDS = 1.0  # hit counts alone are sent at most this often
USES_MONITORING = sys.version_info >= (3, 12)
_NEW_SCOPE = inspect.CO_NEWLOCALS  # a function's code (not a module's or a class body's)
_MAX_CONDITION = 2000  # characters of a condition


class _ThreadTrace:
    """Whether request threads need the call hook (3.10/3.11 with a breakpoint armed)."""

    __slots__ = ("needed",)

    def __init__(self) -> None:
        self.needed = False


# Read by the middlewares on every request: one attribute, False unless 3.10/3.11 and armed.
THREAD_TRACE = _ThreadTrace()


def _log(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed
        pass


class _ConditionTimeout(Exception):
    """A condition ran over its time."""


@dataclass(eq=False)
class _Armed:
    """One breakpoint as one ``Breakpoints`` holds it, armed or not."""

    spec: BreakpointSpec
    owner: Breakpoints
    condition: CodeType | None = None
    status: BreakpointStatus = "pending"
    reason: str = ""
    warning: str = ""
    hits: int = 0
    codes: list[CodeType] = field(default_factory=list)

    def state(self) -> BreakpointState:
        return BreakpointState(
            id=self.spec.id,
            status=self.status,
            reason=self.reason,
            warning=self.warning,
            hits=self.hits,
        )


# code object -> line -> the breakpoints there, for every ``Breakpoints`` of the process. The
# hooks read it without the lock (a dict lookup); ``_LOCK`` guards its writers.
_table: dict[CodeType, dict[int, tuple[_Armed, ...]]] = {}
_LOCK = threading.RLock()
_tool: int | None = None


# Pauses the thread of a frame at a hit: the frame and what paused it ("breakpoint at x.py:3").
PauseFunction = Callable[[FrameType, str], None]


def armed_code() -> frozenset[CodeType]:
    """The code objects whose lines are watched now, in this process (the rest run as if no
    breakpoint were set)."""
    return frozenset(_table)


class Breakpoints:
    """One agent's breakpoints: armed from the broker's list, their states reported back.

    ``pause`` is what a hit calls (``agent/process.py`` gives ``trace.pause_here`` through
    the agent's transport); ``evalex`` False refuses every breakpoint; ``started`` is when the
    process's agent started (a file changed on disk after it is warned about).
    """

    def __init__(self, *, evalex: bool, started: float, pause: PauseFunction) -> None:
        self.evalex = evalex
        self.started = started
        self.pause = pause
        self.pid = os.getpid()
        self._armed: dict[str, _Armed] = {}
        self._dirty = False  # something to send
        self._urgent = False  # ... that should go at once (more than hit counts)
        self._sent_at = 0.0
        self._rescan_at = 0.0
        self._rescan_every = _RESCAN_SECONDS

    def apply(self, message: SetBreakpoints) -> None:
        """Arm the broker's list (the whole of it: anything not in it is removed)."""
        specs = message.breakpoints[:MAX_BREAKPOINTS]
        entries: dict[str, _Armed] = {}
        for spec in specs:
            entry = _Armed(spec=spec, owner=self)
            old = self._armed.get(spec.id)
            if old is not None and old.spec == spec:
                entry.hits = old.hits  # the same breakpoint again (a new welcome): keep count
            entries[spec.id] = entry
            self._check(entry)
        self._armed = entries
        self._rescan_every = _RESCAN_SECONDS
        self._rescan_at = time.monotonic() + self._rescan_every
        self._resolve([entry for entry in entries.values() if entry.status == "pending"])
        self._rearm()
        self._dirty = self._urgent = True

    def tick(self, now: float) -> None:
        """Called by the I/O thread often: look again for files not loaded before."""
        if now < self._rescan_at:
            return
        pending = [entry for entry in self._armed.values() if entry.status == "pending"]
        if pending:
            self._resolve(pending)
            if any(entry.status != "pending" for entry in pending):
                self._rearm()
                self._dirty = self._urgent = True
            else:
                self._rescan_every = min(self._rescan_every * 2, _RESCAN_MAX_SECONDS)
        self._rescan_at = now + self._rescan_every

    def take_states(self) -> BreakpointStates | None:
        """The states to send: at once after a new list or a change of status, and hit
        counts at most once a second (a hot line whose hit count is not reached yet)."""
        now = time.monotonic()
        if not self._dirty or (not self._urgent and now - self._sent_at < _HITS_SECONDS):
            return None
        self._dirty = self._urgent = False
        self._sent_at = now
        return BreakpointStates(states=tuple(entry.state() for entry in self._armed.values()))

    def states(self) -> tuple[BreakpointState, ...]:
        """Every breakpoint's state now (tests, and the I/O thread after a reconnect)."""
        return tuple(entry.state() for entry in self._armed.values())

    def listed(self) -> int:
        """How many breakpoints the broker's last list held."""
        return len(self._armed)

    def clear(self) -> None:
        """Disarm all (the transport closes)."""
        self._armed = {}
        self._rearm()

    def _check(self, entry: _Armed) -> None:
        """Refuse what can never be armed; compile the condition."""
        spec = entry.spec
        if not self.evalex:
            entry.status, entry.reason = "refused", "code execution is off (evalex=False)"
        elif not spec.enabled:
            entry.status = "disabled"
        elif spec.line < 1:
            entry.status, entry.reason = "refused", f"no line {spec.line}"
        elif is_own_file(spec.file):
            where = "in code without a file" if spec.file.startswith("<") else "inside debugbroker"
            entry.status, entry.reason = "refused", f"{where}: it cannot stop there"
        elif spec.condition.strip():
            if len(spec.condition) > _MAX_CONDITION:
                entry.status, entry.reason = "refused", "the condition is too long"
                return
            try:
                entry.condition = compile(spec.condition.strip(), "<breakpoint condition>", "eval")
            except (SyntaxError, ValueError) as error:  # ValueError: a null character
                entry.status = "refused"
                message = error.msg if isinstance(error, SyntaxError) else str(error)
                entry.reason = f"the condition is not an expression: {message}"

    def _resolve(self, entries: list[_Armed]) -> None:
        """Find the code objects holding each pending breakpoint's line; refuse or warn."""
        if not entries:
            return
        files = {entry.spec.file for entry in entries}
        codes = _loaded_code(files)
        for entry in entries:
            spec = entry.spec
            loaded = codes.get(spec.file, [])
            entry.codes = [code for code in loaded if spec.line in _code_lines(code)]
            if entry.codes:
                entry.status, entry.reason = "armed", ""
                entry.warning = _changed_on_disk(spec.file, loaded, self.started)
                continue
            disk = _disk_code(spec.file)
            if disk is None:
                entry.reason = (
                    f"{spec.file} is not loaded in this process (yet)"
                    if not loaded
                    else f"{spec.file} cannot be read to find line {spec.line}"
                )
                if loaded:
                    entry.status = "refused"
                    entry.reason = f"no code on line {spec.line}"
                continue
            holders = [code for code in _walk(disk) if spec.line in _code_lines(code)]
            if not holders:
                entry.status, entry.reason = "refused", f"no code on line {spec.line}"
            elif not any(code.co_flags & _NEW_SCOPE for code in holders):
                entry.status = "refused"
                entry.reason = (
                    f"line {spec.line} runs only when its module or class is first run "
                    "(at import), not again"
                )
            elif loaded:
                entry.status = "refused"
                entry.reason = (
                    f"no code on line {spec.line} in the code this process loaded "
                    "(the file changed on disk since it was loaded?)"
                )
            else:
                entry.reason = f"{spec.file} is not loaded in this process (yet)"

    def _rearm(self) -> None:
        """Rebuild the process's table for this agent's armed breakpoints and switch hooks."""
        with _LOCK:
            for code in list(_table):
                lines = {
                    line: kept
                    for line, entries in _table[code].items()
                    if (kept := tuple(entry for entry in entries if entry.owner is not self))
                }
                if lines:
                    _table[code] = lines
                else:
                    del _table[code]
            for entry in self._armed.values():
                if entry.status not in ("armed", "error"):
                    continue
                for code in entry.codes:
                    lines = dict(_table.get(code, {}))
                    lines[entry.spec.line] = (*lines.get(entry.spec.line, ()), entry)
                    _table[code] = lines
            _switch_hooks()

    def hit(self, entry: _Armed, frame: FrameType) -> None:
        """``entry``'s line is about to run in ``frame``: pause when it should."""
        if self.pid != os.getpid() or entry.status not in ("armed", "error"):
            return
        if entry.condition is not None:
            held, error = _evaluate(entry.condition, frame)
            if error is not None and error.startswith("the condition ran"):
                self._set(entry, "refused", error + "; the breakpoint is off until it is changed")
                self._rearm()
                return
            if error is not None:
                self._set(entry, "error", error)
                return
            if entry.status == "error":
                self._set(entry, "armed", "")
            if not held:
                return
        entry.hits += 1
        self._dirty = True  # a count only: sent with the next change, or within a second
        if entry.hits < entry.spec.hit_count:
            return
        self.pause(frame, f"breakpoint at {os.path.basename(entry.spec.file)}:{entry.spec.line}")

    def _set(self, entry: _Armed, status: BreakpointStatus, reason: str) -> None:
        """A new status or reason, sent at the I/O thread's next turn."""
        if (entry.status, entry.reason) != (status, reason):
            entry.status, entry.reason = status, reason
            self._dirty = self._urgent = True


def _evaluate(condition: CodeType, frame: FrameType) -> tuple[bool, str | None]:
    """The condition's truth in ``frame``, or why it has none: it raised, or ran too long
    (interrupted like an eval at its time limit)."""
    from debugbroker.agent.evals.interrupts import TIMERS, EvalRun

    run = EvalRun("breakpoint-condition", lambda result: None)
    timer = TIMERS.after(CONDITION_SECONDS, lambda: run.time_up(CONDITION_SECONDS))
    try:
        try:
            run.arm()
            try:
                value = eval(condition, frame.f_globals, frame.f_locals)  # noqa: S307
            finally:
                run.disarm()
            return bool(value), None
        except KeyboardInterrupt:
            if run.reason is None:
                raise  # a real Ctrl-C: not ours to swallow
            return False, f"the condition ran over {CONDITION_SECONDS:g}s and was stopped"
        except Exception as error:
            from debugbroker.agent.reprs.safe_text import describe_error

            return False, f"the condition raised {describe_error(error)}"
    finally:
        timer.cancel()
        run.finished = True


def _walk(code: CodeType) -> Iterable[CodeType]:
    """``code`` and every code object nested in it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _walk(const)


_lines_cache: dict[CodeType, frozenset[int]] = {}


def _code_lines(code: CodeType) -> frozenset[int]:
    """The lines ``code`` itself has instructions on (not its nested functions')."""
    lines = _lines_cache.get(code)
    if lines is None:
        lines = frozenset(line for _, _, line in code.co_lines() if line is not None)
        if len(_lines_cache) > 10_000:
            _lines_cache.clear()
        _lines_cache[code] = lines
    return lines


def _loaded_code(files: set[str]) -> dict[str, list[CodeType]]:
    """The code objects of ``files`` this process holds: every function's (and what it
    nests) and the frames running now (a module's body still running, ``__main__``)."""
    roots: set[CodeType] = set()
    for obj in gc.get_objects():
        kind = type(obj)
        if kind is FunctionType:
            code = obj.__code__
        elif kind is CodeType:
            code = obj
        else:
            continue
        if code.co_filename in files:
            roots.add(code)
    for top in list(sys._current_frames().values()):
        frame: FrameType | None = top
        while frame is not None:
            if frame.f_code.co_filename in files:
                roots.add(frame.f_code)
            frame = frame.f_back
    found: dict[str, list[CodeType]] = {}
    seen: set[CodeType] = set()
    for root in roots:
        for code in _walk(root):
            if code not in seen:
                seen.add(code)
                found.setdefault(code.co_filename, []).append(code)
    return found


def _read(filename: str) -> str | None:
    try:
        with open(filename, "rb") as handle:
            data = handle.read(10_000_000)
        return data.decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def _disk_code(filename: str) -> CodeType | None:
    """The module code of ``filename`` as it is on disk now, or None."""
    source = _read(filename)
    if source is None:
        return None
    try:
        return compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None


def _changed_on_disk(filename: str, loaded: list[CodeType], started: float) -> str:
    """A warning when ``filename`` changed on disk since the process loaded it, else ""."""
    try:
        modified = os.stat(filename).st_mtime
    except OSError:
        return ""
    source = _read(filename)
    lines = source.splitlines() if source is not None else []
    for code in loaded:  # a function whose first line no longer starts it: lines moved
        if not code.co_flags & _NEW_SCOPE or code.co_name.startswith("<"):
            continue
        first = code.co_firstlineno
        text = lines[first - 1].strip() if 0 < first <= len(lines) else ""
        if not (text.startswith("@") or f"def {code.co_name}" in text):
            return (
                "the file changed on disk since this process loaded it: the line shown may "
                "not be the line that runs (restart the process to load it again)"
            )
    if modified > started:
        return (
            "the file changed on disk after this process started: the line shown may not be "
            "the line that runs (restart the process to load it again)"
        )
    return ""


def _pausable(frame: FrameType) -> bool:
    """Whether this thread may stop here: not one of the agent's own threads, and not a
    thread being stepped already (its step stops on its own)."""
    if threading.current_thread().name.startswith("debugbroker-"):
        return False
    return not isinstance(getattr(sys.gettrace(), "__self__", None), Stepper)


def _hit_line(frame: FrameType, entries: tuple[_Armed, ...]) -> None:
    try:
        if not _pausable(frame):
            return
        for entry in entries:
            if entry.spec.enabled:
                entry.owner.hit(entry, frame)
                return
    except Exception as error:  # a breakpoint must never break the program
        _log(f"a breakpoint failed: {type(error).__name__}: {error}")


# --- Python 3.12+: sys.monitoring -------------------------------------------------------------

_monitored: set[CodeType] = set()


def _on_line(code: CodeType, line: int) -> object:
    frame = sys._getframe(1)
    # A step that stopped on this very line event and was continued (its trace function runs
    # before this callback) already paused here: pdb stops once on a breakpoint's line.
    again = continued_here(frame)
    lines = _table.get(code)
    entries = lines.get(line) if lines is not None else None
    if entries is None:
        return sys.monitoring.DISABLE  # type: ignore[attr-defined,unused-ignore]
    if not again:
        _hit_line(frame, entries)
    return None


def _claim_tool() -> int | None:
    global _tool
    if _tool is not None:
        return _tool
    monitoring: Any = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    for tool in (monitoring.DEBUGGER_ID, 3, 4):
        if monitoring.get_tool(tool) is None:
            monitoring.use_tool_id(tool, "debugbroker")
            monitoring.register_callback(tool, monitoring.events.LINE, _on_line)
            _tool = tool
            return tool
    _log("no sys.monitoring tool id is free: breakpoints cannot be armed")
    return None


def _switch_monitoring() -> None:
    monitoring: Any = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    if not _table and not _monitored:
        return
    tool = _claim_tool()
    if tool is None:
        return
    for code in _monitored - set(_table):
        monitoring.set_local_events(tool, code, 0)
    for code in set(_table) - _monitored:
        monitoring.set_local_events(tool, code, monitoring.events.LINE)
    _monitored.clear()
    _monitored.update(_table)
    monitoring.restart_events()  # lines that answered DISABLE may hold a breakpoint now


# --- Python 3.10 and 3.11: sys.settrace on the threads that need it ---------------------------

TraceFunction = Callable[[FrameType, str, Any], Any]


def _call_hook(frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
    """The threads' trace function: trace the lines of code that holds a breakpoint only."""
    if frame.f_code in _table:
        frame.f_trace_lines = True
        return _line_hook
    return None


# A stepper that ends (Continue) calls it again for the frames it traced, which are running
# already: a "call" here only decides whether the frame's lines are traced.
_call_hook.retraces_running_frames = True  # type: ignore[attr-defined]


def _line_hook(frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
    if event != "line":
        return _line_hook
    lines = _table.get(frame.f_code)
    entries = lines.get(frame.f_lineno) if lines is not None else None
    if entries is None:
        return _line_hook
    frame.f_trace = None  # a step puts its own hook here
    _hit_line(frame, entries)
    if frame.f_trace is None:
        frame.f_trace = _line_hook
    return frame.f_trace


def trace_this_thread() -> None:
    """On 3.10/3.11, hook the calling thread while breakpoints are armed (and unhook it
    after): the middlewares call it per request when ``THREAD_TRACE.needed`` or hooked."""
    if USES_MONITORING:
        return
    current = sys.gettrace()
    if _table and current is None:
        sys.settrace(_call_hook)
    elif not _table and current is _call_hook:
        sys.settrace(None)


def _thread_start_hook(frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
    """What a thread started while breakpoints are armed runs first: the app's threads keep
    ``_call_hook``; debugbroker's own (I/O, evals, timers), which never stop at a breakpoint,
    are left untraced. On 3.11 a traced thread loops at its next call for as long as an
    interrupt waits on a thread blocked in C (see ``Interruptible.disarm``), and the agent's
    own threads must go on then: the timers are what answers "still blocked"."""
    if threading.current_thread().name.startswith("debugbroker-"):
        sys.settrace(None)
        return None
    sys.settrace(_call_hook)
    return _call_hook(frame, event, arg)


def _switch_settrace() -> None:
    # Once hooked, the request threads are looked at until they are unhooked again.
    THREAD_TRACE.needed = THREAD_TRACE.needed or bool(_table)
    threading.settrace(_thread_start_hook if _table else None)


def _switch_hooks() -> None:
    if USES_MONITORING:
        _switch_monitoring()
    else:
        _switch_settrace()


def _after_fork_in_child() -> None:
    """A forked child's agent gets its own list from the broker: drop the parent's."""
    global _LOCK
    _LOCK = threading.RLock()
    _table.clear()
    try:
        _switch_hooks()
    except Exception:
        pass


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:
    _register_at_fork(after_in_child=_after_fork_in_child)
