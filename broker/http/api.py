"""The HTTP JSON API (docs/api.md): reports, their text, agents (the console is in console.py).

Every handler answers JSON ``{"error": ...}`` with a fitting status when it cannot do what
was asked; authentication and the Host/Origin rules are applied before, by ``auth``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from debugbroker import protocol
from debugbroker.broker.http.audit import (
    audit_action,
    audit_outcome,
    audit_refusal,
    display_name,
    unaudited,
)
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.relay.router import Relay
from debugbroker.broker.render.highlight import highlight_report
from debugbroker.broker.store.store import ReportFilter, Store

__all__ = ["STORE", "RELAY", "api_routes", "failure_error", "MAX_CODE_CHARS"]

STORE = web.AppKey("store", Store)
RELAY = web.AppKey("relay", Relay)
MAX_CODE_CHARS = 100_000
_MAX_LIMIT = 1_000
_MAX_LINE = 10_000_000
_STEP_ACTIONS: dict[str, protocol.StepAction] = {action: action for action in protocol.STEP_ACTIONS}
_COMPRESS_OVER = 32_768  # bytes of report JSON above which it is sent gzipped (if accepted)


def failure_error(failure: EvalFailure) -> web.Response:
    """The JSON error of a request the relay could not carry out: ``{"error", "reason"}``
    (``reason`` one of ``protocol.FAILURE_REASONS``, the status chosen by it)."""
    body = {"error": failure.message, "reason": failure.reason}
    return web.json_response(body, status=failure.status)


async def list_reports(request: web.Request) -> web.Response:
    """``GET /api/reports?limit=N&before=CREATED&before_id=ID&q=&type=&path=&agent=``
    ``&fingerprint=&app=&state=&since=&until=``: pass the last row's ``created`` and ``id``
    as ``before`` and ``before_id`` for the next page."""
    try:
        limit = int(request.query.get("limit", "100"))
        before_text = request.query.get("before")
        before = float(before_text) if before_text else None
    except ValueError:
        return json_error(400, "limit must be an integer and before a number")
    before_id = request.query.get("before_id") or None  # without before: no page to follow
    if before_id is not None and len(before_id) > 128:
        return json_error(400, "before_id is at most 128 characters")
    if limit < 1 or limit > _MAX_LIMIT:
        return json_error(400, f"limit must be between 1 and {_MAX_LIMIT}")
    try:
        filters = ReportFilter.from_query(request.query)
    except ValueError as error:
        return json_error(400, str(error))
    reports = await request.app[STORE].list_reports(limit, before, filters, before_id)
    return web.json_response({"reports": reports})


async def _report_or_404(request: web.Request) -> dict[str, Any] | web.Response:
    report_id = request.match_info["report_id"]
    report = await request.app[STORE].get_report(report_id)
    if report is None:
        return json_error(404, f"no report with id {report_id!r}")
    return report


async def get_report(request: web.Request) -> web.Response:
    """``GET /api/reports/{id}``: the report, highlighted, with ``agent_alive``."""
    found = await _report_or_404(request)
    if isinstance(found, web.Response):
        return found
    # Pygments is CPU work: keep it off the loop.
    report = await asyncio.get_running_loop().run_in_executor(None, highlight_report, found)
    agent = request.app[RELAY].agents.get(report["agent_id"])
    report["agent_alive"] = bool(agent and agent.alive)
    report["resumable"] = report["id"] in request.app[RELAY].paused
    if report.get("step_of"):
        report["stepped_by"] = request.app[RELAY].step_driver(report["step_of"])
    report["next_pause"] = request.app[RELAY].step_next(report["id"])
    report["frames_held"] = request.app[RELAY].frames_held(report["id"], report["agent_id"])
    report["frames_released"] = request.app[RELAY].released_at.get(report["id"])
    response = web.json_response(report)
    if (response.content_length or 0) > _COMPRESS_OVER:
        # A big report's JSON shrinks many times over for little CPU (BENCHMARKS.md):
        # worth it for a dashboard across a network.
        response.enable_compression()
    return response


async def get_report_text(request: web.Request) -> web.Response:
    """``GET /api/reports/{id}/text``: the traceback exactly as the app's Python printed it."""
    found = await _report_or_404(request)
    if isinstance(found, web.Response):
        return found
    return web.Response(text=found["text"], content_type="text/plain", charset="utf-8")


