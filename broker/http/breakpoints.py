"""Breakpoints set from the dashboard, over HTTP (docs/api.md, "Breakpoints").

``GET /api/breakpoints`` lists them with each agent's state; ``POST`` sets one (for every
agent of an app, or for one agent), ``PATCH /api/breakpoints/{id}`` enables, disables or
changes its condition or hit count, ``DELETE`` removes it. Setting, changing and removing are
code-running actions (a breakpoint pauses a worker, its condition runs in the app): a full
token only, each audited before it is carried out.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from debugbroker.broker.http.api import RELAY, STORE
from debugbroker.broker.http.audit import (
    audit_action,
    audit_outcome,
    audit_refusal,
    display_name,
    unaudited,
)
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.relay.breakpoints import BreakpointError

__all__ = ["breakpoint_routes", "MAX_CONDITION_CHARS", "MAX_FILE_CHARS"]

MAX_CONDITION_CHARS = 2000
MAX_FILE_CHARS = 4096
_MAX_LINE = 10_000_000
_MAX_HITS = 1_000_000_000
_SHAPE = (
    '{"file": str, "line": int, "app": str, "agent_id": str, "condition": str, '
    '"hit_count": int, "enabled": bool}'
)


def _check_changes(body: dict[str, Any]) -> dict[str, Any] | str:
    """The changeable fields of ``body`` (condition, hit_count, enabled), checked."""
    changes: dict[str, Any] = {}
    if "condition" in body:
        condition = body["condition"]
        if not isinstance(condition, str) or len(condition) > MAX_CONDITION_CHARS:
            return f"condition must be a string of at most {MAX_CONDITION_CHARS} characters"
        # Not compiled here: the agents do, and say so in their state when it is no expression.
        changes["condition"] = condition.strip()
    if "hit_count" in body:
        hit_count = body["hit_count"]
        if type(hit_count) is not int or not 0 <= hit_count <= _MAX_HITS:
            return f"hit_count must be an integer from 0 to {_MAX_HITS}"
        changes["hit_count"] = hit_count
    if "enabled" in body:
        if type(body["enabled"]) is not bool:
            return "enabled must be true or false"
        changes["enabled"] = body["enabled"]
    return changes


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _where(breakpoint: dict[str, Any]) -> str:
    scope = f"agent {breakpoint['agent_id']}" if breakpoint["agent_id"] else "every agent"
    return f"{breakpoint['file']}:{breakpoint['line']} in app {breakpoint['app']!r} ({scope})"


async def list_breakpoints(request: web.Request) -> web.Response:
    """``GET /api/breakpoints``: every breakpoint, with its state in each agent."""
    return web.json_response({"breakpoints": request.app[RELAY].breakpoints.to_json()})


async def add_breakpoint(request: web.Request) -> web.Response:
    """``POST /api/breakpoints``: set a breakpoint for an app's agents or one agent."""
    store = request.app[STORE]
    relay = request.app[RELAY]
    if request[ROLE_KEY] != "full":
        refused = json_error(403, "this token may read reports but not set breakpoints")
        return await audit_refusal(store, request, "breakpoint_set", refused)
    body = await _body(request)
    if body is None:
        refused = json_error(400, f"the body must be a JSON object: {_SHAPE}")
        return await audit_refusal(store, request, "breakpoint_set", refused)
    problem = _check_new(body, relay.agents)
    if isinstance(problem, str):
        refused = json_error(404 if problem.startswith("no agent") else 400, problem)
        return await audit_refusal(store, request, "breakpoint_set", refused)
    fields = problem
    detail = _where(fields)
    row = await audit_action(
        store,
        request,
        "breakpoint_set",
        code=fields["condition"],
        agent_id=fields["agent_id"],
        detail=detail,
    )
    if row is None:
        return json_error(507, unaudited(store))
    try:
        breakpoint = await relay.breakpoints.add(**fields, created_by=display_name(request))
    except BreakpointError as error:
        audit_outcome(store, row, "refused", f"HTTP {error.status}: {error.message}")
        await store.flush()
        return json_error(error.status, error.message)
    audit_outcome(store, row, "ok", f"{detail}, id {breakpoint['id']}")
    await store.flush()
    return web.json_response({"breakpoint": breakpoint}, status=201)


