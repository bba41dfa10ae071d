"""Triage: a group's state, deleting a report or a group, and clearing the store.

- ``POST /api/groups/{fingerprint}/state`` ``{"state": "resolved" | "open" | "ignored" |
  "muted", "minutes"?: number, "occurrences"?: int}``: a muted group needs how long
  (``minutes``) or how many more reports (``occurrences``) the mute lasts; ``ignored`` is
  for good. A resolved group reopens by itself as ``regressed`` when its error comes back.
- ``DELETE /api/reports/{report_id}``: one report (its group still counts it as seen).
- ``DELETE /api/groups/{fingerprint}``: a group, its counts and its reports.
- ``POST /api/clear`` ``{"confirm": "delete everything"}``: every report, group and share link.

Each needs the full token (the view token gets 403), is written to the audit log whatever
its outcome, and is published on the WebSocket as ``{"type": "triage", ...}`` so that every
dashboard updates.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from debugbroker.broker.http.api import RELAY, STORE
from debugbroker.broker.http.audit import display_name
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.store.groups import MAX_MUTE_MINUTES, MAX_MUTE_OCCURRENCES

__all__ = ["CLEAR_CONFIRMATION", "triage_routes"]

CLEAR_CONFIRMATION = "delete everything"
_FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")
_STATES = ("resolved", "open", "ignored", "muted")


async def _audited(
    request: web.Request,
    action: str,
    detail: str,
    status: int,
    message: str = "",
    report_id: str = "",
) -> None:
    """The audit row of a triage request: who, what, and how it ended."""
    outcome = "ok" if status < 300 else "refused" if status in (400, 403) else "failed"
    await request.app[STORE].add_audit(
        {
            "at": time.time(),
            "action": action,
            "role": request[ROLE_KEY],
            "name": display_name(request),
            "client": request.remote or "",
            "agent_id": "",
            "report_id": report_id,
            "frame_index": None,
            "code": "",
            "outcome": outcome,
            "detail": detail if status < 300 else f"{detail}: HTTP {status}: {message}",
        }
    )


async def _refused(
    request: web.Request, action: str, detail: str, status: int, message: str, report_id: str = ""
) -> web.Response:
    await _audited(request, action, detail, status, message, report_id)
    return json_error(status, message)


def _fingerprint(request: web.Request) -> str | None:
    key = request.match_info["fingerprint"]
    return key if _FINGERPRINT.fullmatch(key) else None


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _mute(body: dict[str, Any]) -> tuple[float | None, int | None] | str:
    """(until, occurrences) of a mute, or why the body does not say one."""
    minutes, occurrences = body.get("minutes"), body.get("occurrences")
    if (minutes is None) == (occurrences is None):
        return "a mute needs minutes (how long) or occurrences (how many more), not both"
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
            return "minutes must be a number"
        if not 0 < minutes <= MAX_MUTE_MINUTES:
            return f"minutes must be more than 0 and at most {MAX_MUTE_MINUTES}"
        return time.time() + minutes * 60, None
    if isinstance(occurrences, bool) or not isinstance(occurrences, int):
        return "occurrences must be an integer"
    if not 0 < occurrences <= MAX_MUTE_OCCURRENCES:
        return f"occurrences must be between 1 and {MAX_MUTE_OCCURRENCES}"
    return None, occurrences


async def set_state(request: web.Request) -> web.Response:
    """``POST /api/groups/{fingerprint}/state``: resolve, reopen, ignore or mute a group."""
    key = _fingerprint(request)
    action = "group_state"
    if key is None:
        return await _refused(request, action, "", 404, "no such group")
    detail = f"group {key}"
    if request[ROLE_KEY] != "full":
        return await _refused(request, action, detail, 403, "this token may not triage")
    body = await _body(request)
    state = body.get("state") if body is not None else None
    if body is None or state not in _STATES:
        message = f'the body must be JSON: {{"state": one of {", ".join(_STATES)}}}'
        return await _refused(request, action, detail, 400, message)
    until: float | None = None
    occurrences: int | None = None
    if state == "muted":
        mute = _mute(body)
        if isinstance(mute, str):
            return await _refused(request, action, detail, 400, mute)
        until, occurrences = mute
    elif set(body) != {"state"}:
        message = "minutes and occurrences are for a mute only"
        return await _refused(request, action, detail, 400, message)
    store = request.app[STORE]
    if not await store.set_group_state(key, str(state), until, occurrences):
        return await _refused(request, action, detail, 404, "no such group")
    await _audited(request, action, f"{detail} {state}", 200)
    event = {
        "type": "triage",
        "action": "state",
        "fingerprint": key,
        "state": state,
        "mute_until": until,
        "mute_remaining": occurrences,
    }
    await request.app[RELAY].publish(event)
    return web.json_response({"ok": True, **{k: v for k, v in event.items() if k != "type"}})


async def delete_report(request: web.Request) -> web.Response:
    """``DELETE /api/reports/{report_id}``: one report; its group still counts it."""
    report_id = request.match_info["report_id"]
    action, detail = "report_deleted", ""
    if request[ROLE_KEY] != "full":
        message = "this token may not delete reports"
        return await _refused(request, action, detail, 403, message, report_id)
    if not await request.app[STORE].delete_report(report_id):
        return await _refused(request, action, detail, 404, "no such report", report_id)
    await _audited(request, action, detail, 200, report_id=report_id)
    await request.app[RELAY].publish(
        {"type": "triage", "action": "report_deleted", "report_id": report_id}
    )
    return web.json_response({"ok": True, "deleted": 1})


async def delete_group(request: web.Request) -> web.Response:
    """``DELETE /api/groups/{fingerprint}``: a group, its counts and its reports."""
    key = _fingerprint(request)
    action = "group_deleted"
    if key is None:
        return await _refused(request, action, "", 404, "no such group")
    detail = f"group {key}"
    if request[ROLE_KEY] != "full":
        return await _refused(request, action, detail, 403, "this token may not delete groups")
    deleted = await request.app[STORE].delete_group(key)
    if deleted is None:
        return await _refused(request, action, detail, 404, "no such group")
    await _audited(request, action, f"{detail}: {deleted} reports", 200)
    await request.app[RELAY].publish(
        {"type": "triage", "action": "group_deleted", "fingerprint": key}
    )
    return web.json_response({"ok": True, "deleted": deleted})


async def clear(request: web.Request) -> web.Response:
    """``POST /api/clear`` ``{"confirm": "delete everything"}``: every report and group."""
    action, detail = "store_cleared", ""
    if request[ROLE_KEY] != "full":
        return await _refused(request, action, detail, 403, "this token may not clear the store")
    body = await _body(request)
    if body is None or body.get("confirm") != CLEAR_CONFIRMATION:
        message = f'the body must be JSON: {{"confirm": "{CLEAR_CONFIRMATION}"}}'
        return await _refused(request, action, detail, 400, message)
    deleted = await request.app[STORE].clear_all()
    await _audited(request, action, f"{deleted} reports", 200)
    await request.app[RELAY].publish({"type": "triage", "action": "cleared"})
    return web.json_response({"ok": True, "deleted": deleted})


def triage_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.post("/api/groups/{fingerprint}/state", set_state),
        web.delete("/api/groups/{fingerprint}", delete_group),
        web.delete("/api/reports/{report_id}", delete_report),
        web.post("/api/clear", clear),
    ]
