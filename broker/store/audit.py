"""The audit table: the inserts and reads of the audit log (plain functions of a connection).

The log is bounded: every 1000th insert deletes what is older than the last ``_AUDIT_KEEP``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from debugbroker.broker.store.thread import Write

__all__ = ["AuditInsert", "audit_insert", "audit_update", "select_audit"]

_AUDIT_COLUMNS = (
    "id, at, action, role, name, client, agent_id, report_id, frame_index, code, outcome, detail"
)
_AUDIT_KEEP = 100_000  # rows kept; older ones are deleted as new ones arrive


@dataclass(slots=True)
class AuditInsert:
    """The insert of an audit entry (a ``Write``, not committed), keeping the log bounded;
    ``row_id`` is the new row's id once it ran."""

    values: tuple[Any, ...]
    row_id: int | None = None

    def __call__(self, connection: sqlite3.Connection) -> None:
        names = _AUDIT_COLUMNS.split(", ")[1:]
        cursor = connection.execute(
            f"INSERT INTO audit ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            self.values,
        )
        self.row_id = cursor.lastrowid
        if cursor.lastrowid and cursor.lastrowid % 1000 == 0:  # bounded: drop the oldest
            oldest_kept = cursor.lastrowid - _AUDIT_KEEP
            connection.execute("DELETE FROM audit WHERE id <= ?", (oldest_kept,))


def audit_insert(entry: dict[str, Any]) -> AuditInsert:
    """The insert of an audit entry (the columns of the audit table but ``id``)."""
    names = _AUDIT_COLUMNS.split(", ")[1:]
    return AuditInsert(
        tuple(entry.get(name, None if name == "frame_index" else "") for name in names)
    )


def audit_update(row_id: int, outcome: str, detail: str) -> Write:
    """The update of an audit entry's ``outcome`` and ``detail`` once the action ended."""

    def update(connection: sqlite3.Connection) -> None:
        connection.execute(
            "UPDATE audit SET outcome = ?, detail = ? WHERE id = ?", (outcome, detail, row_id)
        )

    return update


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
