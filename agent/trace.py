"""``breakpoint()`` for servers: pause the calling thread and debug it from the dashboard.

With ``PYTHONBREAKPOINT=debugbroker.set_trace``, ``breakpoint()`` captures the calling
thread's stack as a "paused" report whose frames are live and held, sends it to the broker,
and blocks that thread (only that one: the server's other threads and workers go on) until
someone presses Continue in the dashboard, or ``DEBUGBROKER_PAUSE_TIMEOUT`` seconds pass
(default 300), or no broker was connected for ``DEBUGBROKER_PAUSE_NO_BROKER`` seconds in a row
(default 30). Without a reachable broker it returns at once: nobody could resume it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from dataclasses import replace
from types import FrameType, TracebackType

from debugbroker.agent.answers import report_url
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.evals.loops import paused_thread
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.stepping import Stepper
from debugbroker.agent.transport.mailbox import Pause
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report, Step, StepAction

__all__ = [
    "set_trace",
    "Paused",
    "capture_pause",
    "pause_here",
    "DEFAULT_PAUSE_SECONDS",
    "DEFAULT_NO_BROKER_SECONDS",
]

DEFAULT_PAUSE_SECONDS = 300.0
DEFAULT_NO_BROKER_SECONDS = 30.0
_CHECK_BROKER_SECONDS = 0.5  # how often a paused thread looks whether its broker is there
_CONNECT_SECONDS = 3.0  # a fresh agent's first connection, before giving up on pausing


class Paused(Exception):  # noqa: N818 - named for what the dashboard shows, not an error
    """Stands for a ``breakpoint()`` in a paused report: its traceback is the live stack."""


def _stack_traceback(frame: FrameType) -> TracebackType:
    """A traceback over the live stack, outermost frame first, ending at ``frame``."""
    tb: TracebackType | None = None
    current: FrameType | None = frame
    while current is not None:
        tb = TracebackType(tb, current, current.f_lasti, current.f_lineno)
        current = current.f_back
    assert tb is not None
    return tb


def capture_pause(
    frame: FrameType,
    transport: Transport,
    options: Options,
    *,
    step_of: str = "",
    step: StepAction | None = None,
    origin: str = "breakpoint()",
) -> Report:
    """A "paused" report of the stack ending at ``frame``, its frames held for evals; after
    a step, ``step_of`` names the report the step was taken from; ``origin`` says what
    paused it first (``breakpoint()``, or a breakpoint set from the dashboard)."""
    where = f"{frame.f_code.co_name}() at {frame.f_code.co_filename}:{frame.f_lineno}"
    how = f"step {step}" if step is not None and step_of else origin
    pause = Paused(f"{how} in {where}")
    pause.__traceback__ = _stack_traceback(frame)
    try:
        report = build_report(
            pause,
            report_id=uuid.uuid4().hex,
            agent_id=transport.agent_id,
            options=options,
            registry=transport.registry,
        )
    finally:
        pause.__traceback__ = None  # the registry holds the frames it needs
    return replace(report, paused=True, step_of=step_of, step=step or "")


def _pause_seconds() -> float:
    try:
        return max(float(os.environ.get("DEBUGBROKER_PAUSE_TIMEOUT", DEFAULT_PAUSE_SECONDS)), 0.0)
    except ValueError:
        return DEFAULT_PAUSE_SECONDS


def _no_broker_seconds() -> float:
    try:
        seconds = float(os.environ.get("DEBUGBROKER_PAUSE_NO_BROKER", DEFAULT_NO_BROKER_SECONDS))
    except ValueError:
        return DEFAULT_NO_BROKER_SECONDS
    return max(seconds, 0.0)


def _wait(pause: Pause, transport: Transport, timeout: float) -> str:
    """Wait for someone to say how the pause ends: ``resumed``; ``timeout`` after
    ``timeout`` seconds; ``broker_gone`` when no broker was connected for
    ``DEBUGBROKER_PAUSE_NO_BROKER`` seconds in a row (a restarted one names the pause again
    in its hello, so a quick restart keeps it)."""
    deadline = time.monotonic() + timeout
    grace = _no_broker_seconds()
    gone_since: float | None = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        if pause.wait(min(deadline - now, _CHECK_BROKER_SECONDS)):
            return "resumed"
        if transport.connected:
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= grace:
            return "broker_gone"


def _log(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed: the dashboard still shows the pause
        pass


class _Session:
    """One thread's pauses, from ``breakpoint()`` through its steps to Continue."""

    def __init__(self, transport: Transport, origin: str = "breakpoint()") -> None:
        self.transport = transport
        self.origin = origin
        self.last_report = ""  # the report of the latest pause, which the next step follows
        self.stepper = Stepper(self.pause_after_step)

    def pause(self, frame: FrameType, step: StepAction | None) -> Step | None:
        """Send a paused report of ``frame`` and wait: the step to take, or None to go on."""
        transport = self.transport
        report = capture_pause(
            frame,
            transport,
            transport.options,
            step_of=self.last_report,
            step=step,
            origin=self.origin,
        )
        self.last_report = report.id
        pause = transport.start_pause(report.id)
        transport.submit_report(report)
        timeout = _pause_seconds()
        if step is None:
            _log(
                f"paused: {report.message}; continue in the dashboard, "
                f"{report_url(transport, report.id)} (resumes by itself after {timeout:g}s)"
            )
        with paused_thread():  # a console line for this thread's loop runs off it meanwhile
            ended = _wait(pause, transport, timeout)
        next_step = pause.step if ended == "resumed" else None
        if next_step is not None and not transport.options.evalex:
            _log("a step was refused (evalex=False): continuing")
            next_step = None
        reason = ended if ended != "resumed" else "continue" if next_step is None else "step"
        transport.end_pause(report.id, reason)
        if ended == "timeout":
            _log(f"timed out, continuing: {report.message}")
        elif ended == "broker_gone":
            _log(f"no broker for {_no_broker_seconds():g}s, continuing: {report.message}")
        elif next_step is None:
            _log(f"continued: {report.message}")
        return next_step

    def pause_after_step(self, frame: FrameType, step: StepAction) -> Step | None:
        """The stepper's stop: pause again, unless no broker can say how to go on."""
        if not self.transport.connected:
            _log(f"stepping ended at {frame.f_code.co_filename}:{frame.f_lineno}: no broker")
            return None
        try:
            return self.pause(frame, step)
        except Exception as error:  # a step must not break the program
            _log(f"could not pause after a step: {type(error).__name__}: {error}")
            return None


