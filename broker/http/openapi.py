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

from debugbroker.broker.http.openapi_paths import OPENAPI_PATH, PATHS
from debugbroker.broker.http.openapi_schemas import (
    ID,
    INTEGER,
    JSON,
    SCHEMAS,
    Schema,
    error,
    operation,
    path_parameter,
)

__all__ = ["openapi_routes", "build_description", "OPENAPI_PATH", "UNDESCRIBED_TAG"]

UNDESCRIBED_TAG = "undescribed"  # routes listed from the router, without their own schemas
_UNDESCRIBED = {
    "200": {"description": "see docs/api.md", "content": {JSON: {"schema": {}}}},
    "400": error("bad input"),
    "404": error("not found"),
    "409": error("conflict"),
    "410": error("the process is gone"),
    "413": error("too large"),
    "422": error("the value cannot be shown"),
    "502": error("the agent answered with the wrong kind of message"),
    "503": error("busy, or the broker is stopping"),
    "504": error("the agent did not answer in time"),
}
_SKIPPED = {"/api/ws", "/logout", "/"}  # a WebSocket, a form action, the dashboard page


def build_description(
    router: web.UrlDispatcher, cookie_name: str = "debugbroker_session_<instance>"
) -> dict[str, Any]:
    """The OpenAPI document: the detailed paths (``openapi_paths``) and every other route."""
    paths: dict[str, dict[str, Schema]] = {path: dict(ops) for path, ops in PATHS.items()}
    for route in router.routes():
        resource = route.resource
        path = resource.canonical if resource is not None else ""
        method = route.method.lower()
        if not path.startswith("/api/") or path in _SKIPPED or method in ("head", "*"):
            continue
        if method in paths.get(path, {}):
            continue
        names = re.findall(r"{(\w+)", path)
        paths.setdefault(path, {})[method] = operation(
            f"{route.method} {path} (see docs/api.md)",
            _UNDESCRIBED,
            tags=[UNDESCRIBED_TAG],
            parameters=[path_parameter(name, INTEGER if name == "index" else ID) for name in names],
            **({"requestBody": {"content": {JSON: {"schema": {}}}}} if method == "post" else {}),
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "debugbroker",
            "version": "1",
            "description": "The broker's HTTP API (docs/api.md). Every route but /login, "
            "/logout and this description needs the dashboard token (Bearer) or the session "
            "cookie; with the cookie, every POST also needs the session's key in the "
            "X-Debugbroker-Key header (the answer of POST /login).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie_name,
                    "description": "set by POST /login; POSTs also need sessionKey",
                },
                "sessionKey": {"type": "apiKey", "in": "header", "name": "X-Debugbroker-Key"},
            },
        },
        "security": [{"token": []}, {"session": []}],
    }


def openapi_routes(cookie_name: str) -> list[web.RouteDef]:
    """``GET /api/openapi.json`` (no token needed: the description holds no data)."""

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(build_description(request.app.router, cookie_name))

    return [web.get(OPENAPI_PATH, serve)]
