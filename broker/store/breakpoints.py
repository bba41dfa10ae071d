"""The breakpoints table: breakpoints set from the dashboard (plain functions of a connection).

A breakpoint applies to every agent of its ``app``, or to one agent when ``agent_id`` is
set; the relay (``relay/breakpoints.py``) sends each agent its list. They are kept here so
that a broker restart keeps them; what each agent made of them is not (agents say it again).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "BREAKPOINT_COLUMNS",
    "create_breakpoints_table",
    "delete_breakpoint",
    "save_breakpoint",
    "select_breakpoints",
]

BREAKPOINT_COLUMNS = (
    "id",
    "app",
    "agent_id",
    "file",
    "line",
    "condition",
    "hit_count",
    "enabled",
    "created",
    "created_by",
)


def create_breakpoints_table(connection: sqlite3.Connection) -> None:
    """The table (schema version 4); safe on a file that has it."""
    connection.execute(
        """
        CREATE TABLE IF NOT EXISTS breakpoints (
            id TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            condition TEXT NOT NULL,
            hit_count INTEGER NOT NULL,
            enabled INTEGER NOT NULL,
            created REAL NOT NULL,
            created_by TEXT NOT NULL
        )
        """
    )


def save_breakpoint(connection: sqlite3.Connection, breakpoint: dict[str, Any]) -> None:
    """Insert a breakpoint, or replace the one with its id."""
    names = ", ".join(BREAKPOINT_COLUMNS)
    marks = ", ".join("?" for _ in BREAKPOINT_COLUMNS)
    values = tuple(breakpoint[name] for name in BREAKPOINT_COLUMNS)
    connection.execute(f"INSERT OR REPLACE INTO breakpoints ({names}) VALUES ({marks})", values)
    connection.commit()


def select_breakpoints(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every breakpoint, oldest first."""
    names = ", ".join(BREAKPOINT_COLUMNS)
    rows = connection.execute(f"SELECT {names} FROM breakpoints ORDER BY created, id").fetchall()
    found = [dict(zip(BREAKPOINT_COLUMNS, row, strict=True)) for row in rows]
    for breakpoint in found:
        breakpoint["enabled"] = bool(breakpoint["enabled"])
    return found


def delete_breakpoint(connection: sqlite3.Connection, breakpoint_id: str) -> bool:
    """Remove a breakpoint; False when it did not exist."""
    cursor = connection.execute("DELETE FROM breakpoints WHERE id = ?", (breakpoint_id,))
    connection.commit()
    return cursor.rowcount > 0
