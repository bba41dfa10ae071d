"""Report handlers beyond the basics: groups, search filters, Markdown, share links, source, "+".

- ``GET /api/groups``: repeated errors grouped by fingerprint (``grouping``).
- ``GET /api/reports?q=&type=&path=&agent=&fingerprint=`` (``store.ReportFilter``).
- ``GET /api/reports/{id}/markdown``: the report for an issue tracker.
- ``POST /api/reports/{id}/share`` makes a read-only link; ``GET /share/{share_id}`` shows the
  report without login (no script, no consoles); ``DELETE /api/shares/{share_id}`` revokes it.
- ``GET /api/reports/{id}/frames/{index}/source``: the frame's whole file, highlighted. The
  agent holding the frame reads it (by frame id, never by a path from outside); when the
  process is gone or the frame released, the lines the report captured are served instead.
  The broker never reads app files from its own disk: a report names any path it likes.
- ``POST /api/reports/{id}/frames/{index}/expand`` ``{"handle", "offset"}``: the "+".
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from typing import Any

from aiohttp import web

from debugbroker.broker.http.api import RELAY, STORE, failure_error
from debugbroker.broker.http.audit import display_name
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.render.highlight import highlight_lines
from debugbroker.broker.render.markdown import report_markdown
from debugbroker.broker.render.share_page import share_page
from debugbroker.broker.store.frame_targets import report_frames
from debugbroker.broker.store.groups import GROUP_STATES, GroupPage
from debugbroker.protocol import (
    RELEASED,
    ExpandRequest,
    ExpandResult,
    SourceRequest,
    SourceResult,
    to_wire,
)

__all__ = ["report_routes"]

_MAX_GROUPS = 1_000
_MAX_FINGERPRINT = 128
# ``GET /api/groups?state=``: the states each filter lists ("": all; "attention": what needs it).
_GROUP_FILTERS: dict[str, tuple[str, ...]] = {
    "": (),
    "attention": ("open", "regressed"),
    **{state: (state,) for state in GROUP_STATES},
}
_MAX_HANDLE = 4_096


async def _report(request: web.Request) -> dict[str, Any] | web.Response:
    report_id = request.match_info["report_id"]
    report = await request.app[STORE].get_report(report_id)
    if report is None:
        return json_error(404, f"no report with id {report_id!r}")
    return report


async def _frame(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]] | web.Response:
    try:
        index = int(request.match_info["index"])
    except ValueError:
        return json_error(400, "the frame index must be an integer")
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    frame = next(
        (f for f in report_frames(report.get("exceptions")) if f.get("index") == index), None
    )
    if frame is None:
        return json_error(404, f"report {report['id']} has no frame {index}")
    return report, frame


async def list_groups(request: web.Request) -> web.Response:
    """``GET /api/groups?limit=N&state=S&before=T&before_key=K``: fingerprints with count,
    first/last seen and workers, most recently seen first; ``total``: how many in all are
    in that state."""
    query = request.query
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        return json_error(400, "limit must be an integer")
    if not 1 <= limit <= _MAX_GROUPS:
        return json_error(400, f"limit must be between 1 and {_MAX_GROUPS}")
    state = query.get("state", "")
    states = _GROUP_FILTERS.get(state)
    if states is None:
        return json_error(400, f"state must be one of {', '.join(filter(None, _GROUP_FILTERS))}")
    before: float | None = None
    if query.get("before"):
        try:
            before = float(query["before"])
        except ValueError:
            return json_error(400, "before must be a time in seconds (a number)")
        if not math.isfinite(before):
            return json_error(400, "before must be a finite number")
    before_key = query.get("before_key", "")
    if len(before_key) > _MAX_FINGERPRINT:
        return json_error(400, f"before_key is limited to {_MAX_FINGERPRINT} characters")
    store = request.app[STORE]
    groups = await store.list_groups(limit, GroupPage(states, before, before_key))
    return web.json_response({"groups": groups, "total": await store.count_groups(states)})


async def get_markdown(request: web.Request) -> web.Response:
    """``GET /api/reports/{id}/markdown``."""
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    url = f"{request.scheme}://{request.host}/#/reports/{report['id']}"
    text = await asyncio.get_running_loop().run_in_executor(None, report_markdown, report, url)
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def create_share(request: web.Request) -> web.Response:
    """``POST /api/reports/{id}/share``: a new unguessable read-only link."""
    if request[ROLE_KEY] != "full":
        return json_error(403, "this token may read reports but not share them")
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    share_id = secrets.token_urlsafe(24)
    await request.app[STORE].create_share(share_id, report["id"], time.time())
    await _audit(request, "share_created", report["id"], report.get("agent_id", ""), share_id)
    path = f"/share/{share_id}"
    body = {"share_id": share_id, "path": path, "url": f"{request.scheme}://{request.host}{path}"}
    return web.json_response(body, status=201)


async def list_shares(request: web.Request) -> web.Response:
    """``GET /api/reports/{id}/shares``: the report's live share links."""
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    return web.json_response({"shares": await request.app[STORE].list_shares(report["id"])})


async def delete_share(request: web.Request) -> web.Response:
    """``DELETE /api/shares/{share_id}``: the link stops working at once."""
    if request[ROLE_KEY] != "full":
        return json_error(403, "this token may read reports but not revoke share links")
    share_id = request.match_info["share_id"]
    store = request.app[STORE]
    report_id = await store.shared_report_id(share_id)
    if report_id is None or not await store.delete_share(share_id):
        return json_error(404, "no such share link")
    await _audit(request, "share_revoked", report_id, "", share_id)
    return web.json_response({"ok": True})


