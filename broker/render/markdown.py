"""A report as Markdown for an issue tracker: summary, the text traceback, app frames' locals.

Everything from the app is treated as untrusted text: the traceback goes into a code fence
longer than any backtick run inside it, table cells escape ``|``, backslashes, backticks and
angle brackets and fold newlines, so a hostile message cannot break out of its place or
inject markup into the tracker. Pure functions over the report's wire dict.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from debugbroker.broker.store.frame_targets import report_frames
from debugbroker.protocol import ProtocolError, ReprNode, format_node, from_wire

__all__ = ["report_markdown"]

_MAX_FRAMES = 20  # app frames with locals in the export (innermost first)
_MAX_CELL = 300
_MAX_TITLE = 300


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip(chr(10))}\n{fence}"


def _cell(text: str) -> str:
    text = text if len(text) <= _MAX_CELL else text[:_MAX_CELL] + "…"
    text = re.sub(r"[\\`|<>*_\[\]]", lambda match: "\\" + match.group(0), text)
    return " ".join(text.split("\n")).replace("\r", " ")


def _inline(text: str) -> str:
    return _cell(text[:_MAX_TITLE])


def _value_text(node: object) -> str:
    try:
        return format_node(from_wire(ReprNode, node))
    except (ProtocolError, RecursionError):
        return "?"


def _app_frames(exceptions: object) -> Iterator[dict[str, Any]]:
    for frame in report_frames(exceptions):
        if not frame.get("is_library") and not frame.get("hidden"):
            yield frame


def report_markdown(report: dict[str, Any], url: str = "") -> str:
    """The Markdown export of a report (its wire dict); ``url`` links back to the dashboard."""
    title = f"{report.get('type_name', '')}: {report.get('message', '')}".rstrip(": ")
    lines = [f"## {_inline(title)}", ""]
    created = report.get("created")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
        if isinstance(created, (int, float))
        else "?"
    )
    facts = [
        ("App", str(report.get("app") or "(unnamed)")),
        ("Process", f"pid {report.get('pid')} on {report.get('host')}"),
        ("Time", when),
    ]
    request = report.get("request")
    if isinstance(request, dict):
        facts.append(("Request", f"{request.get('method', '')} {request.get('url', '')}"))
    if url:
        facts.append(("Report", url))
    lines += ["| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in facts]
    lines += ["", "### Traceback", "", _fence(str(report.get("text", ""))), ""]
    frames = list(_app_frames(report.get("exceptions")))[-_MAX_FRAMES:]
    shown = [frame for frame in reversed(frames) if frame.get("locals")]
    if shown:
        lines += ["### Locals of the app's frames (innermost first)", ""]
    for frame in shown:
        where = f"{frame.get('filename')}, line {frame.get('lineno')}, in {frame.get('function')}"
        lines += [f"**{_inline(where)}**", "", "| name | value |", "|---|---|"]
        for variable in frame.get("locals") or ():
            if isinstance(variable, dict):
                name, value = str(variable.get("name", "?")), _value_text(variable.get("value"))
                lines.append(f"| {_cell(name)} | {_cell(value)} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
