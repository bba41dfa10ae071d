"""The audit table: the inserts and reads of the audit log (plain functions of a connection).

The log is bounded: every 1000th insert deletes what is older than the last ``_AUDIT_KEEP``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from debugbroker.broker.store.thread import Write

__all__ = ["audit_insert", "select_audit"]

_AUDIT_COLUMNS = (
    "id, at, action, role, name, client, agent_id, report_id, frame_index, code, outcome, detail"
)
_AUDIT_KEEP = 100_000  # rows kept; older ones are deleted as new ones arrive


def audit_insert(entry: dict[str, Any]) -> Write:
    """The insert of an audit entry (not committed), keeping the log bounded."""
    names = _AUDIT_COLUMNS.split(", ")[1:]
    values = tuple(entry.get(name, None if name == "frame_index" else "") for name in names)

    def insert(connection: sqlite3.Connection) -> None:
        cursor = connection.execute(
            f"INSERT INTO audit ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            values,
        )
        if cursor.lastrowid and cursor.lastrowid % 1000 == 0:  # bounded: drop the oldest
            oldest_kept = cursor.lastrowid - _AUDIT_KEEP
            connection.execute("DELETE FROM audit WHERE id <= ?", (oldest_kept,))

    return insert


def select_audit(
    connection: sqlite3.Connection, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """Audit entries, newest first, optionally only those with ``id < before``."""
    query = f"SELECT {_AUDIT_COLUMNS} FROM audit"
    parameters: tuple[Any, ...] = ()
    if before is not None:
        query += " WHERE id < ?"
        parameters = (before,)
    rows = connection.execute(query + " ORDER BY id DESC LIMIT ?", (*parameters, limit))
    names = _AUDIT_COLUMNS.split(", ")
    return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]