async def resume_report(request: web.Request) -> web.Response:
    """``POST /api/reports/{id}/continue``: the thread paused at ``breakpoint()`` goes on."""
    store = request.app[STORE]
    if request[ROLE_KEY] != "full":
        refused = json_error(403, "this token may read reports but not resume threads")
        return await audit_refusal(store, request, "continue", refused)
    found = await _report_or_404(request)
    if isinstance(found, web.Response):
        return await audit_refusal(store, request, "continue", found)
    row = await audit_action(store, request, "continue", agent_id=found["agent_id"])
    if row is None:  # the disk filled just now: nothing runs without its audit row
        return json_error(507, unaudited(store))
    try:
        await request.app[RELAY].requests.resume(found["id"])
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        await store.flush()
        return failure_error(failure)
    audit_outcome(store, row, "ok")
    await store.flush()
    return web.json_response({"ok": True})


def _parse_step(body: object) -> tuple[protocol.StepAction, int] | str:
    """The action and line of a step request's body, or what is wrong with it."""
    actions = " | ".join(f'"{action}"' for action in protocol.STEP_ACTIONS)
    shape = f'{{"action": {actions}, "line": int}}'
    if not isinstance(body, dict):
        return f"the body must be a JSON object: {shape}"
    action = _STEP_ACTIONS.get(body.get("action"))  # type: ignore[arg-type]
    line = body.get("line", 0)
    if action is None:
        return f"action must be one of {actions}: {shape}"
    if type(line) is not int or not 0 <= line <= _MAX_LINE:
        return f"line must be an integer from 0 to {_MAX_LINE}"
    if action == "until" and line < 1:
        return "until needs the line to run to (line >= 1)"
    return action, line if action == "until" else 0


async def step_report(request: web.Request) -> web.Response:
    """``POST /api/reports/{id}/step`` ``{"action": StepAction, "line": int}``: the paused
    thread takes a step and pauses again, in a new report whose ``step_of`` is this one."""
    store = request.app[STORE]
    if request[ROLE_KEY] != "full":
        refused = json_error(403, "this token may read reports but not step threads")
        return await audit_refusal(store, request, "step", refused)
    found = await _report_or_404(request)
    if isinstance(found, web.Response):
        return await audit_refusal(store, request, "step", found)
    try:
        body = await request.json()
    except ValueError:
        body = None
    parsed = _parse_step(body)
    if isinstance(parsed, str):
        return await audit_refusal(store, request, "step", json_error(400, parsed))
    action, line = parsed
    step = None
    if action != "continue":
        step = protocol.Step(report_id=found["id"], action=action, line=line)
    row = await audit_action(store, request, f"step_{action}", agent_id=found["agent_id"])
    if row is None:  # the disk filled just now: nothing runs without its audit row
        return json_error(507, unaudited(store))
    try:
        await request.app[RELAY].resume(found["id"], step, driver=display_name(request))
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        await store.flush()
        return failure_error(failure)
    audit_outcome(store, row, "ok")
    await store.flush()
    return web.json_response({"ok": True})


async def release_frames(request: web.Request) -> web.Response:
    """``POST /api/reports/{id}/release``: the agent drops the report's live frames now."""
    found = await _report_or_404(request)
    if isinstance(found, web.Response):
        return found
    status, message = 403, "this token may read reports but not release frames"
    reason: str | None = None
    if request[ROLE_KEY] == "full":
        status, message = 200, ""
        try:
            await request.app[RELAY].requests.release(found["id"], found["agent_id"])
        except EvalFailure as failure:
            status, message, reason = failure.status, failure.message, failure.reason
    await request.app[STORE].add_audit(  # like evals: who, when, which report, outcome
        {
            "at": time.time(),
            "action": "release_frames",
            "role": request[ROLE_KEY],
            "name": display_name(request),
            "client": request.remote or "",
            "agent_id": found["agent_id"],
            "report_id": found["id"],
            "outcome": "ok" if status == 200 else "refused" if status == 403 else "failed",
            "detail": f"HTTP {status}: {message}" if message else "",
        }
    )
    if reason is not None:
        return web.json_response({"error": message, "reason": reason}, status=status)
    if status != 200:
        return json_error(status, message)
    return web.json_response({"ok": True, "frames_held": False})


async def list_agents(request: web.Request) -> web.Response:
    """``GET /api/agents``: live agents first, then the most recently seen."""
    agents = sorted(request.app[RELAY].agents.values(), key=lambda a: (not a.alive, -a.last_seen))
    return web.json_response({"agents": [agent.to_json() for agent in agents]})


def api_routes() -> list[web.RouteDef]:
    """The API's routes (the WebSocket is added by the app)."""
    return [
        web.get("/api/reports", list_reports),
        web.get("/api/reports/{report_id}", get_report),
        web.get("/api/reports/{report_id}/text", get_report_text),
        web.get("/api/agents", list_agents),
        web.post("/api/reports/{report_id}/continue", resume_report),
        web.post("/api/reports/{report_id}/step", step_report),
        web.post("/api/reports/{report_id}/release", release_frames),
    ]
