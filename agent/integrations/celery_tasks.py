"""``install_celery``: failed Celery tasks are reported from the worker process that ran them.

Celery sends ``task_failure`` in the process that ran the task (a prefork pool's child, the
worker itself for the ``solo`` pool, one of its threads for ``threads``), while the task's
frames are still there, so that process's agent holds them and its consoles run there. Celery
then clears those frames (``traceback_clear``): the agent keeps each frame's locals as they were
at the capture, so consoles still see them. A Task panel shows the task's name, id, args,
kwargs, retries, queue and worker, through the safe-repr path with secrets masked.

Breakpoints set from the dashboard reach the worker's processes too: each pool child starts
its agent when it starts (``worker_process_init``), so it has the broker's list before its
first task, and every task start (``task_prerun``) makes sure the agent runs (the ``solo`` and
``threads`` pools) and, on Python 3.10/3.11 with breakpoints armed, hooks the task's thread
as the middlewares hook a request's.

Celery is imported only when ``install_celery`` is called: the agent does not depend on it.
"""

from __future__ import annotations

import threading
from typing import Any

from debugbroker.agent.breakpoints import THREAD_TRACE, trace_this_thread
from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.integrations.capture import agent_transport, report_error

__all__ = ["install_celery"]

_lock = threading.Lock()
_apps: list[Any] = []  # the apps whose tasks are reported; empty and _every: all of them
_every = False
_connected = False


def install_celery(app: Any = None) -> None:
    """Report the failed tasks of ``app`` (a ``celery.Celery``), or of every app when None.

    Call it in the module that creates the app, so that worker processes run it; idempotent.
    """
    global _every, _connected
    from celery import signals  # noqa: PLC0415 - the agent does not depend on Celery

    with _lock:
        if app is None:
            _every = True
        elif all(known is not app for known in _apps):
            _apps.append(app)
        if not _connected:
            signals.task_failure.connect(_on_task_failure, weak=False, dispatch_uid=__name__)
            signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid=__name__)
            signals.worker_process_init.connect(_on_process_init, weak=False, dispatch_uid=__name__)
            _connected = True


def _app_name(task: Any = None) -> str:
    """The agent's app name when ``DEBUGBROKER_APP`` gives none: the Celery app's (its main
    module's name), so that breakpoints can be set for the worker's processes."""
    app = getattr(task, "app", None) or (_apps[0] if _apps else None)
    return str(getattr(app, "main", None) or "celery")


def _on_process_init(**_: object) -> None:
    """``worker_process_init`` (a pool child starts): start its agent now, so breakpoints
    reach it before its first task; never raises."""
    try:
        agent_transport(_app_name())
    except Exception:
        pass


def _on_task_prerun(sender: Any = None, **_: object) -> None:
    """``task_prerun``: this process's agent runs, and on 3.10/3.11 with breakpoints armed
    this thread is hooked for them; never raises."""
    try:
        if sender is not None and not _wanted(sender):
            return
        agent_transport(_app_name(sender))
        if THREAD_TRACE.needed:
            trace_this_thread()
    except Exception:
        pass


def _wanted(task: Any) -> bool:
    if _every:
        return True
    app = getattr(task, "app", None)
    return any(known is app for known in _apps)


def _task_panel(task: Any, task_id: object, args: object, kwargs: object) -> Any:
    request = getattr(task, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    queue = (
        delivery.get("routing_key") or delivery.get("queue") if isinstance(delivery, dict) else None
    )
    items: list[tuple[str, object]] = [
        ("name", str(getattr(task, "name", "?"))),
        ("id", str(task_id)),
        ("args", args),
        ("kwargs", kwargs),
        ("retries", getattr(request, "retries", 0)),
        ("queue", str(queue) if queue else "?"),
        ("worker", str(getattr(request, "hostname", None) or "?")),
    ]
    return make_panel("Task", items, agent_transport(_app_name(task)).options)


def _on_task_failure(
    sender: Any = None,
    task_id: object = None,
    exception: object = None,
    args: object = None,
    kwargs: object = None,
    **_: object,
) -> None:
    """``task_failure``: report the task's exception with its Task panel; never raises."""
    try:
        if not isinstance(exception, BaseException) or not _wanted(sender):
            return
        report_error(exception, (_task_panel(sender, task_id, args, kwargs),))
    except Exception:  # the worker must go on as without us
        pass
