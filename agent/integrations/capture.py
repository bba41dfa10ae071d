"""``capture_exception``: report an exception from anywhere, with no middleware.

Any thread of any process: the first call starts this process's agent (``get_transport``, the
one the middleware would use; a forked child gets its own), holds the frames, queues the report
and returns its dashboard URL. It does what the middleware does for an error, no more: it never
waits on the broker and never raises into the caller.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from debugbroker.agent.answers import report_url, submit_error
from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.reprs.safe_text import type_name_of
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Panel, RequestInfo

__all__ = ["capture_exception", "report_error", "agent_transport"]


def agent_transport() -> Transport:
    """The agent this process already runs (the middleware's), else one from the environment."""
    return current_transport() or get_transport(Options.from_environment())


def _say(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed: nothing else to tell
        pass


def report_error(
    error: BaseException,
    panels: Iterable[Panel] = (),
    *,
    snapshot: bool = True,
    request: RequestInfo | None = None,
    environ: object | None = None,
) -> str | None:
    """Report ``error`` with ``panels`` through this process's agent: the report's dashboard
    URL while the agent is connected to a broker, else None (the report is queued and sent
    if the broker turns up); never raises. ``snapshot``: evals see the held frames' locals as
    they are now, even if the frames run on or their host clears them. ``request`` and the
    ``environ`` it was built from fill the Request panel."""
    try:
        transport = agent_transport()
        report, _ = submit_error(
            error,
            transport.options,
            request,
            environ=environ,
            panels=tuple(panels),
            snapshot=snapshot,
        )
        if report is None or not transport.connected:
            return None
        return report_url(transport, report.id)
    except Exception:  # the agent failing must never reach the caller
        return None


def capture_exception(exc: BaseException | None = None, **context: object) -> str | None:
    """Report ``exc`` (or the exception being handled) and return its dashboard URL, or None.

    The keywords show in the report's Context panel (safe reprs, secret names masked).
    None when no broker is connected (the report is still queued), and when there is nothing
    to report: no exception being handled, or ``exc`` is not an exception (a line on stderr
    says which). Never raises, never waits on the broker.
    """
    try:
        error = sys.exc_info()[1] if exc is None else exc
        if error is None:
            _say("capture_exception() called with no exception being handled; nothing reported")
            return None
        if not isinstance(error, BaseException):
            _say(
                f"capture_exception() expects an exception, got {type_name_of(error)}; "
                "nothing reported"
            )
            return None
        panels: tuple[Panel, ...] = ()
        if context:
            panels = (make_panel("Context", context.items(), agent_transport().options),)
        return report_error(error, panels)
    except Exception:
        return None