def _check_new(body: dict[str, Any], agents: dict[str, Any]) -> dict[str, Any] | str:
    """The fields of a new breakpoint from ``body``, or what is wrong with it."""
    file, line = body.get("file"), body.get("line")
    if not isinstance(file, str) or not file or len(file) > MAX_FILE_CHARS:
        return f"file must be a file name of 1 to {MAX_FILE_CHARS} characters: {_SHAPE}"
    if type(line) is not int or not 1 <= line <= _MAX_LINE:
        return f"line must be an integer from 1 to {_MAX_LINE}"
    app, agent_id = body.get("app", ""), body.get("agent_id", "")
    if not isinstance(app, str) or not isinstance(agent_id, str):
        return "app and agent_id must be strings"
    if len(app) > 200:
        return "app is at most 200 characters"
    if agent_id:
        agent = agents.get(agent_id)
        if agent is None:
            return f"no agent with id {agent_id!r}"
        app = agent.app  # one agent's breakpoint is of its app
    if not app and not agent_id:  # one agent's may be of an unnamed app (no DEBUGBROKER_APP)
        return "say which app's agents the breakpoint is for (app), or which agent (agent_id)"
    changes = _check_changes(body)
    if isinstance(changes, str):
        return changes
    return {
        "app": app,
        "agent_id": agent_id,
        "file": file,
        "line": line,
        "condition": changes.get("condition", ""),
        "hit_count": changes.get("hit_count", 0),
        "enabled": changes.get("enabled", True),
    }


async def _named_breakpoint(
    request: web.Request, action: str, verb: str
) -> dict[str, Any] | web.Response:
    """The breakpoint the path names, or the audited refusal: a view token's 403 (it may not
    ``verb`` breakpoints) or an unknown id's 404."""
    store = request.app[STORE]
    if request[ROLE_KEY] != "full":
        refused = json_error(403, f"this token may read reports but not {verb} breakpoints")
        return await audit_refusal(store, request, action, refused)
    breakpoint_id = request.match_info["breakpoint_id"]
    found: dict[str, Any] | None = request.app[RELAY].breakpoints.get(breakpoint_id)
    if found is None:
        refused = json_error(404, f"no breakpoint with id {breakpoint_id!r}")
        return await audit_refusal(store, request, action, refused)
    return found


async def change_breakpoint(request: web.Request) -> web.Response:
    """``PATCH /api/breakpoints/{id}`` ``{"enabled", "condition", "hit_count"}`` (any of)."""
    store = request.app[STORE]
    book = request.app[RELAY].breakpoints
    found = await _named_breakpoint(request, "breakpoint_changed", "change")
    if isinstance(found, web.Response):
        return found
    breakpoint_id = request.match_info["breakpoint_id"]
    body = await _body(request)
    changes = _check_changes(body) if body is not None else "the body must be a JSON object"
    unknown = sorted(set(body or {}) - {"enabled", "condition", "hit_count"})
    if unknown and not isinstance(changes, str):
        changes = f"only enabled, condition and hit_count can change, not {unknown[0]!r}"
    if isinstance(changes, str) or not changes:
        message = changes or 'change at least one of "enabled", "condition", "hit_count"'
        refused = json_error(400, str(message))
        return await audit_refusal(store, request, "breakpoint_changed", refused)
    described = ", ".join(f"{name}={value!r}" for name, value in changes.items())
    row = await audit_action(
        store,
        request,
        "breakpoint_changed",
        code=changes.get("condition", ""),
        agent_id=found["agent_id"],
        detail=f"{_where(found)}: {described}",
    )
    if row is None:
        return json_error(507, unaudited(store))
    changed = await book.change(breakpoint_id, changes)
    if changed is None:  # removed meanwhile
        audit_outcome(store, row, "failed", "HTTP 404: removed meanwhile")
        await store.flush()
        return json_error(404, f"no breakpoint with id {breakpoint_id!r}")
    audit_outcome(store, row, "ok")
    await store.flush()
    return web.json_response({"breakpoint": changed})


async def remove_breakpoint(request: web.Request) -> web.Response:
    """``DELETE /api/breakpoints/{id}``: remove it from the broker and its agents."""
    store = request.app[STORE]
    book = request.app[RELAY].breakpoints
    found = await _named_breakpoint(request, "breakpoint_removed", "remove")
    if isinstance(found, web.Response):
        return found
    breakpoint_id = request.match_info["breakpoint_id"]
    row = await audit_action(
        store, request, "breakpoint_removed", agent_id=found["agent_id"], detail=_where(found)
    )
    if row is None:
        return json_error(507, unaudited(store))
    await book.remove(breakpoint_id)
    audit_outcome(store, row, "ok")
    await store.flush()
    return web.json_response({"ok": True})


def breakpoint_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.get("/api/breakpoints", list_breakpoints),
        web.post("/api/breakpoints", add_breakpoint),
        web.patch("/api/breakpoints/{breakpoint_id}", change_breakpoint),
        web.delete("/api/breakpoints/{breakpoint_id}", remove_breakpoint),
    ]
