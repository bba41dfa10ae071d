"""The OpenAPI description's route table: every route described in detail.

Routes missing here are still listed in the description, from the live router (see
``openapi``); the ones here carry their parameters, bodies and every answer they may give.
"""

from __future__ import annotations

from debugbroker.broker.http.openapi_schemas import (
    ID,
    INTEGER,
    JSON,
    NUMBER,
    STRING,
    Schema,
    error,
    json_response,
    list_of,
    operation,
    path_parameter,
    query,
    ref,
)
from debugbroker.broker.http.triage import CLEAR_CONFIRMATION
from debugbroker.broker.store.groups import GROUP_STATES

__all__ = ["OPENAPI_PATH", "PATHS"]

OPENAPI_PATH = "/api/openapi.json"
_REPORT_ID = path_parameter("report_id", ID)
_OK = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
_ENTRY_ID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_FILTER = {"type": "string", "maxLength": 500}
_FINGERPRINT = path_parameter("fingerprint", ID)
_BREAKPOINT_ID = path_parameter("breakpoint_id", ID)
_BREAKPOINT = {
    "type": "object",
    "required": ["breakpoint"],
    "properties": {"breakpoint": ref("Breakpoint")},
}
_GROUP_LIST: Schema = {
    "type": "object",
    "required": ["groups", "total"],
    "properties": {
        "groups": {"type": "array", "items": ref("Group")},
        "total": {"type": "integer", "description": "the groups in that state, all pages"},
    },
}
_LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")


