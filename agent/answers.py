"""What every middleware does with an error: report it, and answer a 500 that fits the client.

Shared by the WSGI middleware (``middleware.py``) and the ASGI one (``asgi.py``): both hand
over a WSGI-style ``environ`` (the ASGI middleware builds a small one from its scope), so
content negotiation, the report link and the fallback page are written once.

What a 500 answer shows of the error is masked like the report (``secret_values``): with a
report, its masked message and text; without one (the answer goes out before the capture,
or the agent failed), the error's message and the fallback traceback's exception lines are
masked by content here (its source lines are shown as they are, as in a report's text).
"""

from __future__ import annotations

import html
import ipaddress
import json
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport
from debugbroker.agent.reprs.safe_text import describe_error
from debugbroker.agent.reprs.secret_names import SecretNames
from debugbroker.agent.reprs.secret_values import mask_text, mask_traceback
from debugbroker.agent.transport.repeats import RepeatKey
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Panel, Report, RequestInfo

__all__ = [
    "submit_error",
    "Disposition",
    "dispose",
    "traceback_text",
    "preferred_format",
    "error_answer",
    "html_page",
    "report_url",
    "is_local_client",
    "ERROR_STATUS",
    "REPEATED_NOTE",
]

ERROR_STATUS = "500 INTERNAL SERVER ERROR"
REPEATED_NOTE = (
    "This error repeated past its budget: it was counted, not captured (no locals, no "
    "console); the link shows its last full report."
)
_PAGE_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;"
    "color:#222}h1{font-size:1.4em;color:#a40000;word-break:break-word}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:13px}"
    "a{font-size:1.1em}.note{background:#fff4ce;padding:.6em 1em}"
)


_REPORTED = "__debugbroker_report__"  # on a reported exception: (agent id, report id)
_RECENT_REPORTS = 64  # reports remembered for an error that is caught again (logged, then 500)
_recent: OrderedDict[str, Report] = OrderedDict()


def reported_earlier(error: BaseException, transport: Transport) -> Report | None:
    """The report this process already made of ``error`` (a logged error that propagates on
    to the middleware, say), if it is still remembered; never raises."""
    try:
        marker = error.__dict__.get(_REPORTED)
        if isinstance(marker, tuple) and len(marker) == 2 and marker[0] == transport.agent_id:
            return _recent.get(marker[1])
    except Exception:
        pass
    return None


def _remember(error: BaseException, transport: Transport, report: Report) -> None:
    """Mark ``error`` as reported by this agent (the mark is the agent's id, so an error
    unpickled in another process, as Celery's results are, is reported there again)."""
    try:
        error.__dict__[_REPORTED] = (transport.agent_id, report.id)
        _recent[report.id] = report
        while len(_recent) > _RECENT_REPORTS:
            _recent.popitem(last=False)
    except Exception:  # an exception type without a usable __dict__: it may be reported twice
        pass


def submit_error(
    error: BaseException,
    options: Options,
    request: RequestInfo | None,
    report_id: str | None = None,
    environ: object | None = None,
    panels: tuple[Panel, ...] = (),
    snapshot: bool = False,
) -> tuple[Report | None, Transport | None]:
    """Capture ``error`` (holding its frames) and queue it; (None, None) if the agent fails.
    An error this process already reported is not reported again: its report comes back.
    ``environ``: what ``request`` was built from (see ``build_report``); ``panels``: where
    the error came from; ``snapshot``: keep the held frames' locals as they are now."""
    try:
        transport = get_transport(options)
        earlier = reported_earlier(error, transport)
        if earlier is not None:
            return earlier, transport
        report = build_report(
            error,
            report_id=report_id or uuid.uuid4().hex,
            agent_id=transport.agent_id,
            options=options,
            registry=transport.registry,
            request=request,
            environ=environ,
            panels=panels,
            snapshot=snapshot,
        )
        transport.submit_report(report)
        _remember(error, transport, report)
        return report, transport
    except Exception:  # the agent itself failed: the app's error still gets its answer
        return None, None


class Disposition(NamedTuple):
    """What this process does with an error the app raised (``dispose``).

    ``transport``: its agent, None if the agent fails; ``earlier``: the report it already
    made of the error (logged on its way here, say); ``key`` and ``repeat_of``: the storm
    policy's word (``RepeatBudget.take``): ``repeat_of`` is the report id the error was
    counted against, None to capture it (then ``transport.repeats.represent(key, id)``).
    """

    transport: Transport | None
    earlier: Report | None
    key: RepeatKey | None
    repeat_of: str | None