async def _audit(
    request: web.Request, action: str, report_id: str, agent_id: str, share_id: str
) -> None:
    """Share links make a report readable without login: who made or revoked one is kept."""
    await request.app[STORE].add_audit(
        {
            "at": time.time(),
            "action": action,
            "role": request[ROLE_KEY],
            "name": display_name(request),
            "client": request.remote or "",
            "agent_id": agent_id,
            "report_id": report_id,
            "frame_index": None,
            "code": "",
            "outcome": "ok",
            "detail": f"share link {share_id[:6]}…",  # enough to tell links apart, not to use one
        }
    )


async def _shared(request: web.Request) -> dict[str, Any] | None:
    share_id = request.match_info["share_id"]
    if len(share_id) > 100:
        return None
    store = request.app[STORE]
    report_id = await store.shared_report_id(share_id)
    return None if report_id is None else await store.get_report(report_id)


def _no_store(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


async def show_share(request: web.Request) -> web.Response:
    """``GET /share/{share_id}``: the report, read-only, without login."""
    report = await _shared(request)
    if report is None:
        page = "<!doctype html><title>debugbroker</title><p>This share link is not valid.</p>"
        return _no_store(web.Response(status=404, text=page, content_type="text/html"))
    page = await asyncio.get_running_loop().run_in_executor(None, share_page, report)
    return _no_store(web.Response(text=page, content_type="text/html", charset="utf-8"))


async def show_share_text(request: web.Request) -> web.Response:
    """``GET /share/{share_id}/text``: the plain-text traceback of a shared report."""
    report = await _shared(request)
    if report is None:
        return _no_store(web.Response(status=404, text="This share link is not valid.\n"))
    return _no_store(web.Response(text=report["text"], content_type="text/plain", charset="utf-8"))


async def get_source(request: web.Request) -> web.Response:
    """``GET /api/reports/{id}/frames/{index}/source``: the whole file, or the captured lines."""
    found = await _frame(request)
    if isinstance(found, web.Response):
        return found
    report, frame = found
    reason = "the agent does not hold this frame"
    if frame.get("frame_id"):
        message = SourceRequest(request_id=secrets.token_hex(8), frame_id=frame["frame_id"])
        try:
            answer = await request.app[RELAY].requests.look_up(report["agent_id"], message)
            if isinstance(answer, SourceResult) and answer.ok and answer.lines:
                return await _source_response(
                    list(answer.lines), 1, frame, "agent", answer.truncated
                )
            reason = answer.error or reason
        except EvalFailure as failure:
            reason = failure.message
    context = [str(line) for line in frame.get("context") or ()]
    if not context:
        return json_error(404, f"no source for this frame: {reason}")
    start = frame.get("context_start")
    return await _source_response(
        context, start if isinstance(start, int) else 1, frame, "report", False, reason
    )


async def _source_response(
    lines: list[str],
    first: int,
    frame: dict[str, Any],
    origin: str,
    truncated: bool,
    note: str = "",
) -> web.Response:
    filename, function = str(frame.get("filename") or ""), str(frame.get("function") or "")
    highlight = await asyncio.get_running_loop().run_in_executor(
        None, highlight_lines, lines, filename, function
    )
    body = {
        "filename": frame.get("filename", ""),
        "lineno": frame.get("lineno"),
        "first_line": first,
        "lines": lines,
        "highlight": highlight,
        "origin": origin,  # "agent": the whole file; "report": only the captured lines
        "truncated": truncated,
        "note": note,
    }
    return web.json_response(body)


async def expand(request: web.Request) -> web.Response:
    """``POST /api/reports/{id}/frames/{index}/expand`` ``{"handle": ..., "offset": n}``."""
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, 'the body must be JSON: {"handle": "...", "offset": 0}')
    handle = body.get("handle") if isinstance(body, dict) else None
    offset = body.get("offset", 0) if isinstance(body, dict) else None
    if not isinstance(handle, str) or not handle or len(handle) > _MAX_HANDLE:
        return json_error(400, "the body needs the string handle a value's more field gave")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return json_error(400, "offset must be a non-negative integer")
    found = await _frame(request)
    if isinstance(found, web.Response):
        return found
    report, frame = found
    if not frame.get("frame_id"):
        not_kept = "the agent did not keep this frame (its memory cap was reached)"
        return failure_error(EvalFailure(RELEASED, not_kept))
    message = ExpandRequest(
        request_id=secrets.token_hex(8), frame_id=frame["frame_id"], handle=handle, offset=offset
    )
    try:
        answer = await request.app[RELAY].requests.look_up(report["agent_id"], message)
    except EvalFailure as failure:  # the agent's refusals too (released: 409)
        return failure_error(failure)
    if not answer.ok:  # the value itself cannot be shown (gone, masked...)
        return json_error(422, answer.error or "could not expand")
    node = answer.node if isinstance(answer, ExpandResult) else None
    return web.json_response({"node": to_wire(node)})


def report_routes() -> list[web.RouteDef]:
    """The routes of this module (``/share/`` needs no login; everything else is ``/api/``)."""
    return [
        web.get("/api/groups", list_groups),
        web.get("/api/reports/{report_id}/markdown", get_markdown),
        web.post("/api/reports/{report_id}/share", create_share),
        web.get("/api/reports/{report_id}/shares", list_shares),
        web.delete("/api/shares/{share_id}", delete_share),
        web.get("/api/reports/{report_id}/frames/{index}/source", get_source),
        web.post("/api/reports/{report_id}/frames/{index}/expand", expand),
        web.get("/share/{share_id}", show_share),
        web.get("/share/{share_id}/text", show_share_text),
    ]