def set_trace(*args: object, **kwargs: object) -> None:
    """Pause this thread at a breakpoint until Continue in the dashboard (or the timeout);
    a step from the dashboard pauses it again at the step's next stop (agent/stepping.py).

    The target of ``PYTHONBREAKPOINT=debugbroker.set_trace``; arguments are accepted and
    ignored, as ``breakpoint()`` passes its own through. Never raises into the caller.
    """
    try:
        frame = sys._getframe(1)
        transport = current_transport() or get_transport(Options.from_environment())
        if threading.current_thread().name.startswith("debugbroker-"):
            return  # the agent's own threads must never stop
        if isinstance(getattr(sys.gettrace(), "__self__", None), Stepper):
            return  # this thread is being stepped: the step stops here anyway
        if not transport.wait_connected(_CONNECT_SECONDS):
            _log(
                f"breakpoint() at {frame.f_code.co_filename}:{frame.f_lineno} ignored: "
                f"no broker is reachable at {transport.options.broker_url}"
            )
            return
    except Exception as error:  # a breakpoint must not break the program
        _log(f"breakpoint() could not pause: {type(error).__name__}: {error}")
        return
    pause_here(frame, transport, "breakpoint()")


def pause_here(frame: FrameType, transport: Transport, origin: str) -> None:
    """Pause ``frame``'s thread (the caller's) as ``breakpoint()`` does: a paused report,
    then Continue, a step (this thread runs on traced until its next stop) or the timeout.
    ``origin`` names what paused it in the report's message. Never raises."""
    try:
        session = _Session(transport, origin)
        step = session.pause(frame, None)
    except Exception as error:
        _log(f"{origin} could not pause: {type(error).__name__}: {error}")
        return
    if step is not None:
        try:
            session.stepper.start(frame, step)  # the last thing: the caller runs on traced
        except Exception as error:
            session.stepper.stop()
            _log(f"could not step: {type(error).__name__}: {error}")
