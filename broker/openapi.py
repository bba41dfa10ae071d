"""The OpenAPI 3 description of the broker's HTTP API, served at ``GET /api/openapi.json``.

The description needs no token (it holds no data); everything it describes does. Routes
this module does not describe in detail (added later by other modules) are still listed,
from the live router, with the answers every API route may give, so the description is
never missing a route and the fuzzer (schemathesis, in the tests) reaches all of them.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

__all__ = ["openapi_routes", "build_description", "OPENAPI_PATH", "UNDESCRIBED_TAG"]

OPENAPI_PATH = "/api/openapi.json"
UNDESCRIBED_TAG = "undescribed"  # routes listed from the router, without their own schemas
_JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(_ref("Error"), description)


_COMMON_ERRORS: dict[str, Schema] = {
    "401": _error("no valid token or session cookie"),
    "403": _error("cross-origin request, or a cookie request without Origin"),
    "429": _error("too many failed logins from this client; wait a minute"),
}
_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_NULLABLE_STRING = {"type": "string", "nullable": True}

_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _STRING},
    },
    "ReportSummary": {
        "type": "object",
        "required": ["id", "agent_id", "created", "type_name", "message", "pid", "host", "app"],
        "properties": {
            "id": _STRING,
            "agent_id": _STRING,
            "created": _NUMBER,
            "type_name": _STRING,
            "message": _STRING,
            "pid": _INTEGER,
            "host": _STRING,
            "app": _STRING,
            "url": _NULLABLE_STRING,
        },
    },
    "Report": {
        "type": "object",
        "description": "a captured error (agent/protocol.py Report) plus agent_alive",
        "required": ["id", "agent_id", "created", "type_name", "message", "text", "exceptions"],
        "properties": {
            "id": _STRING,
            "agent_id": _STRING,
            "created": _NUMBER,
            "type_name": _STRING,
            "message": _STRING,
            "text": _STRING,
            "exceptions": {"type": "array", "items": {"type": "object"}},
            "agent_alive": _BOOLEAN,
            "frames_held": _BOOLEAN,
            "frames_released": {"type": "number", "nullable": True},
        },
    },
    "Agent": {
        "type": "object",
        "required": ["agent_id", "pid", "host", "app", "python", "started", "evalex", "alive"],
        "properties": {
            "agent_id": _STRING,
            "pid": _INTEGER,
            "host": _STRING,
            "app": _STRING,
            "python": _STRING,
            "started": _NUMBER,
            "evalex": _BOOLEAN,
            "alive": _BOOLEAN,
            "last_seen": _NUMBER,
            "held_frames": _INTEGER,
            "held_reports": _INTEGER,
            "held_bytes": _INTEGER,
        },
    },
    "EvalInput": {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": {"type": "string", "description": "at most 100000 characters (else 413)"},
            "interactive": {
                "type": "boolean",
                "description": "console input: incomplete statements answer incomplete=true",
            },
        },
    },
    "EvalAnswer": {
        "type": "object",
        "required": ["ok", "output", "result", "error"],
        "properties": {
            "ok": _BOOLEAN,
            "output": _STRING,
            "result": {"type": "object", "nullable": True},
            "error": _NULLABLE_STRING,
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "action", "role", "name", "agent_id", "code", "outcome"],
        "properties": {
            "id": _INTEGER,
            "at": _NUMBER,
            "action": {"type": "string", "enum": ["eval", "agent_admitted", "agent_refused"]},
            "role": _STRING,
            "name": _STRING,
            "client": _STRING,
            "agent_id": _STRING,
            "report_id": _STRING,
            "frame_index": {"type": "integer", "nullable": True},
            "code": _STRING,
            "outcome": _STRING,
            "detail": _STRING,
        },
    },
    "Status": {
        "type": "object",
        "required": ["role", "agents_alive", "relay", "dashboard"],
        "properties": {
            "role": {"type": "string", "enum": ["full", "view"]},
            "agents_alive": _INTEGER,
            "relay": {"type": "object", "additionalProperties": _INTEGER},
            "dashboard": {"type": "object", "additionalProperties": _INTEGER},
        },
    },
}


def _list_of(key: str, item: str) -> Schema:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref(item)}},
    }


def _query(name: str, schema: Schema, description: str, empty: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        "allowEmptyValue": empty,  # ``?before=`` is the same as leaving it out
    }


def _path_parameter(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_ID = {"type": "string", "minLength": 1}
_REPORT_ID = _path_parameter("report_id", _ID)
_OK = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
_ENTRY_ID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")


def _operation(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"summary": summary, "responses": {**responses, **_COMMON_ERRORS}, **extra}


_PATHS: dict[str, dict[str, Schema]] = {
    "/api/reports": {
        "get": _operation(
            "Report summaries, newest first",
            {
                "200": _json(_list_of("reports", "ReportSummary"), "the reports"),
                "400": _error("limit or before is not a number in range"),
            },
            parameters=[
                _LIMIT,
                _query("before", _NUMBER, "only reports created before this", empty=True),
            ],
        )
    },
    "/api/reports/{report_id}": {
        "get": _operation(
            "One report, highlighted, with agent_alive",
            {"200": _json(_ref("Report"), "the report"), "404": _error("no such report")},
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/text": {
        "get": _operation(
            "The plain-text traceback as the app's Python printed it",
            {
                "200": {
                    "description": "the traceback",
                    "content": {"text/plain": {"schema": _STRING}},
                },
                "404": _error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/frames/{index}/eval": {
        "post": _operation(
            "Run code in a frame held by the agent that raised (full token only; audited)",
            {
                "200": _json(_ref("EvalAnswer"), "what the code printed and returned"),
                "400": _error("the body is not JSON with a string code, or a bad index"),
                "404": _error("no such report or frame"),
                "409": _error("the agent no longer holds this frame"),
                "410": _error("the process that raised is gone"),
                "413": _error("code over 100000 characters, or a body over 1 MiB"),
                "503": _error("too many evals running, or the broker is stopping"),
                "504": _error("the agent did not answer in time"),
            },
            parameters=[_REPORT_ID, _path_parameter("index", _INTEGER)],
            requestBody={"required": True, "content": {_JSON: {"schema": _ref("EvalInput")}}},
        )
    },
    "/api/agents/{agent_id}/eval": {
        "post": _operation(
            "Run code in a live process's console (full token only; audited)",
            {
                "200": _json(_ref("EvalAnswer"), "what the code printed and returned"),
                "400": _error("the body is not JSON with a string code"),
                "404": _error("no such agent"),
                "409": _error("the agent offers no console"),
                "410": _error("the process is gone"),
                "413": _error("code over 100000 characters, or a body over 1 MiB"),
                "503": _error("too many evals running, or the broker is stopping"),
                "504": _error("the agent did not answer in time"),
            },
            parameters=[_path_parameter("agent_id", _ID)],
            requestBody={"required": True, "content": {_JSON: {"schema": _ref("EvalInput")}}},
        )
    },
    "/api/reports/{report_id}/share": {
        "post": _operation(
            "Make a read-only share link (full token only)",
            {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["share_id", "path", "url"],
                        "properties": {"share_id": _STRING, "path": _STRING, "url": _STRING},
                    },
                    "the new link",
                ),
                "404": _error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/shares": {
        "get": _operation(
            "The report's live share links",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["shares"],
                        "properties": {"shares": {"type": "array", "items": {"type": "object"}}},
                    },
                    "the links",
                ),
                "404": _error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/shares/{share_id}": {
        "delete": _operation(
            "Revoke a share link at once (full token only)",
            {"200": _json(_OK, "revoked"), "404": _error("no such share link")},
            parameters=[_path_parameter("share_id", _ID)],
        )
    },
    "/api/reports/{report_id}/continue": {
        "post": _operation(
            "Let the thread paused at breakpoint() go on (full token only)",
            {
                "200": _json(_OK, "it goes on"),
                "404": _error("no such report"),
                "409": _error("the report is not paused"),
                "410": _error("the process is gone"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/release": {
        "post": _operation(
            "Drop the report's live frames in its agent (full token only; audited)",
            {
                "200": _json(_OK, "released; evals on its frames now answer 409"),
                "403": _error("a view-only token"),
                "404": _error("no such report"),
                "409": _error("the frames are already released"),
                "410": _error("the process is gone"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/agents": {
        "get": _operation(
            "Agent processes, live ones first",
            {"200": _json(_list_of("agents", "Agent"), "the agents")},
        )
    },
    "/api/status": {
        "get": _operation(
            "Counters of what the broker refused or dropped",
            {"200": _json(_ref("Status"), "the counters")},
        )
    },
    "/api/audit": {
        "get": _operation(
            "The audit log: evals and agent admissions, newest first (full token only)",
            {
                "200": _json(_list_of("entries", "AuditEntry"), "the entries"),
                "400": _error("limit or before is not an integer in range"),
            },
            parameters=[
                _LIMIT,
                _query("before", _ENTRY_ID, "only entries with a smaller id", empty=True),
            ],
        )
    },
    "/session": {
        "get": _operation(
            "The role of the presented credential",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["role"],
                        "properties": {"role": {"type": "string", "enum": ["full", "view"]}},
                    },
                    "the role",
                )
            },
        )
    },
    "/login": {
        "get": {
            "summary": "Log in with ?token=: sets the session cookie and redirects to /",
            "security": [],
            "parameters": [_query("token", _STRING, "the dashboard token")],
            "responses": {
                "302": {"description": "logged in; the cookie is set"},
                "401": {"description": "no or wrong token", "content": {"text/html": {}}},
                "429": {"description": "too many failed logins", "content": {"text/html": {}}},
            },
        }
    },
    OPENAPI_PATH: {
        "get": {
            "summary": "This description",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "the OpenAPI description")},
        }
    },
}
_UNDESCRIBED = {
    "200": {"description": "see docs/api.md", "content": {_JSON: {"schema": {}}}},
    "400": _error("bad input"),
    "404": _error("not found"),
    "409": _error("conflict"),
    "410": _error("the process is gone"),
    "413": _error("too large"),
}
_SKIPPED = {"/api/ws", "/logout", "/"}  # a WebSocket, a form action, the dashboard page


def build_description(router: web.UrlDispatcher) -> dict[str, Any]:
    """The OpenAPI document: the detailed paths above, plus any other route the app has."""
    paths: dict[str, dict[str, Schema]] = {path: dict(ops) for path, ops in _PATHS.items()}
    for route in router.routes():
        resource = route.resource
        path = resource.canonical if resource is not None else ""
        method = route.method.lower()
        if not path.startswith("/api/") or path in _SKIPPED or method in ("head", "*"):
            continue
        if method in paths.get(path, {}):
            continue
        names = re.findall(r"{(\w+)", path)
        paths.setdefault(path, {})[method] = _operation(
            f"{route.method} {path} (see docs/api.md)",
            _UNDESCRIBED,
            tags=[UNDESCRIBED_TAG],
            parameters=[
                _path_parameter(name, _INTEGER if name == "index" else _ID) for name in names
            ],
            **({"requestBody": {"content": {_JSON: {"schema": {}}}}} if method == "post" else {}),
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "debugbroker",
            "version": "1",
            "description": "The broker's HTTP API (docs/api.md). Every route but /login and "
            "this description needs the dashboard token (Bearer) or the session cookie.",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "debugbroker_session"},
            },
        },
        "security": [{"token": []}, {"session": []}],
    }


def openapi_routes() -> list[web.RouteDef]:
    """``GET /api/openapi.json`` (no token needed: the description holds no data)."""

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(build_description(request.app.router))

    return [web.get(OPENAPI_PATH, serve)]
