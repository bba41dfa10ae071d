"""Opt-in reports for errors outside requests: the main program's and background threads'.

``install_excepthook()`` chains ``sys.excepthook`` and ``threading.excepthook``: an uncaught
error is captured (frames held, so evals work on a dead thread's last state) and sent to the
broker, then the previous hook prints it as usual. The agent starts at once, so it is
connected by the time something fails; a dying main program waits briefly for the broker
and flushes the report at exit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from debugbroker.agent.answers import report_url, submit_error
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.transport.transport import Transport

__all__ = ["install_excepthook", "uninstall_excepthook"]

_EXIT_CONNECT_SECONDS = 2.0  # a dying main program waits this long for a first connection
SysHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]
ThreadHook = Callable[[threading.ExceptHookArgs], Any]
_previous: tuple[SysHook, ThreadHook] | None = None


def _report(error: BaseException, transport: Transport, wait: bool) -> None:
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return  # the user stopped it: not a bug to debug
    if wait:
        transport.wait_connected(_EXIT_CONNECT_SECONDS)
    report, _ = submit_error(error, transport.options, None)
    if report is not None:
        try:
            print(
                f"debugbroker: report {report_url(transport, report.id)}",
                file=sys.stderr,
                flush=True,
            )
        except Exception:  # stderr closed: the dashboard has it
            pass


def install_excepthook(*, options: Options | None = None) -> None:
    """Report uncaught errors of the main program and of threads; idempotent."""
    global _previous
    if _previous is not None:
        return
    if options is not None:  # explicit options win over an agent the process already has
        transport = get_transport(options)
    else:
        transport = current_transport() or get_transport(Options.from_environment())
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def sys_hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> Any:
        try:
            _report(error, transport, wait=True)
        except Exception:  # the agent failing must not hide the error
            pass
        return previous_sys(kind, error, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> Any:
        try:
            if args.exc_value is not None:
                _report(args.exc_value, transport, wait=False)
        except Exception:
            pass
        return previous_thread(args)

    _previous = (previous_sys, previous_thread)
    sys.excepthook = sys_hook
    threading.excepthook = thread_hook


def uninstall_excepthook() -> None:
    """Put back the hooks that were there before ``install_excepthook``."""
    global _previous
    if _previous is None:
        return
    sys.excepthook, threading.excepthook = _previous
    _previous = None
