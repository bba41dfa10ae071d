from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from debugbroker.agent.evals.language import needs_more_lines
from debugbroker.broker.http.api import MAX_CODE_CHARS, RELAY, STORE, failure_error
from debugbroker.broker.http.audit import (
    audit_outcome,
    caller_of,
    clean_name,
    record_action,
    record_refusal,
    refuse_unwritable,
    unaudited,
)
from debugbroker.broker.http.auth import Caller, json_error
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.render.masking import mask_for_viewer
from debugbroker.broker.wire import WireResult, wire_json
from debugbroker.protocol import CONSOLE_FRAME_ID, DISABLED, RELEASED, EvalResult, to_wire

__all__ = [
    "console_routes",
    "console_command",
    "run_eval",
    "run_complete",
    "Target",
    "MAX_COMPLETION_TEXT",
    "ANONYMOUS",
]

MAX_COMPLETION_TEXT = 10_000
ANONYMOUS = "anonymous"
_TRANSCRIPT_LIMIT = 200
_MAX_TRANSCRIPT_LIMIT = 500
# Where a console is, by the route's names: ``report_id`` and ``index``, or ``agent_id``.
Where = Mapping[str, str]
_EVAL_SHAPE = '{"code": "...", "interactive": false}'
_COMPLETE_SHAPE = '{"text": "..."}'


@dataclass(frozen=True, slots=True)
class Target:
    """Where a console's code runs: an agent, the frame id it holds, the transcript key."""

    agent_id: str
    frame_id: str
    key: str


async def _frame_target(app: web.Application, where: Where) -> Target | web.Response:
    """The frame ``index`` of report ``report_id``, or the answer saying why not."""
    try:
        index = int(where["index"])
    except ValueError:
        return json_error(400, "the frame index must be an integer")
    report_id = where["report_id"]
    targets = await app[STORE].get_frame_targets(report_id)
    if targets is None:
        return json_error(404, f"no report with id {report_id!r}")
    frame_id = targets.frame_ids.get(index)
    if frame_id is None:
        return json_error(404, f"report {report_id} has no frame {index}")
    if not frame_id:
        not_kept = "the agent did not keep this frame (its memory cap was reached)"
        return failure_error(EvalFailure(RELEASED, not_kept))
    key = f"reports/{report_id}/frames/{index}"
    return Target(agent_id=targets.agent_id, frame_id=frame_id, key=key)


async def _agent_target(app: web.Application, where: Where, runs: bool) -> Target | web.Response:
    """The process console of agent ``agent_id``, or the answer saying why not (``runs``:
    for code to run, which needs the agent to offer a console)."""
    agent_id = where["agent_id"]
    agent = app[RELAY].agents.get(agent_id)
    if agent is None:
        return json_error(404, f"no agent with id {agent_id!r}")
    if not agent.console and runs:
        no_console = (
            "this agent offers no console: wrap the app in DebuggedApplication(app, console=True)"
        )
        return failure_error(EvalFailure(DISABLED, no_console))
    return Target(agent_id=agent_id, frame_id=CONSOLE_FRAME_ID, key=f"agents/{agent_id}")


async def _resolve(app: web.Application, where: Where, *, runs: bool) -> Target | web.Response:
    if "agent_id" in where:
        return await _agent_target(app, where, runs)
    return await _frame_target(app, where)


async def _json_object(
    request: web.Request, limit: int, shape: str
) -> dict[str, Any] | web.Response:
    if request.content_length is not None and request.content_length > limit * 4 + 1024:
        return json_error(413, f"the body is limited to {limit} characters")
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, f"the body must be JSON: {shape}")
    if not isinstance(body, dict):
        return json_error(400, f"the body must be a JSON object: {shape}")
    return body


def _may_run_code(caller: Caller) -> web.Response | None:
    if caller.role != "full":
        return json_error(403, "this token may read reports but not run code")
    return None


def _answer(result: WireResult) -> dict[str, Any]:
    """The API's answer: the agent's checked result without ``kind`` and ``request_id``."""
    answer = result.wire.copy()
    del answer["kind"], answer["request_id"]
    return answer


# Interactive input that needs more lines: nothing ran, no transcript entry (``entry`` null).
_INCOMPLETE = {
    key: value
    for key, value in to_wire(EvalResult(request_id="", ok=True, incomplete=True)).items()
    if key not in ("kind", "request_id")
} | {"entry": None}


def _read_code(
    caller: Caller, body: dict[str, Any] | web.Response, limit: int, field: str, shape: str
) -> tuple[str, dict[str, Any] | web.Response]:
    """The string ``field`` of the JSON body (for the audit row, "" if none) and the body,
    or the answer refusing it (role, body, size)."""
    code = body.get(field) if isinstance(body, dict) else None
    text = code if isinstance(code, str) else ""
    refused = _may_run_code(caller)
    if refused is not None:
        return text, refused
    if isinstance(body, web.Response):
        return text, body
    if not isinstance(code, str):
        return text, json_error(400, f'the body must be JSON with a string "{field}": {shape}')
    if len(code) > limit:
        return text, json_error(413, f"{field} is limited to {limit} characters")
    return text, body


