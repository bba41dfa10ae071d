"""Stepping a paused thread: over, into, out, until a line, with ``sys.settrace`` on that
thread only.

A ``Stepper`` belongs to one paused thread. ``start`` arms it at the frame where the thread
paused and returns; the thread runs on with a trace function installed for itself alone,
and at the step's next stop the trace function calls ``on_stop`` (which sends a new paused
report and blocks until the next step or Continue). Continue, or a pause that times out,
removes the trace function: the thread runs untraced again.

Where each step stops (after pdb; docs/frameworks.md, "Stepping"):

- ``over``: the next line of the paused frame. When that frame returns (or raises out),
  the next line of its caller.
- ``into``: the next line run anywhere on this thread, the first line of a called function
  included.
- ``out``: the next line of the caller, once the paused frame returned.
- ``until``: the line ``line`` of the paused frame; the caller's next line if the frame
  returns first.
- A generator or coroutine frame that suspends (``yield``, ``await``) is not a return: over,
  out and until wait until that same frame resumes, as pdb's ``next`` does, while the
  code it yielded to runs on untraced.

The agent's own code, the console's code and other code without a file (``<...>``) are never
stepped into: no line of theirs is a stop.
"""

from __future__ import annotations

import dis
import inspect
import os
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import debugbroker
from debugbroker.protocol import Step, StepAction

__all__ = ["Stepper", "StopHandler", "continued_here", "is_own_code", "is_own_file"]

# Called at each stop with the frame and the step that got there: the next step, or None to
# run on untraced (Continue, the pause's timeout, no broker).
StopHandler = Callable[[FrameType, StepAction], "Step | None"]
TraceFunction = Callable[[FrameType, str, Any], Any]

_OWN_PREFIXES = tuple(
    {
        os.path.dirname(os.path.abspath(debugbroker.__file__)) + os.sep,
        os.path.dirname(os.path.realpath(debugbroker.__file__)) + os.sep,
        *(
            os.path.realpath(os.path.join(os.path.dirname(debugbroker.__file__), name)) + os.sep
            for name in ("agent", "protocol")
        ),
    }
)
_SUSPENDING = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_RETURNS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap}
_own_cache: dict[CodeType, bool] = {}
# Where this thread's last step stopped before it was continued: the frame (by id, no
# reference kept), its code, line and instruction. On 3.12+ the step's trace function runs
# before sys.monitoring's LINE callbacks for the same line, so a breakpoint on the line the
# step stopped at is reached right after Continue: it must not pause there a second time.
_continued = threading.local()


def is_own_file(filename: str) -> bool:
    """A file of the agent (or protocol), or no file at all (``<console>``, ``<string>``)."""
    return filename.startswith("<") or filename.startswith(_OWN_PREFIXES)


def is_own_code(code: CodeType) -> bool:
    """Code no step stops in: the agent's (and protocol's), and code without a file
    (the console's, ``<frozen ...>``, ``<string>``)."""
    own = _own_cache.get(code)
    if own is None:
        own = is_own_file(code.co_filename)
        if len(_own_cache) > 4096:
            _own_cache.clear()
        _own_cache[code] = own
    return own


def _suspends(frame: FrameType, raised: bool) -> bool:
    """Whether a return event of ``frame`` is a generator's or coroutine's suspension
    (``yield``, ``await``) rather than its end: it ends at a return instruction or by an
    exception (``raised``: an exception event came just before)."""
    if not frame.f_code.co_flags & _SUSPENDING or raised:
        return False
    code = frame.f_code.co_code
    return not (0 <= frame.f_lasti < len(code) and code[frame.f_lasti] in _RETURNS)


