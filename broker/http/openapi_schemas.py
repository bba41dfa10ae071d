"""The OpenAPI description's building blocks: the component schemas and their helpers.

The data shapes the API answers with (``SCHEMAS``, under ``#/components/schemas``) and
small builders of OpenAPI objects the route table (``openapi_paths``) is written with.
"""

from __future__ import annotations

from typing import Any

from debugbroker.protocol import FAILURE_REASONS

__all__ = [
    "BOOLEAN",
    "COMMON_ERRORS",
    "ID",
    "INTEGER",
    "JSON",
    "NULLABLE_STRING",
    "NUMBER",
    "SCHEMAS",
    "STRING",
    "Schema",
    "error",
    "json_response",
    "list_of",
    "operation",
    "path_parameter",
    "query",
    "ref",
]

from debugbroker.broker.store.groups import (
    GROUP_STATES,
    MAX_MUTE_MINUTES,
    MAX_MUTE_OCCURRENCES,
)

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema by name."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: Schema, description: str) -> Schema:
    """A JSON answer with this schema."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> Schema:
    """An error answer (``{"error": ...}``, and ``reason`` for a request the relay could not
    carry out)."""
    return json_response(ref("Error"), description)


def list_of(key: str, item: str) -> Schema:
    """An object holding one list of component schemas under ``key``."""
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": ref(item)}},
    }


def query(name: str, schema: Schema, description: str, empty: bool = False) -> Schema:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        "allowEmptyValue": empty,  # ``?before=`` is the same as leaving it out
    }


def path_parameter(name: str, schema: Schema) -> Schema:
    """A path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": schema}