async def run_eval(
    app: web.Application,
    caller: Caller,
    where: Where,
    body: dict[str, Any] | web.Response,
    *,
    answer_first: bool = False,
) -> web.Response:
    """Run an eval in a console, whatever it came by (``POST .../eval`` or the dashboard's
    WebSocket): ``body`` is the request's JSON object, or the answer refusing it already.

    The audit row is durable before the code is sent to the agent (nothing runs without
    its audit row: ``Store.start_audit`` appends it to the audit journal). The transcript
    entry, its end and the row's outcome are committed together: before the answer (the
    HTTP API: an answered eval survives a broker killed right after), or with
    ``answer_first`` (the dashboard's WebSocket) in the store's next batch, at most 50 ms
    after the answer; a broker killed in between keeps the audit row (outcome ``running``)
    and loses the transcript entry."""
    store, relay = app[STORE], app[RELAY]
    unwritable = await refuse_unwritable(store, caller, where, "eval")
    if unwritable is not None:  # code runs only once its audit row can be written
        return unwritable
    code, body = _read_code(caller, body, MAX_CODE_CHARS, "code", _EVAL_SHAPE)
    if isinstance(body, web.Response):
        return await record_refusal(store, caller, where, "eval", body, code=code)
    interactive = body.get("interactive", False)
    if not isinstance(interactive, bool):
        refused = json_error(400, f'"interactive" must be true or false: {_EVAL_SHAPE}')
        return await record_refusal(store, caller, where, "eval", refused, code=code)
    if interactive and needs_more_lines(code, interactive=True):
        # Like the interpreter's "...": nothing runs and nothing enters the transcript (the
        # block is audited when it is complete and runs).
        return web.json_response(_INCOMPLETE)
    target = await _resolve(app, where, runs=True)
    if isinstance(target, web.Response):
        return await record_refusal(store, caller, where, "eval", target, code=code)
    # Durable before the code is sent to the agent (the audit journal).
    row = await record_action(store, caller, where, "eval", code=code, agent_id=target.agent_id)
    entry: dict[str, Any] = {
        "target": target.key,
        "author": caller.name or ANONYMOUS,
        "code": code,
        "created": time.time(),
        "state": "running",
        "result": None,
        "failure": None,
    }
    # Queued: its insert takes its end while it waits (one INSERT, committed with the end).
    entry["id"] = store.start_console_entry(target.key, entry["author"], code, entry["created"])
    if row is None:  # the disk filled just now: nothing runs without its audit row
        message = unaudited(store)
        await _finish(app, entry, "failed", failure=message)
        return json_error(507, message)
    await relay.publish({"type": "console", "entry": entry})
    try:
        result = await relay.requests.evaluate(
            target.agent_id, target.frame_id, code, interactive=interactive
        )
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        await _finish(app, entry, "failed", failure=failure.message)
        return failure_error(failure)
    answer = _answer(result)
    audit_outcome(store, row, "ok" if answer["ok"] else "raised", str(answer["error"] or ""))
    stored = wire_json({"result": answer, "failure": None})
    await _finish(app, entry, "done", result=answer, stored=stored, answer_first=answer_first)
    answer["entry"] = entry["id"]
    return web.Response(text=wire_json(answer), content_type="application/json")


async def _finish(
    app: web.Application,
    entry: dict[str, Any],
    state: str,
    *,
    result: dict[str, Any] | None = None,
    failure: str | None = None,
    stored: str | None = None,
    answer_first: bool = False,
) -> None:
    """End the entry: stored (``stored``: its body as JSON text, if encoded already),
    committed with the audit row's outcome (now, or with ``answer_first`` in the store's
    next batch), and published."""
    entry.update(state=state, result=result, failure=failure)
    body = stored if stored is not None else {"result": result, "failure": failure}
    store = app[STORE]
    store.queue_finish_console_entry(entry["id"], state, body)
    if not answer_first:  # else committed with the next batch, at most 50 ms later
        await store.flush()  # an answered eval survives a broker killed right after
    await app[RELAY].publish({"type": "console", "entry": entry})