def _log(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed
        pass


class Stepper:
    """One paused thread's steps, traced with ``sys.settrace`` on that thread only."""

    def __init__(self, on_stop: StopHandler) -> None:
        self._on_stop = on_stop
        self._thread = threading.get_ident()
        self._armed = False
        self._action: StepAction = "continue"  # how the step goes on from here
        self._taken: StepAction = "continue"  # the step as it was asked (reported at the stop)
        self._line = 0
        # Where the step stops: lines of this frame ("over", "until"), or the frame whose
        # return the step waits for ("out"). None: any line ("into").
        self._target: FrameType | None = None
        self._raised = False  # the target frame's last event was an exception
        self._previous: object = None  # the thread's trace function before (coverage...)

    @property
    def armed(self) -> bool:
        """A step is under way: the thread runs traced until its next stop."""
        return self._armed

    def start(self, frame: FrameType, step: Step) -> None:
        """Take ``step`` from ``frame``, where this thread is paused (called on it, not from
        a trace function): arm, and let the caller return into the traced code."""
        if threading.get_ident() != self._thread:
            raise RuntimeError("a Stepper steps only the thread that made it")
        self._arm(frame, step)
        if self._armed:
            self._previous = sys.gettrace()
            sys.settrace(self._on_call)

    def stop(self) -> None:
        """Stop stepping: this thread runs untraced again (or with the trace function it had)."""
        was_armed, self._armed = self._armed, False
        self._target = None
        if was_armed and threading.get_ident() == self._thread:
            previous: Any = self._previous
            sys.settrace(previous)
            # The thread's own trace function takes the frames back when it may (breakpoints
            # on 3.10/3.11: a frame of code that holds one keeps pausing at it after Continue).
            retrace = previous if getattr(previous, "retraces_running_frames", False) else None
            frame: FrameType | None = sys._getframe()
            while frame is not None:  # leave no trace function of ours on this stack
                if frame.f_trace == self._on_event:
                    frame.f_trace = retrace(frame, "call", None) if retrace else None
                frame = frame.f_back

    def _arm(self, frame: FrameType, step: Step) -> None:
        if step.action == "continue":
            self.stop()
            return
        self._action = self._taken = step.action
        self._line = step.line
        self._target = None if step.action == "into" else frame
        self._raised = False
        self._armed = True
        current: FrameType | None = frame  # the paused frame and its callers get line events
        while current is not None:
            if current.f_trace is None and not is_own_code(current.f_code):
                current.f_trace = self._on_event
            current = current.f_back

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        """The thread's trace function: a new frame is traced when the step may stop in it."""
        if not self._armed or is_own_code(frame.f_code):
            return None
        if self._action == "into" or frame is self._target:  # into, or a generator resumed
            return self._on_event
        return None

    def _on_event(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        """A traced frame's trace function: stop where the step ends."""
        if not self._armed:
            return None
        try:
            if event == "line":
                if self._stops_at(frame):
                    self._stop_at(frame)
            elif frame is self._target:
                if event == "exception":
                    self._raised = True
                elif event == "return":
                    self._returned(frame)
                else:
                    self._raised = False
        except Exception as error:  # a step must never break the program: run on untraced
            _log(f"stepping stopped: {type(error).__name__}: {error}")
            self.stop()
        return self._on_event if self._armed else None

    def _stops_at(self, frame: FrameType) -> bool:
        if is_own_code(frame.f_code):
            return False
        if frame is self._target:
            self._raised = False
        if self._action == "into":
            return True
        if frame is not self._target or self._action == "out":
            return False
        return self._action != "until" or frame.f_lineno == self._line

    def _returned(self, frame: FrameType) -> None:
        """The target frame returned, or suspended at a ``yield`` or ``await``."""
        if _suspends(frame, self._raised):
            return  # over, out, until: wait for this frame to resume
        caller = frame.f_back
        while caller is not None and is_own_code(caller.f_code):
            caller = caller.f_back
        if caller is None:  # the thread's Python stack ends here: nothing left to stop in
            self.stop()
            return
        # Any step that leaves its frame stops at the caller's next line (pdb's next/until).
        self._action = "over"
        self._target = caller
        self._raised = False
        if caller.f_trace is None:
            caller.f_trace = self._on_event

    def _stop_at(self, frame: FrameType) -> None:
        """Pause here (a new paused report), then take the next step or run on."""
        step = self._on_stop(frame, self._taken)
        if step is None or step.action == "continue":
            _continued.stop = _position(frame)
            self.stop()
        else:
            self._arm(frame, step)


def _position(frame: FrameType) -> tuple[int, CodeType, int, int]:
    return (id(frame), frame.f_code, frame.f_lineno, frame.f_lasti)


def continued_here(frame: FrameType) -> bool:
    """Whether this thread's last step stopped exactly where ``frame`` stands now and was
    then continued: the line event it stopped on, seen again by a later hook (a breakpoint
    on 3.12+). Asked once per event: the answer is forgotten after it is given."""
    stop = getattr(_continued, "stop", None)
    if stop is None:
        return False
    _continued.stop = None
    return bool(stop == _position(frame))
