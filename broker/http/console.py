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
from debugbroker.broker.http.api import MAX_CODE_CHARS, RELAY, STORE
from debugbroker.broker.http.audit import EVAL_AGENT_KEY, display_name, note_answer, note_eval
from debugbroker.broker.http.auth import ROLE_KEY, json_error
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.render.masking import mask_for_viewer
from debugbroker.broker.wire import WireResult, wire_json
from debugbroker.protocol import CONSOLE_FRAME_ID

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
        return json_error(409, "the agent did not keep this frame (its memory cap was reached)")
    key = f"reports/{report_id}/frames/{index}"
    return Target(agent_id=targets.agent_id, frame_id=frame_id, key=key)


async def _agent_target(request: web.Request) -> Target | web.Response:
    """The process console of agent ``{agent_id}``, or the answer saying why not."""
    agent_id = request.match_info["agent_id"]
    agent = request.app[RELAY].agents.get(agent_id)
    if agent is None:
        return json_error(404, f"no agent with id {agent_id!r}")
    if not agent.console and request.method == "POST":
        return json_error(
            409,
            "this agent offers no console: wrap the app in DebuggedApplication(app, console=True)",
        )
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


def _released(error: str | None) -> bool:
    return bool(error) and str(error).startswith("frame released")


def _answer(result: WireResult) -> dict[str, Any]:
    """The API's answer: the agent's checked result without ``kind`` and ``request_id``."""
    answer = result.wire.copy()
    del answer["kind"], answer["request_id"]
    return answer


async def _run_eval(request: web.Request, resolve: Resolve) -> web.Response:
    refused = _may_run_code(request)
    if refused is not None:
        return refused
    shape = '{"code": "...", "interactive": false}'
    body = await _json_object(request, MAX_CODE_CHARS, shape)
    if isinstance(body, web.Response):
        return body
    code, interactive = body.get("code"), body.get("interactive", False)
    if not isinstance(code, str) or not isinstance(interactive, bool):
        return json_error(400, f'the body must be JSON with a string "code": {shape}')
    note_eval(request, code)
    if len(code) > MAX_CODE_CHARS:
        return json_error(413, f"code is limited to {MAX_CODE_CHARS} characters")
    if interactive and needs_more_lines(code, interactive=True):
        # Like the interpreter's "...": nothing runs and nothing enters the transcript.
        return web.json_response(
            {"ok": True, "output": "", "result": None, "error": None, "incomplete": True}
            | {"chunks": [], "entry": None}
        )
    target = await resolve(request)
    if isinstance(target, web.Response):
        return target
    request[EVAL_AGENT_KEY] = target.agent_id  # for the audit log
    store, relay = request.app[STORE], request.app[RELAY]
    entry: dict[str, Any] = {
        "target": target.key,
        "author": display_name(request) or ANONYMOUS,
        "code": code,
        "created": time.time(),
        "state": "running",
        "result": None,
        "failure": None,
    }
    # Queued, not awaited: the audit middleware's one commit before the answer leaves
    # stores the entry, its end and the audit row together (and any later read sees them).
    entry["id"] = store.start_console_entry(target.key, entry["author"], code, entry["created"])
    await relay.publish({"type": "console", "entry": entry})
    try:
        result = await relay.requests.evaluate(
            target.agent_id, target.frame_id, code, interactive=interactive
        )
    except EvalFailure as failure:
        await _finish(request, entry, "failed", failure=failure.message)
        return json_error(failure.status, failure.message)
    answer = _answer(result)
    if not answer["ok"] and _released(answer["error"]):
        await _finish(request, entry, "failed", failure=answer["error"])
        return json_error(409, str(answer["error"]))
    note_answer(request, answer["ok"], answer["error"])
    # Encoded once: for the transcript's row and, with the entry's id, for the answer.
    text = wire_json(answer)
    stored = f'{{"result":{text},"failure":null}}'
    await _finish(request, entry, "done", result=answer, stored=stored)
    answered = f'{text[:-1]},"entry":{entry["id"]}}}'  # answer is a non-empty object
    return web.Response(text=answered, content_type="application/json")


async def _finish(
    request: web.Request,
    entry: dict[str, Any],
    state: str,
    *,
    result: dict[str, Any] | None = None,
    failure: str | None = None,
    stored: str | None = None,
) -> None:
    """End the entry: stored (``stored``: its body as JSON text, if encoded already) and
    published."""
    entry.update(state=state, result=result, failure=failure)
    body = stored if stored is not None else {"result": result, "failure": failure}
    request.app[STORE].queue_finish_console_entry(entry["id"], state, body)
    await request.app[RELAY].publish({"type": "console", "entry": entry})


async def _complete(request: web.Request, resolve: Resolve) -> web.Response:
    refused = _may_run_code(request)
    if refused is not None:
        return refused
    body = await _json_object(request, MAX_COMPLETION_TEXT, '{"text": "..."}')
    if isinstance(body, web.Response):
        return body
    text = body.get("text")
    if not isinstance(text, str):
        return json_error(400, 'the body must be JSON with a string "text"')
    if len(text) > MAX_COMPLETION_TEXT:
        return json_error(413, f"text is limited to {MAX_COMPLETION_TEXT} characters")
    target = await resolve(request)
    if isinstance(target, web.Response):
        return target
    try:
        result = await request.app[RELAY].requests.complete(target.agent_id, target.frame_id, text)
    except EvalFailure as failure:
        return json_error(failure.status, failure.message)
    answer = _answer(result)
    if not answer["ok"] and _released(answer["error"]):
        return json_error(409, str(answer["error"]))
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
        return json_error(failure.status, failure.message)
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
