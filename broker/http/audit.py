"""The broker's security record: an audit log of code-running actions and admissions, and counters.

Every code-running action that got past authentication is recorded by its handler with one
call, ``record_action`` (``audit_action`` for an HTTP request: who and where from the
request), before anything is sent to the agent, whatever it came by (an eval or completion
may come over the dashboard's WebSocket too, see ``ws``) (DESIGN.md: "every code-running
action is audited before it runs"): an eval (``POST /api/.../eval``, a frame's console or a
process console), a completion (``POST /api/.../complete``: it looks up attributes, which may
run the app's ``__getattr__``) and a Continue (``POST /api/reports/{id}/continue``: the paused
thread runs on). The row says who (the role of the credential, the client address and the
display name the dashboard sends in ``X-Debugbroker-Name``), what code, on which report, frame
and agent, and when; it is made durable with outcome ``running`` (appended to the store's
audit journal, committed with the next batch) before the action is dispatched,
and ``audit_outcome`` updates it once the outcome is known (``ok``, ``raised``, ``failed``).
A refused attempt (view-only token 403, bad body 400, code too long 413) is one row with
outcome ``refused`` and a failure before dispatch (no such frame, agent gone) one with
``failed``; both record the HTTP status in ``detail``. Agent admissions and refusals are
recorded by the relay. ``GET /api/audit`` (full token only) lists the entries;
``GET /api/status`` shows the counters of what the broker refused or dropped, so an operator
can see an attack or a misconfigured agent, and what the store could not write (a full
disk). While the store cannot write, the handlers refuse code-running actions (507,
``store_refusal``) before they run: their audit rows could not be written.
"""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from debugbroker.broker.http.auth import ROLE_KEY, AccessPolicy, Caller, json_error
from debugbroker.broker.http.ws import EventHub
from debugbroker.broker.relay.router import Relay
from debugbroker.broker.store.store import Store

__all__ = [
    "RUNNING",
    "NAME_HEADER",
    "MAX_NAME_CHARS",
    "MAX_AUDITED_CODE",
    "audit_action",
    "record_action",
    "record_refusal",
    "refuse_unwritable",
    "caller_of",
    "clean_name",
    "audit_outcome",
    "unaudited",
    "audit_refusal",
    "store_refusal",
    "display_name",
    "security_routes",
    "store_status",
    "announce_store_faults",
]

RUNNING = "running"  # the outcome of an audited action until it is known
_NAME_KEY = "debugbroker_display_name"  # ``display_name``, once worked out
NAME_HEADER = "X-Debugbroker-Name"
MAX_NAME_CHARS = 100
_MAX_LIMIT = 1_000
MAX_AUDITED_CODE = 100_000  # the API refuses longer code; this bounds refused attempts too
_MAX_DETAIL = 2_000
_SQLITE_INT = 2**63  # SQLite integers are signed 64-bit
_STORE_EVENT_SECONDS = 1.0  # how often the dashboards hear of a store that cannot write


def clean_name(raw: str) -> str:
    """A display name as the broker keeps it: printable, stripped, at most MAX_NAME_CHARS."""
    printable = "".join(c for c in raw[: MAX_NAME_CHARS * 4] if unicodedata.category(c)[0] != "C")
    return printable.strip()[:MAX_NAME_CHARS]


def display_name(request: web.Request) -> str:
    """The display name a dashboard sent (percent-encoded UTF-8), bounded and printable
    (worked out once per request: an eval's transcript entry and audit row both need it)."""
    name = request.get(_NAME_KEY)
    if not isinstance(name, str):
        raw = unquote(request.headers.get(NAME_HEADER, ""), errors="replace")
        name = request[_NAME_KEY] = clean_name(raw)
    return name


def caller_of(request: web.Request) -> Caller:
    """Who sent an HTTP request: its credential's role, display name and address."""
    return Caller(request[ROLE_KEY], display_name(request), request.remote or "")