PATHS: dict[str, dict[str, Schema]] = {
    "/api/reports": {
        "get": operation(
            "Report summaries, newest first",
            {
                "200": json_response(list_of("reports", "ReportSummary"), "the reports"),
                "400": error("limit or before is not a number in range, or a bad filter"),
            },
            parameters=[
                _LIMIT,
                query("before", NUMBER, "the created of the previous page's last row", empty=True),
                query(
                    "before_id",
                    {"type": "string", "maxLength": 128},
                    "its id (with before; else ignored): stable pages",
                    empty=True,
                ),
                query("q", _FILTER, "words in the message, traceback, locals or URL", empty=True),
                query("type", _FILTER, "the exception's type name, exactly", empty=True),
                query("path", _FILTER, "a prefix of the request URL's path", empty=True),
                query("agent", _FILTER, "an agent id", empty=True),
                query("fingerprint", _FILTER, "a group's fingerprint", empty=True),
                query("app", _FILTER, "an app name", empty=True),
                query(
                    "state",
                    {"type": "string", "enum": ["", *GROUP_STATES]},
                    "the group's triage state",
                    empty=True,
                ),
                query("since", NUMBER, "created at or after this time", empty=True),
                query("until", NUMBER, "created before this time", empty=True),
            ],
        )
    },
    "/api/reports/{report_id}": {
        "get": operation(
            "One report, highlighted, with agent_alive",
            {"200": json_response(ref("Report"), "the report"), "404": error("no such report")},
            parameters=[_REPORT_ID],
        ),
        "delete": operation(
            "Delete one report; its group still counts it (full token only; audited)",
            {
                "200": json_response(ref("Deleted"), "deleted"),
                "403": error("a view-only token"),
                "404": error("no such report"),
            },
            parameters=[_REPORT_ID],
        ),
    },
    "/api/reports/{report_id}/text": {
        "get": operation(
            "The plain-text traceback as the app's Python printed it",
            {
                "200": {
                    "description": "the traceback",
                    "content": {"text/plain": {"schema": STRING}},
                },
                "404": error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/frames/{index}/eval": {
        "post": operation(
            "Run code in a frame held by the agent that raised (full token only; audited)",
            {
                "200": json_response(ref("EvalAnswer"), "what the code printed and returned"),
                "400": error("the body is not JSON with a string code, or a bad index"),
                "404": error("no such report or frame"),
                "403": error("a view-only token, or evalex=False (reason disabled)"),
                "409": error("the agent no longer holds this frame (reason released)"),
                "410": error("the process that raised is gone (reason gone)"),
                "413": error("code over 100000 characters, or a body over 1 MiB"),
                "502": error("the agent answered with the wrong kind of message (bad_answer)"),
                "503": error("too many evals running (busy), or the broker is stopping"),
                "504": error("the agent did not answer in time (reason timeout)"),
                "507": error("refused: the store cannot write its audit row (a full disk)"),
            },
            parameters=[_REPORT_ID, path_parameter("index", INTEGER)],
            requestBody={"required": True, "content": {JSON: {"schema": ref("EvalInput")}}},
        )
    },
    "/api/agents/{agent_id}/eval": {
        "post": operation(
            "Run code in a live process's console (full token only; audited)",
            {
                "200": json_response(ref("EvalAnswer"), "what the code printed and returned"),
                "400": error("the body is not JSON with a string code"),
                "404": error("no such agent"),
                "403": error("a view-only token, or no console / evalex=False (disabled)"),
                "410": error("the process is gone (reason gone)"),
                "413": error("code over 100000 characters, or a body over 1 MiB"),
                "502": error("the agent answered with the wrong kind of message (bad_answer)"),
                "503": error("too many evals running (busy), or the broker is stopping"),
                "504": error("the agent did not answer in time (reason timeout)"),
                "507": error("refused: the store cannot write its audit row (a full disk)"),
            },
            parameters=[path_parameter("agent_id", ID)],
            requestBody={"required": True, "content": {JSON: {"schema": ref("EvalInput")}}},
        )
    },
    "/api/reports/{report_id}/share": {
        "post": operation(
            "Make a read-only share link (full token only)",
            {
                "201": json_response(
                    {
                        "type": "object",
                        "required": ["share_id", "path", "url"],
                        "properties": {"share_id": STRING, "path": STRING, "url": STRING},
                    },
                    "the new link",
                ),
                "404": error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/shares": {
        "get": operation(
            "The report's live share links",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["shares"],
                        "properties": {"shares": {"type": "array", "items": {"type": "object"}}},
                    },
                    "the links",
                ),
                "404": error("no such report"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/shares/{share_id}": {
        "delete": operation(
            "Revoke a share link at once (full token only)",
            {"200": json_response(_OK, "revoked"), "404": error("no such share link")},
            parameters=[path_parameter("share_id", ID)],
        )
    },
    "/api/reports/{report_id}/continue": {
        "post": operation(
            "Let the thread paused at breakpoint() go on (full token only; audited)",
            {
                "200": json_response(_OK, "it goes on"),
                "404": error("no such report"),
                "403": error("a view-only token"),
                "409": error("the report is not paused (reason not_paused)"),
                "410": error("the process is gone (reason gone)"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/reports/{report_id}/step": {
        "post": operation(
            "The paused thread takes a step and pauses again (full token only; audited)",
            {
                "200": json_response(_OK, "sent; the next stop is a report whose step_of is this"),
                "400": error("the action or line is not valid"),
                "403": error("a view-only token, or evalex=False in the agent"),
                "404": error("no such report"),
                "409": error("the report is not paused"),
                "410": error("the process is gone"),
            },
            parameters=[_REPORT_ID],
            requestBody={
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["action"],
                            "properties": {
                                "action": {
                                    "type": "string",
                                    "enum": ["over", "into", "out", "until", "continue"],
                                },
                                "line": {**INTEGER, "minimum": 0, "maximum": 10_000_000},
                            },
                        }
                    }
                },
            },
        )
    },
    "/api/breakpoints": {
        "get": operation(
            "Every breakpoint set from the dashboard, with its state in each agent",
            {"200": json_response(list_of("breakpoints", "Breakpoint"), "the breakpoints")},
        ),
        "post": operation(
            "Set a breakpoint for every agent of an app, or one agent (full token; audited)",
            {
                "201": json_response(_BREAKPOINT, "set, and sent to its live agents"),
                "400": error("a bad file, line, scope, condition or hit count"),
                "403": error("a view-only token"),
                "404": error("no such agent (agent_id)"),
                "409": error("the app has the most breakpoints it may have"),
            },
            requestBody={"required": True, "content": {JSON: {"schema": ref("BreakpointInput")}}},
        ),
    },
    "/api/breakpoints/{breakpoint_id}": {
        "patch": operation(
            "Enable, disable, or change a breakpoint's condition or hit count (audited)",
            {
                "200": json_response(_BREAKPOINT, "changed, and sent to its live agents"),
                "400": error("nothing to change, or a bad condition or hit count"),
                "403": error("a view-only token"),
                "404": error("no such breakpoint"),
            },
            parameters=[_BREAKPOINT_ID],
            requestBody={"required": True, "content": {JSON: {"schema": ref("BreakpointChange")}}},
        ),
        "delete": operation(
            "Remove a breakpoint from the broker and its agents (full token; audited)",
            {
                "200": json_response(_OK, "removed"),
                "403": error("a view-only token"),
                "404": error("no such breakpoint"),
            },
            parameters=[_BREAKPOINT_ID],
        ),
    },
    "/api/reports/{report_id}/release": {
        "post": operation(
            "Drop the report's live frames in its agent (full token only; audited)",
            {
                "200": json_response(_OK, "released; evals on its frames now answer 409"),
                "403": error("a view-only token"),
                "404": error("no such report"),
                "409": error("the frames are already released (reason released)"),
                "410": error("the process is gone (reason gone)"),
            },
            parameters=[_REPORT_ID],
        )
    },
    "/api/groups": {
        "get": operation(
            "Groups of repeated errors (fingerprints), most recently seen first",
            {
                "200": json_response(_GROUP_LIST, "a page of the groups, and how many in all"),
                "400": error("limit or before is not a number in range, or an unknown state"),
            },
            parameters=[
                _LIMIT,
                query(
                    "state",
                    {"type": "string", "enum": ["", "attention", *GROUP_STATES]},
                    "only groups in this state as shown (attention: open or regressed)",
                    empty=True,
                ),
                query("before", NUMBER, "the previous page's last last_seen", empty=True),
                query(
                    "before_key",
                    {"type": "string", "maxLength": 128},
                    "its fingerprint (with before): stable pages",
                    empty=True,
                ),
            ],
        )
    },
    "/api/groups/{fingerprint}/state": {
        "post": operation(
            "Resolve, reopen, ignore or mute a group (full token only; audited)",
            {
                "200": json_response(_OK, "the new state"),
                "400": error("not a state, or a mute without minutes or occurrences"),
                "403": error("a view-only token"),
                "404": error("no such group"),
            },
            parameters=[_FINGERPRINT],
            requestBody={"required": True, "content": {JSON: {"schema": ref("GroupState")}}},
        )
    },
    "/api/groups/{fingerprint}": {
        "delete": operation(
            "Delete a group, its counts and its reports (full token only; audited)",
            {
                "200": json_response(ref("Deleted"), "how many reports went"),
                "403": error("a view-only token"),
                "404": error("no such group"),
            },
            parameters=[_FINGERPRINT],
        )
    },
    "/api/clear": {
        "post": operation(
            "Delete every report, group and share link (full token only; audited)",
            {
                "200": json_response(ref("Deleted"), "how many reports went"),
                "400": error(f'the body is not {{"confirm": "{CLEAR_CONFIRMATION}"}}'),
                "403": error("a view-only token"),
            },
            requestBody={
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["confirm"],
                            "properties": {
                                "confirm": {"type": "string", "enum": [CLEAR_CONFIRMATION]}
                            },
                        }
                    }
                },
            },
        )
    },
    "/api/agents": {
        "get": operation(
            "Agent processes, live ones first",
            {"200": json_response(list_of("agents", "Agent"), "the agents")},
        )
    },
    "/api/status": {
        "get": operation(
            "Counters of what the broker refused or dropped, and what its store could not write",
            {"200": json_response(ref("Status"), "the counters")},
        )
    },
    "/api/audit": {
        "get": operation(
            "The audit log: evals and agent admissions, newest first (full token only)",
            {
                "200": json_response(list_of("entries", "AuditEntry"), "the entries"),
                "400": error("limit or before is not an integer in range"),
            },
            parameters=[
                _LIMIT,
                query("before", _ENTRY_ID, "only entries with a smaller id", empty=True),
            ],
        )
    },
    "/session": {
        "get": operation(
            "The role of the presented credential",
            {
                "200": json_response(
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
            "summary": "Sends browsers to the dashboard's login form (a token in the URL is "
            "never read)",
            "security": [],
            "responses": {"303": {"description": "to /"}},
        },
        "post": {
            "summary": "Log in with the token or a one-time code: opens a session (sets the "
            "session cookie) and answers its key, for the X-Debugbroker-Key header",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"token": STRING, "code": STRING},
                        }
                    }
                },
            },
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["role", "key"],
                        "properties": {
                            "role": {"type": "string", "enum": ["full", "view"]},
                            "key": STRING,
                        },
                    },
                    "logged in: the cookie is set; send the key with every state change",
                ),
                "400": error("the body is not JSON with a token or a code"),
                "401": error("wrong token, or a used or expired code"),
                "403": error("a cross-origin request"),
                "429": error("too many failed attempts from this client; see Retry-After"),
            },
        },
    },
    "/logout": {
        "post": {
            "summary": "End the session of the cookie sent (it no longer works anywhere)",
            "security": [],
            "responses": {
                "200": json_response(
                    {"type": "object", "properties": {"ok": {"type": "boolean"}}}, "logged out"
                ),
                "403": error("a cross-origin request"),
            },
        }
    },
    "/api/login-codes": {
        "post": operation(
            "A one-time login URL for a browser (the caller's role; works once, for minutes)",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["code", "url", "role", "expires_in"],
                        "properties": {
                            "code": STRING,
                            "url": STRING,
                            "role": {"type": "string", "enum": ["full", "view"]},
                            "expires_in": NUMBER,
                        },
                    },
                    "the code and the URL that uses it",
                )
            },
        )
    },
    OPENAPI_PATH: {
        "get": {
            "summary": "This description",
            "security": [],
            "responses": {"200": json_response({"type": "object"}, "the OpenAPI description")},
        }
    },
}
