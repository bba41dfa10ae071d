"""``rq_exception_handler``: failed RQ jobs are reported from the process that ran them.

RQ calls its exception handlers in the work horse (the child forked for one job) or, with
``SimpleWorker``, in the worker itself, while the job's frames are there: that process's
agent holds them, with their locals as at capture, and a Job panel shows the job (function,
id, args, kwargs, queue, retries left; safe reprs, secrets masked). With ``SimpleWorker`` the
frames stay for consoles as long as the worker runs.

A work horse exits with ``os._exit`` right after the job. So, once the broker has the report,
the horse stays in the handler holding the frames (``_hold_horse``): until nobody has used a
console on them for ``DEBUGBROKER_RQ_HOLD`` seconds (default 60; 0: exit at once), until
"Release frames" in the dashboard, until its worker is gone, and never past the point where
the worker would kill it (the job's timeout + 60 s of working time). Meanwhile the worker
starts no other job, as for a job that runs long. Then it says bye, so its consoles say the
process is gone.

The handler returns None, so RQ goes on to its next handlers. RQ is never imported here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timezone
from types import FrameType, TracebackType
from typing import Any

from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.evals.interrupts import all_running_evals
from debugbroker.agent.integrations.capture import agent_transport, report_error
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error
from debugbroker.agent.transport.transport import Transport

__all__ = ["rq_exception_handler", "hold_seconds", "DEFAULT_HOLD_SECONDS"]

_HORSE_FLUSH_SECONDS = 2.0  # a work horse waits this long for the broker before it exits
_CALLERS_SEARCHED = 6
DEFAULT_HOLD_SECONDS = 60.0  # DEBUGBROKER_RQ_HOLD: a horse's frames held after the last use
_RQ_DEFAULT_TIMEOUT = 180  # rq's Queue.DEFAULT_TIMEOUT, for a job without its own
_RQ_KILL_GRACE = 60  # rq's worker kills a horse working past the job's timeout + this
_CHECK_SECONDS = 0.2  # how often a holding horse looks at its frames and its worker


def hold_seconds() -> float:
    """``DEBUGBROKER_RQ_HOLD``: seconds a work horse keeps a failed job's frames after their
    last console use; bad text is said on stderr and the default used."""
    text = os.environ.get("DEBUGBROKER_RQ_HOLD", "").strip()
    if not text:
        return DEFAULT_HOLD_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        try:
            print(
                f"debugbroker: ignoring DEBUGBROKER_RQ_HOLD={text[:40]!r}: expected seconds "
                f"(0 or more); using {DEFAULT_HOLD_SECONDS:g}",
                file=sys.stderr,
                flush=True,
            )
        except Exception:  # stderr closed: the default still applies
            pass
        return DEFAULT_HOLD_SECONDS
    return value


def _seconds_left_before_kill(job: Any) -> float | None:
    """How long the worker lets its horse run on (None: no limit, a timeout of -1)."""
    timeout = _attribute(job, "timeout")
    if timeout == -1:
        return None
    limit = float(timeout) if isinstance(timeout, (int, float)) else float(_RQ_DEFAULT_TIMEOUT)
    started = _attribute(job, "started_at")
    elapsed = 0.0
    if isinstance(started, datetime):
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        elapsed = max(0.0, (datetime.now(timezone.utc) - started).total_seconds())
    return limit + _RQ_KILL_GRACE - elapsed - 2 * _CHECK_SECONDS - 1.0


def _hold_horse(transport: Transport, seconds: float, kill_in: float | None) -> None:
    """Keep this horse (and its held frames) alive while they may be used: see the module."""
    worker = os.getppid()
    started = time.monotonic()
    end = None if kill_in is None else started + kill_in
    waiter = threading.Event()
    while True:
        now = time.monotonic()
        idle_since = max(started, transport.registry.last_used)
        if end is not None and now >= end:
            return
        if now - idle_since >= seconds and not all_running_evals():
            return
        if not transport.registry.report_count or os.getppid() != worker:
            return  # released from the dashboard, or the worker is gone
        waiter.wait(_CHECK_SECONDS)


def _attribute(job: Any, name: str) -> object:
    try:
        return getattr(job, name)
    except USER_CODE_ERRORS as error:  # a job that cannot be deserialized raises here
        return f"<could not read {name}: {describe_error(error, 200)}>"


def _in_work_horse() -> bool:
    """Whether the worker calling us is a forked work horse (``BaseWorker.is_horse``)."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_CALLERS_SEARCHED):
        if frame is None:
            return False
        worker: Any = frame.f_locals.get("self")
        if type(worker).__module__.startswith("rq.") and hasattr(worker, "is_horse"):
            return bool(worker.is_horse)
        frame = frame.f_back
    return False


def rq_exception_handler(
    job: Any, exc_type: type[BaseException], exc_value: BaseException, tb: TracebackType | None
) -> None:
    """Report a failed job (for ``Worker(exception_handlers=[...])`` and ``rq worker
    --exception-handler debugbroker.rq_exception_handler``); never raises."""
    try:
        if not isinstance(exc_value, BaseException):
            return
        transport = agent_transport()
        items = [
            ("function", _attribute(job, "func_name")),
            ("id", _attribute(job, "id")),
            ("args", _attribute(job, "args")),
            ("kwargs", _attribute(job, "kwargs")),
            ("queue", _attribute(job, "origin")),
            ("retries left", _attribute(job, "retries_left")),
        ]
        horse = _in_work_horse()
        seconds = hold_seconds() if horse else 0.0
        if seconds:
            items.append(
                (
                    "console",
                    f"held by the work horse until {seconds:g} s after its last use "
                    "(DEBUGBROKER_RQ_HOLD) or Release frames; the worker starts its next "
                    "job after that",
                )
            )
        report_error(exc_value, (make_panel("Job", items, transport.options),))
        if horse:  # os._exit follows: deliver the report first
            if transport.wait_connected(_HORSE_FLUSH_SECONDS) and seconds:
                _hold_horse(transport, seconds, _seconds_left_before_kill(job))
            transport.say_bye(_HORSE_FLUSH_SECONDS)
    except Exception:  # the worker must go on as without us
        pass
