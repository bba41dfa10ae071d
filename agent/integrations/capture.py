"""``capture_exception``: report an exception from anywhere, with no middleware.

Any thread of any process: the first call starts this process's agent (``get_transport``, the
one the middleware would use; a forked child gets its own), holds the frames, queues the report
and returns its dashboard URL. It never raises into the caller. It waits on the broker only
while a fresh agent connects, and then no longer than one capture may take
(``capture_seconds``): so the first call in a process already returns the URL the broker's
welcome names, or None when no broker answered in that time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import replace

from debugbroker.agent.answers import report_url, submit_error
from debugbroker.agent.capture.exceptions import capture_seconds
from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.reprs.safe_text import type_name_of
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Panel, RequestInfo

__all__ = ["capture_exception", "report_error", "agent_transport"]


def agent_transport(default_app: str = "") -> Transport:
    """The agent this process already runs (the middleware's), else one from the environment,
    named ``default_app`` when ``DEBUGBROKER_APP`` names none (breakpoints are set per app)."""
    current = current_transport()
    if current is not None:
        return current
    options = Options.from_environment()
    if not options.app_name and default_app:
        options = replace(options, app_name=default_app)
    return get_transport(options)


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
    wait_first_welcome: bool = False,
) -> str | None:
    """Report ``error`` with ``panels`` through this process's agent: the report's dashboard
    URL while the agent is connected to a broker, else None (the report is queued and sent
    if the broker turns up); never raises. ``snapshot``: evals see the held frames' locals as
    they are now, even if the frames run on or their host clears them. ``request`` and the
    ``environ`` it was built from fill the Request panel. ``wait_first_welcome``: while this
    process's agent is still making its first connection, wait for it (``_first_welcome``)."""
    try:
        started = time.monotonic()
        transport = agent_transport()
        report, _ = submit_error(
            error,
            transport.options,
            request,
            environ=environ,
            panels=tuple(panels),
            snapshot=snapshot,
        )
        if report is None:
            return None
        if not transport.connected and wait_first_welcome:
            _first_welcome(transport, started)
        if not transport.connected:
            return None
        return report_url(transport, report.id)
    except Exception:  # the agent failing must never reach the caller
        return None


def _first_welcome(transport: Transport, started: float) -> None:
    """Wait for a fresh agent's first welcome: until ``capture_seconds`` after the call started
    (``started``, monotonic) and after the agent started, whichever comes first. An agent
    older than that, or one the broker refused, is not waited for: the broker is away."""
    budget = capture_seconds(transport.options)
    left = min(started + budget - time.monotonic(), transport.started + budget - time.time())
    if left > 0 and transport.refused_reason is None:
        transport.wait_connected(left)


def capture_exception(exc: BaseException | None = None, **context: object) -> str | None:
    """Report ``exc`` (or the exception being handled) and return its dashboard URL, or None.

    The keywords show in the report's Context panel (safe reprs, secret names masked).
    None when no broker is connected (the report is still queued), and when there is nothing
    to report: no exception being handled, or ``exc`` is not an exception (a line on stderr
    says which). Never raises; the first call in a process waits for the new agent's
    connection, no longer than one capture may take (``capture_seconds``).
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
        return report_error(error, panels, wait_first_welcome=True)
    except Exception:
        return None
