"""The reports table: report rows, their list filters, groups, and the batched insert.

Plain functions of a connection (blocking: the store runs them on its thread, see
``store``); ``report_summary`` and ``ReportFilter`` are also the API's list row and filters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from debugbroker.broker.store.frame_targets import FrameTargets, frame_targets
from debugbroker.broker.store.grouping import fingerprint
from debugbroker.broker.store.groups import Retention, record_reports
from debugbroker.broker.wire import wire_json

__all__ = [
    "SUMMARY_COLUMNS",
    "ReportFilter",
    "count_reports",
    "insert_reports",
    "report_summary",
    "select_frame_targets",
    "select_report",
    "select_reports",
]

_ROWS_PER_STATEMENT = 200  # 11 parameters a row: well under SQLite's 32,766 per statement
SUMMARY_COLUMNS = "id, agent_id, created, type_name, message, pid, host, app, url, fingerprint"
_MESSAGE_SUMMARY = 500  # characters of the message kept in the list
_MAX_FILTER = 500  # characters of one search filter


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The list row of a report (its wire dict): what ``GET /api/reports`` shows."""
    request = report.get("request")
    return {
        "id": report["id"],
        "agent_id": report["agent_id"],
        "created": report["created"],
        "type_name": report["type_name"],
        "message": report["message"][:_MESSAGE_SUMMARY],
        "pid": report["pid"],
        "host": report["host"],
        "app": report["app"],
        "url": request["url"] if isinstance(request, dict) else None,
        "fingerprint": fingerprint(report),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilter:
    """What ``GET /api/reports`` may filter by; empty fields do not filter."""

    text: str = ""  # anywhere in the report (message, traceback, locals, request)
    type_name: str = ""  # the raised exception's type name, exactly
    path: str = ""  # the request URL's path starts with this
    agent_id: str = ""
    fingerprint: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReportFilter:
        """From ``?q=&type=&path=&agent=&fingerprint=``; ValueError for an overlong one."""
        values = {
            "text": query.get("q", ""),
            "type_name": query.get("type", ""),
            "path": query.get("path", ""),
            "agent_id": query.get("agent", ""),
            "fingerprint": query.get("fingerprint", ""),
        }
        for name, value in values.items():
            if len(value) > _MAX_FILTER:
                raise ValueError(f"the {name} filter is limited to {_MAX_FILTER} characters")
        return cls(**{name: value.strip() for name, value in values.items()})

    def where(self) -> tuple[str, list[Any]]:
        """The SQL conditions (joined by AND, maybe empty) and their parameters."""
        conditions: list[str] = []
        parameters: list[Any] = []
        if self.text:
            conditions.append("body LIKE ? ESCAPE '\\'")
            parameters.append(f"%{_like_escape(self.text)}%")
        for column, value in (
            ("type_name", self.type_name),
            ("agent_id", self.agent_id),
            ("fingerprint", self.fingerprint),
        ):
            if value:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        if self.path:  # debugbroker_url_path: registered by schema.connect
            conditions.append("debugbroker_url_path(url) LIKE ? ESCAPE '\\'")
            parameters.append(f"{_like_escape(self.path)}%")
        return " AND ".join(conditions), parameters


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def insert_reports(
    connection: sqlite3.Connection,
    reports: list[dict[str, Any]],
    retention: Retention | None = None,
    held: Collection[str] = (),
    now: float = 0.0,
) -> list[bool | Exception]:
    """Insert reports in one transaction: for each, whether it was new, or why it was not
    written (a report that cannot be encoded fails alone; a failing commit fails them all).
    The new ones are counted in their groups, which then keep what ``retention`` says
    (everything when None; ``held``: the reports whose frames agents hold, ``now``: the
    time a mute ends against; see ``groups``).

    One SELECT finds the ids already stored and one multi-row INSERT writes the rest: each
    SQLite call lets go of the GIL and must win it back from the busy event loop, which
    costs up to a switch interval (5 ms) per call, so the calls are per batch, not per row.
    """
    outcomes: list[bool | Exception] = []
    rows: dict[str, tuple[Any, ...]] = {}  # the first report of each id, in order
    positions: list[tuple[int, str]] = []  # (index in outcomes, id) of the rows
    for report in reports:
        try:
            summary = report_summary(report)
            body = wire_json(report)
            report_id = str(summary["id"])
        except (KeyError, TypeError, ValueError) as error:
            outcomes.append(ValueError(f"report not stored: {type(error).__name__}: {error}"))
            continue
        if report_id in rows:
            outcomes.append(False)  # the same report twice in one batch: the first counts
            continue
        rows[report_id] = (*summary.values(), body)
        positions.append((len(outcomes), report_id))
        outcomes.append(True)
    try:
        existing: set[str] = set()
        ids = list(rows)
        for start in range(0, len(ids), _ROWS_PER_STATEMENT):
            chunk = ids[start : start + _ROWS_PER_STATEMENT]
            marks = ", ".join("?" * len(chunk))
            found = connection.execute(f"SELECT id FROM reports WHERE id IN ({marks})", chunk)
            existing.update(row[0] for row in found)
        new_rows = [row for report_id, row in rows.items() if report_id not in existing]
        for start in range(0, len(new_rows), _ROWS_PER_STATEMENT):
            chunk_rows = new_rows[start : start + _ROWS_PER_STATEMENT]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk_rows))
            connection.execute(
                f"INSERT OR IGNORE INTO reports ({SUMMARY_COLUMNS}, body) VALUES {values}",
                [value for row in chunk_rows for value in row],
            )
        record_reports(
            connection, [(row[0], row[9], row[2]) for row in new_rows], retention, held, now
        )
        connection.commit()
    except sqlite3.Error:
        connection.rollback()
        raise
    for index, report_id in positions:
        if report_id in existing:
            outcomes[index] = False  # already stored before this batch
    return outcomes


def select_reports(
    connection: sqlite3.Connection,
    limit: int,
    before: float | None = None,
    filters: ReportFilter | None = None,
) -> list[dict[str, Any]]:
    """Report summaries, newest first, optionally only those created before ``before``."""
    query = f"SELECT {SUMMARY_COLUMNS} FROM reports"
    conditions, parameters = (filters or ReportFilter()).where()
    if before is not None:
        conditions = " AND ".join(filter(None, [conditions, "created < ?"]))
        parameters.append(before)
    if conditions:
        query += f" WHERE {conditions}"
    query += " ORDER BY created DESC, id LIMIT ?"
    rows = connection.execute(query, (*parameters, limit)).fetchall()
    names = SUMMARY_COLUMNS.split(", ")
    return [dict(zip(names, row, strict=True)) for row in rows]


def select_report(connection: sqlite3.Connection, report_id: str) -> dict[str, Any] | None:
    """The full report (wire dict), or None when unknown."""
    row = connection.execute("SELECT body FROM reports WHERE id = ?", (report_id,))
    found = row.fetchone()
    return None if found is None else dict(json.loads(found[0]))


def select_frame_targets(connection: sqlite3.Connection, report_id: str) -> FrameTargets | None:
    """Which agent holds a report's frames and their ids, or None when unknown."""
    row = connection.execute("SELECT body FROM reports WHERE id = ?", (report_id,))
    found = row.fetchone()
    return None if found is None else frame_targets(json.loads(found[0]))


def count_reports(connection: sqlite3.Connection) -> int:
    """How many reports are stored."""
    return int(connection.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
