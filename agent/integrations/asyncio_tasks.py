"""``install_asyncio``: errors no one retrieved from asyncio tasks become reports.

An exception in a task nobody awaited reaches only the event loop's exception handler
("Task exception was never retrieved", when the task is collected). This chains that
handler: the exception is reported with the task's frames held (locals as they ended),
with an asyncio panel (the loop's message and the task), then the previous handler runs
as before (the default one logs it). Opt-in for plain programs; ``DebuggedASGIApplication``
installs it on the server's loop with its first request.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any

from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.integrations.capture import agent_transport, report_error

__all__ = ["install_asyncio"]

_Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_MARK = "__debugbroker_handler__"
_lock = threading.Lock()


def install_asyncio(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Report unretrieved task errors of ``loop`` (default: the running loop); idempotent.

    Called outside a running loop with no ``loop`` given, it does nothing but say so on
    stderr: call it from a coroutine (``asyncio.run(main())``'s ``main``), or pass the loop.
    """
    try:
        target = loop if loop is not None else asyncio.get_running_loop()
    except RuntimeError:
        _say("install_asyncio() needs a running loop or a loop argument; nothing installed")
        return
    with _lock:
        previous = target.get_exception_handler()
        if getattr(previous, _MARK, False):
            return
        target.set_exception_handler(_chained(previous))


def _say(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:
        pass


def _chained(previous: _Handler | None) -> _Handler:
    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            _report(context)
        except Exception:  # the loop's own handling must still run
            pass
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    setattr(handler, _MARK, True)
    return handler


def _report(context: dict[str, Any]) -> None:
    error = context.get("exception")
    if not isinstance(error, Exception):  # no exception (a message only), or Ctrl+C & co
        return
    items: list[tuple[str, object]] = [("message", str(context.get("message", "")))]
    for key in ("task", "future", "handle"):
        if key in context:
            items.append((key, context[key]))
    report_error(error, (make_panel("asyncio", items, agent_transport().options),))