async def run_complete(
    app: web.Application, caller: Caller, where: Where, body: dict[str, Any] | web.Response
) -> web.Response:
    """Completions in a console, whatever they came by (``POST .../complete`` or the
    WebSocket); audited before the agent is asked (it may run ``__getattr__``)."""
    store = app[STORE]
    unwritable = await refuse_unwritable(store, caller, where, "complete")
    if unwritable is not None:
        return unwritable
    text, body = _read_code(caller, body, MAX_COMPLETION_TEXT, "text", _COMPLETE_SHAPE)
    if isinstance(body, web.Response):
        return await record_refusal(store, caller, where, "complete", body, code=text)
    target = await _resolve(app, where, runs=True)
    if isinstance(target, web.Response):
        return await record_refusal(store, caller, where, "complete", target, code=text)
    row = await record_action(store, caller, where, "complete", code=text, agent_id=target.agent_id)
    if row is None:
        return json_error(507, unaudited(store))
    try:
        result = await app[RELAY].requests.complete(target.agent_id, target.frame_id, text)
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        return failure_error(failure)
    answer = _answer(result)
    audit_outcome(store, row, "ok" if answer["ok"] else "raised", str(answer["error"] or ""))
    return web.Response(text=wire_json(answer), content_type="application/json")


async def _http_eval(request: web.Request) -> web.Response:
    body = await _json_object(request, MAX_CODE_CHARS, _EVAL_SHAPE)
    return await run_eval(request.app, caller_of(request), request.match_info, body)


async def _http_complete(request: web.Request) -> web.Response:
    body = await _json_object(request, MAX_COMPLETION_TEXT, _COMPLETE_SHAPE)
    return await run_complete(request.app, caller_of(request), request.match_info, body)


async def _interrupt(request: web.Request) -> web.Response:
    refused = _may_run_code(caller_of(request))
    if refused is not None:
        return refused
    target = await _resolve(request.app, request.match_info, runs=True)
    if isinstance(target, web.Response):
        return target
    try:
        result = await request.app[RELAY].requests.interrupt(target.agent_id, target.frame_id)
    except EvalFailure as failure:
        return failure_error(failure)
    return web.json_response({"interrupted": result.interrupted})


async def _transcript(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", str(_TRANSCRIPT_LIMIT)))
    except ValueError:
        return json_error(400, "limit must be an integer")
    if limit < 1 or limit > _MAX_TRANSCRIPT_LIMIT:
        return json_error(400, f"limit must be between 1 and {_MAX_TRANSCRIPT_LIMIT}")
    target = await _resolve(request.app, request.match_info, runs=False)
    if isinstance(target, web.Response):
        return target
    entries = await request.app[STORE].list_console_entries(target.key, limit)
    if caller_of(request).role != "full":  # readers who may not run code get secrets masked
        entries = mask_for_viewer(entries)
    return web.json_response({"entries": entries})


def _where_of(console: str) -> dict[str, str] | None:
    """The route names of a console path (``reports/{id}/frames/{index}``, ``agents/{id}``)."""
    parts = [unquote(part) for part in console.split("/")]
    if len(parts) == 4 and parts[0] == "reports" and parts[2] == "frames" and parts[1]:
        return {"report_id": parts[1], "index": parts[3]}
    if len(parts) == 2 and parts[0] == "agents" and parts[1]:
        return {"agent_id": parts[1]}
    return None


ConsoleCommand = Callable[[Caller, dict[str, Any]], Awaitable[tuple[int, str]]]


def console_command(app: web.Application) -> ConsoleCommand:
    """What the dashboard's WebSocket calls for an ``eval`` or ``complete`` message of a tab
    that proved its session: the same ``run_eval``/``run_complete`` as the HTTP routes, with
    the message as the body; ``(HTTP status, JSON answer)`` as the route would answer."""

    async def command(caller: Caller, message: dict[str, Any]) -> tuple[int, str]:
        console = message.get("console")
        where = _where_of(console) if isinstance(console, str) else None
        if where is None:
            error = 'a console message needs "console": "reports/{id}/frames/{n}" | "agents/{id}"'
            return 400, wire_json({"error": error})
        name = message.get("name", "")
        name = clean_name(name) if isinstance(name, str) else ""
        caller = Caller(caller.role, name, caller.client)
        if message.get("type") == "eval":
            # Answered first, its transcript entry and the audit outcome committed in the
            # store's next batch (``run_eval``): no commit on the round trip.
            response = await run_eval(app, caller, where, message, answer_first=True)
        else:
            response = await run_complete(app, caller, where, message)
        body = response.body
        text = bytes(body).decode() if isinstance(body, (bytes, bytearray)) else "{}"
        return response.status, text

    return command


def console_routes() -> list[web.RouteDef]:
    """The console routes of frames and of agents' process consoles (docs/api.md)."""
    routes = []
    for base in ("/api/reports/{report_id}/frames/{index}", "/api/agents/{agent_id}"):
        routes += [
            web.post(f"{base}/eval", _http_eval),
            web.post(f"{base}/complete", _http_complete),
            web.post(f"{base}/interrupt", _interrupt),
            web.get(f"{base}/transcript", _transcript),
        ]
    return routes
