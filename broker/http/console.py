"""The console API: evals, completion and interrupts, and the shared transcript of each console.

A console lives on a frame of a report (``reports/{id}/frames/{index}``) or, when the agent
offers one, on a live process (``agents/{agent_id}``). Every eval is a transcript entry: it
is stored when it starts (state ``running``) and again when it ends (``done`` or
``failed``), and both moments are published on the WebSocket as
``{"type": "console", "entry": ...}``, so everyone looking at the console sees the same
transcript, each entry tagged with its author's display name (``X-Debugbroker-Name``, the
header the audit log records too). ``GET .../transcript`` gives it back after a reload.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from debugbroker.agent.evals.language import needs_more_lines
from debugbroker.broker.http.api import MAX_CODE_CHARS, RELAY, STORE, failure_error
from debugbroker.broker.http.audit import (
    audit_action,
    audit_outcome,
    audit_refusal,
    display_name,
    store_refusal,
    unaudited,
)
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.render.masking import mask_for_viewer
from debugbroker.broker.wire import WireResult, wire_json
from debugbroker.protocol import CONSOLE_FRAME_ID, DISABLED, RELEASED, EvalResult, to_wire

__all__ = ["console_routes", "Target", "MAX_COMPLETION_TEXT", "ANONYMOUS"]

MAX_COMPLETION_TEXT = 10_000
ANONYMOUS = "anonymous"
_TRANSCRIPT_LIMIT = 200
_MAX_TRANSCRIPT_LIMIT = 500
Resolve = Callable[[web.Request], Awaitable["Target | web.Response"]]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a console's code runs: an agent, the frame id it holds, the transcript key."""

    agent_id: str
    frame_id: str
    key: str


async def _frame_target(request: web.Request) -> Target | web.Response:
    """The frame ``{index}`` of report ``{report_id}``, or the answer saying why not."""
    try:
        index = int(request.match_info["index"])
    except ValueError:
        return json_error(400, "the frame index must be an integer")
    report_id = request.match_info["report_id"]
    targets = await request.app[STORE].get_frame_targets(report_id)
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


async def _agent_target(request: web.Request) -> Target | web.Response:
    """The process console of agent ``{agent_id}``, or the answer saying why not."""
    agent_id = request.match_info["agent_id"]
    agent = request.app[RELAY].agents.get(agent_id)
    if agent is None:
        return json_error(404, f"no agent with id {agent_id!r}")
    if not agent.console and request.method == "POST":
        no_console = (
            "this agent offers no console: wrap the app in DebuggedApplication(app, console=True)"
        )
        return failure_error(EvalFailure(DISABLED, no_console))
    return Target(agent_id=agent_id, frame_id=CONSOLE_FRAME_ID, key=f"agents/{agent_id}")


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


def _may_run_code(request: web.Request) -> web.Response | None:
    if request[ROLE_KEY] != "full":
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


async def _read_code(
    request: web.Request, limit: int, field: str, shape: str
) -> tuple[str, dict[str, Any] | web.Response]:
    """The string ``field`` of the JSON body (for the audit row, "" if none) and the body,
    or the answer refusing it (role, body, size)."""
    body = await _json_object(request, limit, shape)
    code = body.get(field) if isinstance(body, dict) else None
    text = code if isinstance(code, str) else ""
    refused = _may_run_code(request)
    if refused is not None:
        return text, refused
    if isinstance(body, web.Response):
        return text, body
    if not isinstance(code, str):
        return text, json_error(400, f'the body must be JSON with a string "{field}": {shape}')
    if len(code) > limit:
        return text, json_error(413, f"{field} is limited to {limit} characters")
    return text, body


async def _run_eval(request: web.Request, resolve: Resolve) -> web.Response:
    store, relay = request.app[STORE], request.app[RELAY]
    unwritable = await store_refusal(store, request, "eval")
    if unwritable is not None:  # code runs only once its audit row can be written
        return unwritable
    shape = '{"code": "...", "interactive": false}'
    code, body = await _read_code(request, MAX_CODE_CHARS, "code", shape)
    if isinstance(body, web.Response):
        return await audit_refusal(store, request, "eval", body, code=code)
    interactive = body.get("interactive", False)
    if not isinstance(interactive, bool):
        refused = json_error(400, f'"interactive" must be true or false: {shape}')
        return await audit_refusal(store, request, "eval", refused, code=code)
    if interactive and needs_more_lines(code, interactive=True):
        # Like the interpreter's "...": nothing runs and nothing enters the transcript (the
        # block is audited when it is complete and runs).
        return web.json_response(_INCOMPLETE)
    target = await resolve(request)
    if isinstance(target, web.Response):
        return await audit_refusal(store, request, "eval", target, code=code)
    entry: dict[str, Any] = {
        "target": target.key,
        "author": display_name(request) or ANONYMOUS,
        "code": code,
        "created": time.time(),
        "state": "running",
        "result": None,
        "failure": None,
    }
    # Queued: committed with the audit row, before the code is sent to the agent.
    entry["id"] = store.start_console_entry(target.key, entry["author"], code, entry["created"])
    row = await audit_action(store, request, "eval", code=code, agent_id=target.agent_id)
    if row is None:  # the disk filled just now: nothing runs without its audit row
        message = unaudited(store)
        await _finish(request, entry, "failed", failure=message)
        return json_error(507, message)
    await relay.publish({"type": "console", "entry": entry})
    try:
        result = await relay.requests.evaluate(
            target.agent_id, target.frame_id, code, interactive=interactive
        )
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        await _finish(request, entry, "failed", failure=failure.message)
        return failure_error(failure)
    answer = _answer(result)
    audit_outcome(store, row, "ok" if answer["ok"] else "raised", str(answer["error"] or ""))
    stored = wire_json({"result": answer, "failure": None})
    await _finish(request, entry, "done", result=answer, stored=stored)
    answer["entry"] = entry["id"]
    return web.Response(text=wire_json(answer), content_type="application/json")


