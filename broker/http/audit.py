"""The broker's security record: an audit log of evals and agent admissions, and counters.

Every eval request that got past authentication (any ``POST /api/.../eval``: a frame's
console or a process console) is recorded, whatever its outcome: who
(the role of the credential, the client address and the display name the dashboard sends
in ``X-Debugbroker-Name``), what code, on which report, frame and agent, when, and how it
ended. Agent admissions and refusals are recorded by the relay. ``GET /api/audit`` (full
token only) lists the entries; ``GET /api/status`` shows the counters of what the broker
refused or dropped, so an operator can see an attack or a misconfigured agent, and what the
store could not write (a full disk). While the store cannot write, evals are refused (507)
before they run: their audit rows could not be written.
"""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware

from debugbroker.broker.http.auth import ROLE_KEY, AccessPolicy, Handler, json_error
from debugbroker.broker.http.ws import EventHub
from debugbroker.broker.relay.router import Relay
from debugbroker.broker.store.store import Store

__all__ = [
    "EVAL_AGENT_KEY",
    "note_eval",
    "note_answer",
    "NAME_HEADER",
    "MAX_NAME_CHARS",
    "audit_middleware",
    "display_name",
    "security_routes",
    "store_status",
    "announce_store_faults",
]

EVAL_AGENT_KEY = "debugbroker_eval_agent"  # the eval handler notes the target agent here
_CODE_KEY = "debugbroker_eval_code"  # ... the code it read (``note_eval``)
_OUTCOME_KEY = "debugbroker_eval_outcome"  # ... and how its 200 answer ended (``note_answer``)
_NAME_KEY = "debugbroker_display_name"  # ``display_name``, once worked out
NAME_HEADER = "X-Debugbroker-Name"
MAX_NAME_CHARS = 100
# Every route that runs code ends so: a frame's console and a process console alike.
_EVAL_SUFFIX = "/eval"
_MAX_LIMIT = 1_000
_MAX_AUDITED_CODE = 100_000  # the API refuses longer code; this bounds refused attempts too
_SQLITE_INT = 2**63  # SQLite integers are signed 64-bit
_STORE_EVENT_SECONDS = 1.0  # how often the dashboards hear of a store that cannot write


def display_name(request: web.Request) -> str:
    """The display name a dashboard sent (percent-encoded UTF-8), bounded and printable
    (worked out once per request: an eval's transcript entry and audit row both need it)."""
    name = request.get(_NAME_KEY)
    if not isinstance(name, str):
        raw = unquote(request.headers.get(NAME_HEADER, ""), errors="replace")
        printable = "".join(c for c in raw if unicodedata.category(c)[0] != "C")
        name = request[_NAME_KEY] = printable.strip()[:MAX_NAME_CHARS]
    return name


def note_eval(request: web.Request, code: str) -> None:
    """The eval handler read ``code`` from the body: the audit row need not parse it again."""
    request[_CODE_KEY] = code


def note_answer(request: web.Request, ok: bool, error: str | None) -> None:
    """The eval handler answers 200 with the agent's ``ok`` and ``error``: the audit row's
    outcome, without parsing the answer's body again (other answers are parsed)."""
    request[_OUTCOME_KEY] = ("ok" if ok else "raised", str(error)[:2000] if error else "")


def _small_int(text: str) -> int | None:
    """``text`` as an integer SQLite can store, else None (a hostile index is still logged)."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -_SQLITE_INT <= value < _SQLITE_INT else None


def _is_eval(request: web.Request) -> bool:
    route = request.match_info.route
    resource = route.resource
    if request.method != "POST" or resource is None:
        return False
    return resource.canonical.startswith("/api/") and resource.canonical.endswith(_EVAL_SUFFIX)


async def _code_of(request: web.Request) -> str:
    noted = request.get(_CODE_KEY)
    if isinstance(noted, str):
        return noted[:_MAX_AUDITED_CODE]
    try:
        body = await request.json()
    except Exception:  # unreadable, too big, not JSON: the handler said why
        return ""
    code = body.get("code") if isinstance(body, dict) else None
    return code[:_MAX_AUDITED_CODE] if isinstance(code, str) else ""


def _outcome(request: web.Request, response: web.StreamResponse) -> tuple[str, str]:
    """("ok" | "raised" | "refused" | "failed", detail) from the eval handler's answer."""
    noted = request.get(_OUTCOME_KEY)
    if noted is not None and response.status == 200:
        outcome, detail = noted
        return outcome, detail
    body: Any = None
    if isinstance(response, web.Response) and response.body is not None:
        try:
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            body = None
    error = body.get("error") if isinstance(body, dict) else None
    detail = str(error)[:2000] if error else ""
    if response.status == 200:
        return ("ok" if isinstance(body, dict) and body.get("ok") else "raised"), detail
    kind = "refused" if response.status in (400, 401, 403, 413, 507) else "failed"
    return kind, f"HTTP {response.status}: {detail}"


def audit_middleware(store: Store) -> Middleware:
    """Record every authenticated eval request (runs inside the security middleware)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if ROLE_KEY not in request or not _is_eval(request):
            return await handler(request)
        started = time.time()
        if store.fault is not None:
            # Code runs only once its audit row can be written: not while the store cannot.
            response: web.StreamResponse = json_error(
                507,
                f"the eval was not run: its audit row cannot be written ({store.fault}). "
                "Free space for the broker's data dir; evals run again once the store writes.",
            )
        else:
            response = await handler(request)
        outcome, detail = _outcome(request, response)
        index_text = request.match_info.get("index", "")
        store.queue_audit(
            {
                "at": started,
                "action": "eval",
                "role": request[ROLE_KEY],
                "name": display_name(request),
                "client": request.remote or "",
                "agent_id": request.get(EVAL_AGENT_KEY, request.match_info.get("agent_id", "")),
                "report_id": request.match_info.get("report_id", ""),
                "frame_index": _small_int(index_text),
                "code": await _code_of(request),
                "outcome": outcome,
                "detail": detail,
            }
        )
        # One commit before the answer leaves makes this row and the eval's console
        # transcript entry (queued by the handler) durable together: one trip to the
        # store's thread per eval instead of one per write.
        await store.flush()
        return response

    return middleware


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