def _small_int(text: str) -> int | None:
    """``text`` as an integer SQLite can store, else None (a hostile index is still logged)."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -_SQLITE_INT <= value < _SQLITE_INT else None


async def audit_action(
    store: Store,
    request: web.Request,
    action: str,
    *,
    code: str = "",
    agent_id: str = "",
    outcome: str = RUNNING,
    detail: str = "",
) -> int | None:
    """Record a code-running action of an HTTP request before it runs (``record_action``,
    where the route says: its report, frame and agent unless ``agent_id`` is given)."""
    return await record_action(
        store,
        caller_of(request),
        request.match_info,
        action,
        code=code,
        agent_id=agent_id,
        outcome=outcome,
        detail=detail,
    )


def _audit_row(
    caller: Caller,
    where: Mapping[str, str],
    action: str,
    *,
    code: str,
    agent_id: str,
    outcome: str,
    detail: str,
) -> dict[str, Any]:
    return {
        "at": time.time(),
        "action": action,
        "role": caller.role,
        "name": caller.name,
        "client": caller.client,
        "agent_id": agent_id or where.get("agent_id", ""),
        "report_id": where.get("report_id", ""),
        "frame_index": _small_int(where.get("index", "")),
        "code": code[:MAX_AUDITED_CODE],
        "outcome": outcome,
        "detail": detail[:_MAX_DETAIL],
    }


async def record_action(
    store: Store,
    caller: Caller,
    where: Mapping[str, str],
    action: str,
    *,
    code: str = "",
    agent_id: str = "",
    outcome: str = RUNNING,
    detail: str = "",
) -> int | None:
    """Record a code-running action before it runs: the one audit call of each action,
    whatever it came by (an HTTP request or the dashboard's WebSocket).

    The row (who; what; where: ``report_id``, ``index`` and ``agent_id`` of ``where``, the
    route's names, unless ``agent_id`` is given) is durable before this returns (the store's
    audit journal, then its next commit); its id is for ``audit_outcome``, None when it could
    not be written (the store logged why).
    """
    row = _audit_row(
        caller, where, action, code=code, agent_id=agent_id, outcome=outcome, detail=detail
    )
    return await store.start_audit(row)


def unaudited(store: Store) -> str:
    """Why an action whose audit row could not be committed (``audit_action`` gave None)
    is refused with a 507: nothing runs without its row."""
    fault = store.fault or "the store could not write"
    return (
        f"not run: its audit row cannot be written ({fault}). "
        "Free space for the broker's data dir; actions run again once the store writes."
    )


def audit_outcome(store: Store, row_id: int | None, outcome: str, detail: str = "") -> None:
    """How an audited action ended (``ok``, ``raised`` or ``failed``), queued; the handler
    flushes the store before it answers."""
    if row_id is not None:
        store.queue_finish_audit(row_id, outcome, detail[:_MAX_DETAIL])


def refusal_outcome(response: web.Response) -> tuple[str, str]:
    """("refused" | "failed", "HTTP status: error") of a JSON error answer."""
    error = ""
    try:
        body = json.loads(bytes(response.body)) if isinstance(response.body, bytes) else None
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
    except ValueError:
        pass
    kind = "refused" if response.status in (400, 401, 403, 413) else "failed"
    return kind, f"HTTP {response.status}: {error}"


async def store_refusal(store: Store, request: web.Request, action: str) -> web.Response | None:
    """``refuse_unwritable`` for an HTTP request (where the route says)."""
    if store.fault is None:
        return None
    return await refuse_unwritable(store, caller_of(request), request.match_info, action)


async def refuse_unwritable(
    store: Store, caller: Caller, where: Mapping[str, str], action: str
) -> web.Response | None:
    """The 507 answer refusing a code-running action while the store cannot write (its
    audit row could not be written), else None; handlers ask before ``record_action``. The
    refusal's own row (without the code) waits in memory for the disk."""
    if store.fault is None:
        return None
    detail = (
        f"the eval was not run: its audit row cannot be written ({store.fault}). "
        "Free space for the broker's data dir; evals run again once the store writes."
    )
    row = _audit_row(
        caller, where, action, code="", agent_id="", outcome="refused", detail=f"HTTP 507: {detail}"
    )
    store.queue_audit(row)
    await store.flush()  # tried now: through the fault it waits in memory with the others
    return json_error(507, detail)


async def audit_refusal(
    store: Store, request: web.Request, action: str, response: web.Response, *, code: str = ""
) -> web.Response:
    """Record an attempt answered with ``response`` before anything ran; ``response``."""
    return await record_refusal(
        store, caller_of(request), request.match_info, action, response, code=code
    )


async def record_refusal(
    store: Store,
    caller: Caller,
    where: Mapping[str, str],
    action: str,
    response: web.Response,
    *,
    code: str = "",
) -> web.Response:
    """Record an attempt answered with ``response`` before anything ran; ``response``."""
    outcome, detail = refusal_outcome(response)
    await record_action(store, caller, where, action, code=code, outcome=outcome, detail=detail)
    return response


def store_status(store: Store, relay: Relay) -> dict[str, Any]:
    """``GET /api/status``'s ``store``: reports stored by this broker, waiting through a
    storage fault and shed, the queued writes likewise, and the fault, if any."""
    return {
        "stored": relay.stats.reports,
        "waiting": store.reports_waiting,
        "shed": store.reports_shed,
        "not_stored": relay.stats.not_stored,
        "writes_waiting": store.writes_waiting,
        "writes_shed": store.writes_shed,
        "fault": store.fault,
        "shed_reason": store.shed_reason,
    }


async def announce_store_faults(store: Store, relay: Relay, hub: EventHub) -> None:
    """Publish ``{"type": "store", "store": ...}`` every second while the store cannot
    write (when it changed), and once when it can again: the dashboard's banner."""
    last: dict[str, Any] | None = None
    while True:
        await asyncio.sleep(_STORE_EVENT_SECONDS)
        status = store_status(store, relay)
        faulty = status["fault"] is not None
        was_faulty = last is not None and last["fault"] is not None
        if (faulty and status != last) or (was_faulty and not faulty):
            await hub.publish({"type": "store", "store": status})
        last = status


def security_routes(
    store: Store, relay: Relay, policy: AccessPolicy, hub: EventHub
) -> list[web.RouteDef]:
    """``GET /api/audit`` (full token only) and ``GET /api/status`` (any token)."""

    async def audit(request: web.Request) -> web.Response:
        if request[ROLE_KEY] != "full":
            return web.json_response({"error": "the audit log needs the full token"}, status=403)
        try:
            limit = int(request.query.get("limit", "100"))
            before_text = request.query.get("before")
            before = int(before_text) if before_text else None
        except ValueError:
            return web.json_response({"error": "limit and before must be integers"}, status=400)
        if before is not None and not 0 <= before < _SQLITE_INT:
            return web.json_response({"error": "before must be an entry id"}, status=400)
        if not 1 <= limit <= _MAX_LIMIT:
            return web.json_response(
                {"error": f"limit must be between 1 and {_MAX_LIMIT}"}, status=400
            )
        return web.json_response({"entries": await store.list_audit(limit, before)})

    async def status(request: web.Request) -> web.Response:
        stats = relay.stats
        return web.json_response(
            {
                "role": request[ROLE_KEY],
                # Plain zmq to agents (--insecure-plaintext): the dashboard shows a warning.
                "insecure_plaintext": relay.insecure_plaintext,
                "agents_alive": sum(1 for agent in relay.agents.values() if agent.alive),
                "relay": {
                    "handshake_failed": stats.handshake_failed,
                    "malformed": stats.malformed,
                    "oversized": stats.oversized,
                    "unadmitted": stats.unadmitted,
                    "unexpected": stats.unexpected,
                    "refused": stats.refused,
                    "reports": stats.reports,
                    "repeats_counted": stats.repeats_counted,
                    "repeats_unknown": stats.repeats_unknown,
                },
                "store": store_status(store, relay),
                "dashboard": {
                    "failed_logins": policy.failed_total,
                    "bad_requests": policy.bad_requests,
                    "websocket_clients": hub.client_count,
                },
            }
        )

    return [web.get("/api/audit", audit), web.get("/api/status", status)]