async def _finish(
    request: web.Request,
    entry: dict[str, Any],
    state: str,
    *,
    result: dict[str, Any] | None = None,
    failure: str | None = None,
    stored: str | None = None,
) -> None:
    """End the entry: stored (``stored``: its body as JSON text, if encoded already),
    committed with the audit row's outcome, and published."""
    entry.update(state=state, result=result, failure=failure)
    body = stored if stored is not None else {"result": result, "failure": failure}
    store = request.app[STORE]
    store.queue_finish_console_entry(entry["id"], state, body)
    await store.flush()  # an answered eval survives a broker killed right after
    await request.app[RELAY].publish({"type": "console", "entry": entry})


async def _complete(request: web.Request, resolve: Resolve) -> web.Response:
    store = request.app[STORE]
    unwritable = await store_refusal(store, request, "complete")
    if unwritable is not None:
        return unwritable
    text, body = await _read_code(request, MAX_COMPLETION_TEXT, "text", '{"text": "..."}')
    if isinstance(body, web.Response):
        return await audit_refusal(store, request, "complete", body, code=text)
    target = await resolve(request)
    if isinstance(target, web.Response):
        return await audit_refusal(store, request, "complete", target, code=text)
    row = await audit_action(store, request, "complete", code=text, agent_id=target.agent_id)
    if row is None:
        return json_error(507, unaudited(store))
    try:
        result = await request.app[RELAY].requests.complete(target.agent_id, target.frame_id, text)
    except EvalFailure as failure:
        audit_outcome(store, row, "failed", f"HTTP {failure.status}: {failure.message}")
        return failure_error(failure)
    answer = _answer(result)
    audit_outcome(store, row, "ok" if answer["ok"] else "raised", str(answer["error"] or ""))
    return web.json_response(answer)


async def _interrupt(request: web.Request, resolve: Resolve) -> web.Response:
    refused = _may_run_code(request)
    if refused is not None:
        return refused
    target = await resolve(request)
    if isinstance(target, web.Response):
        return target
    try:
        result = await request.app[RELAY].requests.interrupt(target.agent_id, target.frame_id)
    except EvalFailure as failure:
        return failure_error(failure)
    return web.json_response({"interrupted": result.interrupted})


async def _transcript(request: web.Request, resolve: Resolve) -> web.Response:
    try:
        limit = int(request.query.get("limit", str(_TRANSCRIPT_LIMIT)))
    except ValueError:
        return json_error(400, "limit must be an integer")
    if limit < 1 or limit > _MAX_TRANSCRIPT_LIMIT:
        return json_error(400, f"limit must be between 1 and {_MAX_TRANSCRIPT_LIMIT}")
    target = await resolve(request)
    if isinstance(target, web.Response):
        return target
    entries = await request.app[STORE].list_console_entries(target.key, limit)
    if request[ROLE_KEY] != "full":  # readers who may not run code get secrets masked
        entries = mask_for_viewer(entries)
    return web.json_response({"entries": entries})


def _bind(
    action: Callable[[web.Request, Resolve], Awaitable[web.Response]], resolve: Resolve
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return await action(request, resolve)

    handler.__doc__ = action.__doc__
    return handler


def console_routes() -> list[web.RouteDef]:
    """The console routes of frames and of agents' process consoles (docs/api.md)."""
    routes = []
    for base, resolve in (
        ("/api/reports/{report_id}/frames/{index}", _frame_target),
        ("/api/agents/{agent_id}", _agent_target),
    ):
        routes += [
            web.post(f"{base}/eval", _bind(_run_eval, resolve)),
            web.post(f"{base}/complete", _bind(_complete, resolve)),
            web.post(f"{base}/interrupt", _bind(_interrupt, resolve)),
            web.get(f"{base}/transcript", _bind(_transcript, resolve)),
        ]
    return routes
