"""``rq_exception_handler``: failed RQ jobs are reported from the process that ran them.

RQ calls its exception handlers in the work horse (the child forked for one job) or, with
``SimpleWorker``, in the worker itself, while the job's frames are there: that process's
agent holds them, with their locals as at capture, and a Job panel shows the job (function,
id, args, kwargs, queue, retries left; safe reprs, secrets masked). A work horse exits with
``os._exit`` right after the job, which skips ``atexit``, so in a horse the handler waits
(bounded) for the broker and flushes the report before returning: the report arrives, and
its consoles say the process is gone. With ``SimpleWorker`` the frames stay for consoles.

The handler returns None, so RQ goes on to its next handlers. RQ is never imported here.
"""

from __future__ import annotations

import sys
from types import FrameType, TracebackType
from typing import Any

from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.integrations.capture import agent_transport, report_error
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error

__all__ = ["rq_exception_handler"]

_HORSE_FLUSH_SECONDS = 2.0  # a work horse waits this long for the broker before it exits
_CALLERS_SEARCHED = 6


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
        report_error(exc_value, (make_panel("Job", items, transport.options),))
        if _in_work_horse():  # os._exit follows: deliver the report first
            transport.wait_connected(_HORSE_FLUSH_SECONDS)
            transport.say_bye(_HORSE_FLUSH_SECONDS)
    except Exception:  # the worker must go on as without us
        pass
