"""The read-only page of a shared report: plain HTML, every piece of app data escaped.

A share link is for people without a dashboard login, so the page is rendered on the broker
with no script at all: the exceptions with their frames, source context and locals, the
request, and the plain-text traceback. Nothing on it can run code. Pure functions.
"""

from __future__ import annotations

import html
import time
from typing import Any

from debugbroker.protocol import ProtocolError, ReprNode, format_node, from_wire

__all__ = ["share_page"]

_CHAIN_WORDING = {
    "cause": "The above exception was the direct cause of the following exception:",
    "context": "During handling of the above exception, another exception occurred:",
}
_MAX_DEPTH = 12


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _value(node: object) -> str:
    try:
        return format_node(from_wire(ReprNode, node))
    except (ProtocolError, RecursionError):
        return "?"


def _frame(frame: dict[str, Any]) -> list[str]:
    classes = ["frame"]
    if frame.get("is_library"):
        classes.append("library")
    if frame.get("hidden"):
        classes.append("hidden-frame")
    filename, lineno, function = frame.get("filename"), frame.get("lineno"), frame.get("function")
    where = f'File "{filename}", line {lineno}, in {function}'
    out = [f'<li class="{" ".join(classes)}"><p class="frame-where"><code>{_e(where)}</code></p>']
    context = [str(line) for line in frame.get("context") or ()]
    start = frame.get("context_start")
    if context and isinstance(start, int):
        rows = []
        for offset, line in enumerate(context):
            number = start + offset
            mark = ' class="current"' if number == frame.get("lineno") else ""
            rows.append(f"<span{mark}>{number:>5}  {_e(line)}</span>")
        out.append('<pre class="source">' + "\n".join(rows) + "</pre>")
    variables = [v for v in frame.get("locals") or () if isinstance(v, dict)]
    if variables:
        out.append('<table class="locals"><tbody>')
        for variable in variables:
            name, value = _e(variable.get("name", "?")), _e(_value(variable.get("value")))
            out.append(f"<tr><th scope='row'>{name}</th><td><code>{value}</code></td></tr>")
        out.append("</tbody></table>")
    out.append("</li>")
    return out


def _chain(exceptions: object, depth: int) -> list[str]:
    if not isinstance(exceptions, list) or depth > _MAX_DEPTH:
        return []
    out = ['<div class="chain">']
    for position, info in enumerate(exceptions):
        if not isinstance(info, dict):
            continue
        link = info.get("chain")
        if position and isinstance(link, str) and link in _CHAIN_WORDING:
            out.append(f'<p class="chain-link">{_e(_CHAIN_WORDING[link])}</p>')
        title = f"{info.get('type_name', '')}: {info.get('message', '')}".rstrip(": ")
        out.append(f'<section class="exception"><h2 class="exception-title">{_e(title)}</h2>')
        notes = [str(note) for note in info.get("notes") or ()]
        if notes:
            out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
        frames = [f for f in info.get("frames") or () if isinstance(f, dict)]
        if frames:
            out.append('<p class="traceback-head">Traceback (most recent call last):</p>')
            out.append('<ol class="frames">')
            for frame in frames:
                out += _frame(frame)
            out.append("</ol>")
        members = info.get("exceptions")
        if isinstance(members, list) and members:
            out.append('<div class="group">')
            out += _chain(members, depth + 1)
            out.append("</div>")
        out.append("</section>")
    out.append("</div>")
    return out


def share_page(report: dict[str, Any]) -> str:
    """The whole HTML page of a shared report."""
    title = f"{report.get('type_name', '')}: {report.get('message', '')}".rstrip(": ")
    created = report.get("created")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
        if isinstance(created, (int, float))
        else "?"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        f"<title>{_e(title[:200])} // debugbroker (shared)</title>",
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">',
        '<link rel="stylesheet" href="/static/app.css"></head>',
        '<body><main class="report shared-report" data-testid="shared-report">',
        '<p class="muted">A read-only report shared from debugbroker. Consoles are not '
        "available here.</p>",
        f'<h1 class="report-title">{_e(title)}</h1>',
        '<dl class="facts">',
        f"<div><dt>App</dt><dd>{_e(report.get('app') or '(unnamed)')}</dd></div>",
        f"<div><dt>PID</dt><dd>{_e(report.get('pid'))}</dd></div>",
        f"<div><dt>Host</dt><dd>{_e(report.get('host'))}</dd></div>",
        f"<div><dt>Time</dt><dd>{_e(when)}</dd></div>",
    ]
    request = report.get("request")
    if isinstance(request, dict):
        line = f"{request.get('method', '')} {request.get('url', '')}"
        parts.append(f"<div><dt>Request</dt><dd>{_e(line)}</dd></div>")
    parts.append("</dl>")
    parts += _chain(report.get("exceptions"), 0)
    parts.append("<h2>Plain text</h2>")
    parts.append(f'<pre data-testid="shared-text">{_e(report.get("text", ""))}</pre>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
