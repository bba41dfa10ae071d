"""The shares table: read-only share links of reports (plain functions of a connection)."""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["delete_share", "insert_share", "select_share", "select_shares"]


def insert_share(
    connection: sqlite3.Connection, share_id: str, report_id: str, created: float
) -> None:
    """Record a read-only share link of a report."""
    connection.execute(
        "INSERT INTO shares (share_id, report_id, created) VALUES (?, ?, ?)",
        (share_id, report_id, created),
    )
    connection.commit()


def select_share(connection: sqlite3.Connection, share_id: str) -> str | None:
    """The report a share link shows, or None when the link is unknown or revoked."""
    row = connection.execute(
        "SELECT report_id FROM shares WHERE share_id = ?", (share_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def select_shares(connection: sqlite3.Connection, report_id: str) -> list[dict[str, Any]]:
    """The share links of a report, newest first."""
    rows = connection.execute(
        "SELECT share_id, created FROM shares WHERE report_id = ? ORDER BY created DESC",
        (report_id,),
    ).fetchall()
    return [{"share_id": share_id, "created": created} for share_id, created in rows]


def delete_share(connection: sqlite3.Connection, share_id: str) -> bool:
    """Revoke a share link; False when it did not exist."""
    cursor = connection.execute("DELETE FROM shares WHERE share_id = ?", (share_id,))
    connection.commit()
    return cursor.rowcount > 0