def operation(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    """An operation that also answers the errors every API route may give."""
    return {"summary": summary, "responses": {**responses, **COMMON_ERRORS}, **extra}


COMMON_ERRORS: dict[str, Schema] = {
    "401": error("no valid token or session cookie"),
    "403": error(
        "a cross-origin request, a cookie request without Origin or without the session's "
        "X-Debugbroker-Key, or a role that may not do this"
    ),
    "429": error("too many failed credential attempts from this client; see Retry-After"),
}
STRING = {"type": "string"}
NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NULLABLE_STRING = {"type": "string", "nullable": True}
ID = {"type": "string", "minLength": 1}  # ids in paths: never empty

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": STRING,
            "reason": {
                "type": "string",
                "enum": list(FAILURE_REASONS),
                "description": "why a request to an agent was not carried out (docs/api.md): "
                "released 409, not_paused 409, disabled 403, busy 503, stopping 503, "
                "timeout 504, gone 410, bad_answer 502",
            },
        },
    },
    "ReportSummary": {
        "type": "object",
        "required": ["id", "agent_id", "created", "type_name", "message", "pid", "host", "app"],
        "properties": {
            "id": STRING,
            "agent_id": STRING,
            "created": NUMBER,
            "type_name": STRING,
            "message": STRING,
            "pid": INTEGER,
            "host": STRING,
            "app": STRING,
            "url": NULLABLE_STRING,
        },
    },
    "Report": {
        "type": "object",
        "description": "a captured error (protocol/report.py Report) plus agent_alive",
        "required": ["id", "agent_id", "created", "type_name", "message", "text", "exceptions"],
        "properties": {
            "id": STRING,
            "agent_id": STRING,
            "created": NUMBER,
            "type_name": STRING,
            "message": STRING,
            "text": STRING,
            "exceptions": {"type": "array", "items": {"type": "object"}},
            "agent_alive": BOOLEAN,
            "paused": BOOLEAN,
            "resumable": BOOLEAN,
            "step_of": STRING,
            "step": STRING,
            "tracebacklimit": {"type": "integer", "nullable": True},
            "stepped_by": NULLABLE_STRING,
            "next_pause": NULLABLE_STRING,
            "frames_held": BOOLEAN,
            "frames_released": {"type": "number", "nullable": True},
        },
    },
    "Agent": {
        "type": "object",
        "required": ["agent_id", "pid", "host", "app", "python", "started", "evalex", "alive"],
        "properties": {
            "agent_id": STRING,
            "pid": INTEGER,
            "host": STRING,
            "app": STRING,
            "python": STRING,
            "started": NUMBER,
            "evalex": BOOLEAN,
            "alive": BOOLEAN,
            "last_seen": NUMBER,
            "held_frames": INTEGER,
            "held_reports": INTEGER,
            "held_bytes": INTEGER,
            "repeats_unknown": {
                "type": "integer",
                "description": "errors it counted, not captured, against a report this "
                "broker never received (see docs/limits.md, the storm policy)",
            },
        },
    },
    "Breakpoint": {
        "type": "object",
        "description": "a breakpoint set from the dashboard, with its state in each agent",
        "required": ["id", "app", "agent_id", "file", "line", "condition", "hit_count", "enabled"],
        "properties": {
            "id": STRING,
            "app": STRING,
            "agent_id": {"type": "string", "description": "empty: every agent of the app"},
            "file": STRING,
            "line": INTEGER,
            "condition": STRING,
            "hit_count": {
                "type": "integer",
                "description": "pause from this hit (whose condition held) on; 0: every hit",
            },
            "enabled": BOOLEAN,
            "created": NUMBER,
            "created_by": STRING,
            "states": {
                "type": "object",
                "description": "agent id -> what that agent made of it",
                "additionalProperties": {"$ref": "#/components/schemas/BreakpointState"},
            },
        },
    },
    "BreakpointState": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["armed", "pending", "disabled", "refused", "error"],
            },
            "reason": STRING,
            "warning": STRING,
            "hits": INTEGER,
            "at": NUMBER,
        },
    },
    "BreakpointInput": {
        "type": "object",
        "required": ["file", "line"],
        "description": "the scope: app (every agent of it) or agent_id (one agent), or both",
        "anyOf": [
            {"required": ["app"], "properties": {"app": {"minLength": 1}}},
            {"required": ["agent_id"], "properties": {"agent_id": {"minLength": 1}}},
        ],
        "properties": {
            "file": {"type": "string", "minLength": 1, "maxLength": 4096},
            "line": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
            "app": {"type": "string", "maxLength": 200},
            "agent_id": {"type": "string", "description": "one agent; its app is the app"},
            "condition": {"type": "string", "maxLength": 2000},
            "hit_count": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
            "enabled": BOOLEAN,
        },
    },
    "BreakpointChange": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "condition": {"type": "string", "maxLength": 2000},
            "hit_count": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
            "enabled": BOOLEAN,
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
        "required": [
            "ok",
            "output",
            "result",
            "error",
            "incomplete",
            "chunks",
            "reason",
            "entry",
        ],
        "properties": {
            "ok": BOOLEAN,
            "output": STRING,
            "result": {"type": "object", "nullable": True},
            "error": NULLABLE_STRING,
            "incomplete": BOOLEAN,
            "chunks": {"type": "array", "items": {"type": "object"}},
            "reason": {
                "type": "string",
                "nullable": True,
                "description": "always null in a 200 answer: a refusal is an error answer",
            },
            "entry": {
                "type": "integer",
                "nullable": True,
                "description": "the id of the transcript entry (null: incomplete input)",
            },
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "action", "role", "name", "agent_id", "code", "outcome"],
        "properties": {
            "id": INTEGER,
            "at": NUMBER,
            "action": {
                "type": "string",
                "enum": [
                    "eval",
                    "complete",
                    "continue",
                    "step",  # refused before its action was known (bad body, view token)
                    "step_over",
                    "step_into",
                    "step_out",
                    "step_until",
                    "step_continue",
                    "release_frames",
                    "breakpoint_set",
                    "breakpoint_changed",
                    "breakpoint_removed",
                    "share_created",
                    "share_revoked",
                    "agent_admitted",
                    "agent_refused",
                    "group_state",
                    "group_deleted",
                    "report_deleted",
                    "store_cleared",
                ],
            },
            "role": STRING,
            "name": STRING,
            "client": STRING,
            "agent_id": STRING,
            "report_id": STRING,
            "frame_index": {"type": "integer", "nullable": True},
            "code": STRING,
            "outcome": {
                "type": "string",
                "description": "running (recorded before it ran, not ended yet), ok, raised, "
                "refused or failed",
            },
            "detail": STRING,
        },
    },
    "Group": {
        "type": "object",
        "description": "one fingerprint: its triage state and exact counts (docs/api.md)",
        "required": ["fingerprint", "state", "count", "kept", "first_seen", "last_seen"],
        "properties": {
            "fingerprint": STRING,
            "state": {"type": "string", "enum": list(GROUP_STATES)},
            "mute_until": {"type": "number", "nullable": True},
            "mute_remaining": {"type": "integer", "nullable": True},
            "state_changed": {"type": "number", "nullable": True},
            "count": {"type": "integer", "description": "reports seen, exactly"},
            "kept": {"type": "integer", "description": "full reports still stored"},
            "first_seen": NUMBER,
            "last_seen": NUMBER,
            "hourly": {
                "type": "array",
                "items": INTEGER,
                "description": "reports seen in each of the last 24 hours, oldest first",
            },
            "latest": {"allOf": [ref("ReportSummary")], "nullable": True},
            "apps": {"type": "array", "items": STRING},
            "workers": {"type": "array", "items": {"type": "object"}},
        },
    },
    "GroupState": {
        "description": "a mute needs minutes or occurrences (not both); the others take neither",
        "oneOf": [
            {
                "type": "object",
                "required": ["state"],
                "additionalProperties": False,
                "properties": {
                    "state": {"type": "string", "enum": ["resolved", "open", "ignored"]}
                },
            },
            {
                "type": "object",
                "required": ["state", "minutes"],
                "additionalProperties": False,
                "properties": {
                    "state": {"type": "string", "enum": ["muted"]},
                    "minutes": {
                        "type": "number",
                        "minimum": 0,
                        "exclusiveMinimum": True,
                        "maximum": MAX_MUTE_MINUTES,
                        "description": "how long",
                    },
                },
            },
            {
                "type": "object",
                "required": ["state", "occurrences"],
                "additionalProperties": False,
                "properties": {
                    "state": {"type": "string", "enum": ["muted"]},
                    "occurrences": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_MUTE_OCCURRENCES,
                        "description": "how many more reports",
                    },
                },
            },
        ],
    },
    "Deleted": {
        "type": "object",
        "required": ["ok", "deleted"],
        "properties": {"ok": BOOLEAN, "deleted": INTEGER},
    },
    "Status": {
        "type": "object",
        "required": ["role", "agents_alive", "relay", "dashboard", "store"],
        "properties": {
            "role": {"type": "string", "enum": ["full", "view"]},
            "agents_alive": INTEGER,
            "relay": {"type": "object", "additionalProperties": INTEGER},
            "dashboard": {"type": "object", "additionalProperties": INTEGER},
            "store": ref("StoreStatus"),
        },
    },
    "StoreStatus": {
        "type": "object",
        "description": "Reports stored since the broker started, those waiting in its memory "
        "through a storage fault (a full disk) and those shed past the bound; the console "
        "and audit writes likewise; the fault while the store cannot write (else null) and "
        "why the last were shed.",
        "required": [
            "stored",
            "waiting",
            "shed",
            "not_stored",
            "writes_waiting",
            "writes_shed",
            "fault",
            "shed_reason",
        ],
        "properties": {
            "stored": INTEGER,
            "waiting": INTEGER,
            "shed": INTEGER,
            "not_stored": INTEGER,
            "writes_waiting": INTEGER,
            "writes_shed": INTEGER,
            "fault": {"type": "string", "nullable": True},
            "shed_reason": {"type": "string", "nullable": True},
        },
        "additionalProperties": False,
    },
}