def dispose(error: BaseException, options: Options) -> Disposition:
    """Whether ``error`` is reported already, captured, or counted as a repeat; never raises."""
    try:
        transport = get_transport(options)
    except Exception:
        return Disposition(None, None, None, None)
    earlier = reported_earlier(error, transport)
    if earlier is not None:
        return Disposition(transport, earlier, None, None)
    try:
        key, repeat_of = transport.repeats.take(error)
    except Exception:  # the budget failed: capture as ever
        key, repeat_of = None, None
    return Disposition(transport, None, key, repeat_of)


def traceback_text(error: BaseException, report: Report | None, secret: SecretNames) -> str:
    """The plain traceback, as the app's Python prints it, masked; never raises."""
    try:
        if report:
            return report.text
        return mask_traceback(traceback.format_exception(error), secret)
    except Exception:
        return mask_text(describe_error(error), secret)


def is_local_client(environ: Mapping[str, Any]) -> bool:
    """Whether the request came from this machine (``REMOTE_ADDR`` is loopback)."""
    try:
        address = ipaddress.ip_address(str(environ.get("REMOTE_ADDR", "")).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def preferred_format(environ: Mapping[str, Any]) -> str:
    """``html``, ``json`` or ``text``: what the client asked for, by its Accept header."""
    if environ.get("HTTP_X_REQUESTED_WITH"):
        return "json"
    best, best_quality = "text", 0.0
    offered = {"text/html": "html", "application/xhtml+xml": "html", "application/json": "json"}
    for media_range in str(environ.get("HTTP_ACCEPT", "")).split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        found = offered.get(media_type.lower())
        if found and quality > best_quality:  # ties: the client's first choice wins
            best, best_quality = found, quality
    return best


def error_answer(
    error: BaseException,
    environ: Mapping[str, Any],
    report: Report | None,
    transport: Transport | None,
    text: str,
    broker_url: str,
    secret: SecretNames,
    report_id: str | None = None,
    repeated: bool = False,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """The 500 answer for this client: status, headers and body.

    ``report_id`` links a report that is captured after this answer went out, or, when
    ``repeated``, the last full report of an error counted, not captured (the storm policy).
    """
    if report is not None:
        title = f"{report.type_name}: {report.message}" if report.message else report.type_name
    else:
        title = mask_text(describe_error(error, 8_192), secret)
    linked = report.id if report is not None else report_id
    url = report_url(transport, linked) if linked and transport else None
    connected = transport is not None and transport.connected
    down = (
        f"the debugbroker broker is not reachable at {broker_url}; "
        "the traceback was printed to the server log"
    )
    if not is_local_client(environ):  # a traceback is for the developer at this machine
        down += " and is shown here only to clients on the app's own machine"
        text = ""
    headers = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
    if url:
        headers.append(("X-Debugbroker-Report", url))
    if repeated:
        headers.append(("X-Debugbroker-Repeated", "1"))
    kind = preferred_format(environ)
    if kind == "json":
        content_type = "application/json"
        answer: dict[str, Any] = {"error": title, "report": url}
        if repeated:
            answer["repeated"] = True
        body = json.dumps(answer).encode()
    elif kind == "html":
        content_type = "text/html; charset=utf-8"
        headers.append(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"))
        fallback = None if connected else (down, text)
        body = html_page(title, url, fallback, REPEATED_NOTE if repeated else "").encode()
    else:
        content_type = "text/plain; charset=utf-8"
        lines = [title, ""]
        if repeated:
            lines.append(REPEATED_NOTE)
        if url:
            lines.append(f"Open this error in the debugbroker dashboard: {url}")
        if not connected:
            lines += [f"Note: {down}.", "", text] if text else [f"Note: {down}."]
        body = "\n".join(lines).encode("utf-8", "replace") + b"\n"
    headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    return ERROR_STATUS, headers, body


def html_page(title: str, url: str | None, fallback: tuple[str, str] | None, note: str = "") -> str:
    """A small self-contained page; every piece of app data is escaped."""
    escape = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title[:200])} // debugbroker</title>",
        f"<style>{_PAGE_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    if url:
        parts.append(
            f'<p><a href="{escape(url)}">Open this error in the debugbroker dashboard</a></p>'
        )
    if fallback is not None:
        note, text = fallback
        parts.append(f'<p class="note">Note: {escape(note)}.</p>')
        if text:
            parts.append(f"<pre>{escape(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def report_url(transport: Transport | None, report_id: str) -> str:
    """The report's page in the dashboard."""
    base = transport.dashboard_url if transport else Options().dashboard_url
    return f"{base}/#/reports/{report_id}"
