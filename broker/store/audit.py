"""The audit table: the inserts and reads of the audit log (plain functions of a connection).

The log is bounded: every 1000th insert deletes what is older than the last ``_AUDIT_KEEP``.
The store numbers the rows itself (it is the only writer), so that a row has its id before
it is committed (``journal.py``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from debugbroker.broker.store.thread import Write

__all__ = [
    "AUDIT_COLUMNS",
    "AuditInsert",
    "audit_insert",
    "audit_update",
    "last_audit_id",
    "select_audit",
]

AUDIT_COLUMNS = (
    "id, at, action, role, name, client, agent_id, report_id, frame_index, code, outcome, detail"
)
_NAMES = AUDIT_COLUMNS.split(", ")
_INSERT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))})"
_AUDIT_KEEP = 100_000  # rows kept; older ones are deleted as new ones arrive


@dataclass(slots=True)
class AuditInsert:
    """The insert of an audit entry (a ``Write``, not committed), keeping the log bounded.
    ``values`` start with the row's id (the store numbers rows, as ``last_audit_id`` says);
    ``journal`` is the journal file the row was appended to, if it was (``journal.py``)."""

    values: tuple[Any, ...]
    journal: int | None = None

    @property
    def row_id(self) -> int:
        """The row's id."""
        row_id: int = self.values[0]
        return row_id

    def __call__(self, connection: sqlite3.Connection) -> None:
        connection.execute(_INSERT, self.values)
        if self.row_id % 1000 == 0:  # bounded: drop the oldest
            connection.execute("DELETE FROM audit WHERE id <= ?", (self.row_id - _AUDIT_KEEP,))


def audit_insert(row_id: int, entry: dict[str, Any]) -> AuditInsert:
    """The insert of audit entry ``row_id`` (``entry``: the audit table's columns but ``id``)."""
    values = tuple(entry.get(name, None if name == "frame_index" else "") for name in _NAMES[1:])
    return AuditInsert((row_id, *values))


def last_audit_id(connection: sqlite3.Connection) -> int:
    """The highest row id ever given, deleted rows included (ids are never reused)."""
    row = connection.execute(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0), "
        "COALESCE(MAX(id), 0)) FROM audit"
    ).fetchone()
    return int(row[0] or 0)


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
    query = f"SELECT {AUDIT_COLUMNS} FROM audit"
    parameters: tuple[Any, ...] = ()
    if before is not None:
        query += " WHERE id < ?"
        parameters = (before,)
    rows = connection.execute(query + " ORDER BY id DESC LIMIT ?", (*parameters, limit))
    return [dict(zip(_NAMES, row, strict=True)) for row in rows.fetchall()]
