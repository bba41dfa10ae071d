"""The reports table: report rows, their list filters, groups, and the batched insert.

Plain functions of a connection (blocking: the store runs them on its thread, see
``store``); ``report_summary`` and ``ReportFilter`` are also the API's list row and filters.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from debugbroker.broker.store.frame_targets import FrameTargets, frame_targets
from debugbroker.broker.store.grouping import fingerprint
from debugbroker.broker.store.groups import (
    GROUP_STATES,
    Retention,
    WindowPlan,
    group_counts,
    record_reports,
    state_condition,
    window_plan,
)
from debugbroker.broker.store.search import index_pending, indexed_through, match_query, next_rowid
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

_ROWS_PER_STATEMENT = 200  # 12 parameters a row: well under SQLite's 32,766 per statement
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

    text: str = ""  # words in the message, traceback, locals or URL (``search``)
    type_name: str = ""  # the raised exception's type name, exactly
    path: str = ""  # the request URL's path starts with this
    agent_id: str = ""
    fingerprint: str = ""
    app: str = ""
    state: str = ""  # the group's triage state
    since: float | None = None  # created at or after
    until: float | None = None  # created before

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReportFilter:
        """From ``?q=&type=&path=&agent=&fingerprint=&app=&state=&since=&until=``;
        ValueError for an overlong one, an unknown state or a time that is no number."""
        values = {
            "text": query.get("q", ""),
            "type_name": query.get("type", ""),
            "path": query.get("path", ""),
            "agent_id": query.get("agent", ""),
            "fingerprint": query.get("fingerprint", ""),
            "app": query.get("app", ""),
            "state": query.get("state", ""),
        }
        for name, value in values.items():
            if len(value) > _MAX_FILTER:
                raise ValueError(f"the {name} filter is limited to {_MAX_FILTER} characters")
        if values["state"] and values["state"] not in GROUP_STATES:
            raise ValueError(f"state must be one of {', '.join(GROUP_STATES)}")
        times: dict[str, float | None] = {}
        for name in ("since", "until"):
            text = query.get(name, "")
            try:
                times[name] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{name} must be a time in seconds (a number)") from None
            if times[name] is not None and not math.isfinite(times[name] or 0.0):
                raise ValueError(f"{name} must be a finite number")
        stripped = {name: value.strip() for name, value in values.items()}
        return cls(**stripped, since=times["since"], until=times["until"])

    def where(self) -> tuple[str, list[Any]]:
        """The SQL conditions (joined by AND, maybe empty) and their parameters."""
        conditions: list[str] = []
        parameters: list[Any] = []
        match = match_query(self.text) if self.text else ""
        if self.text and not match:
            conditions.append("0")  # only separators: nothing can match
        elif match:
            conditions.append("rowid IN (SELECT rowid FROM reports_fts WHERE reports_fts MATCH ?)")
            parameters.append(match)
        for column, value in (
            ("type_name", self.type_name),
            ("agent_id", self.agent_id),
            ("fingerprint", self.fingerprint),
            ("app", self.app),
        ):
            if value:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        if self.state:  # as the groups show it: a mute for a time that ended is open
            shown, values = state_condition((self.state,), time.time())
            conditions.append(f"fingerprint IN (SELECT fingerprint FROM groups WHERE {shown})")
            parameters.extend(values)
        if self.since is not None:
            conditions.append("created >= ?")
            parameters.append(self.since)
        if self.until is not None:
            conditions.append("created < ?")
            parameters.append(self.until)
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
    summaries: list[dict[str, Any] | None] | None = None,
    bodies: list[str | None] | None = None,
) -> list[bool | Exception]:
    """Insert reports in one transaction: for each, whether it was new, or why it was not
    written (a report that cannot be encoded fails alone; a failing commit fails them all).
    The new ones are counted in their groups, which then keep what ``retention`` says
    (everything when None; ``held``: the reports whose frames agents hold, ``now``: the
    time a mute ends against; see ``groups``). ``summaries`` and ``bodies``: the reports'
    ``report_summary`` and JSON text (``wire_json``) where the caller worked them out
    already (None where not).

    One SELECT finds the ids already stored and one multi-row INSERT writes the rest: each
    SQLite call lets go of the GIL and must win it back from the busy event loop, which
    costs up to a switch interval (5 ms) per call, so the calls are per batch, not per row.
    """
    outcomes: list[bool | Exception] = []
    rows: dict[str, tuple[Any, ...]] = {}  # the first report of each id, in order
    positions: list[tuple[int, str]] = []  # (index in outcomes, id) of the rows
    for index, report in enumerate(reports):
        try:
            known = summaries[index] if summaries else None
            summary = known if known is not None else report_summary(report)
            text = bodies[index] if bodies else None
            body = text if text is not None else wire_json(report)
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
        plan = WindowPlan(reuse=[], delete=[], settled=set())
        kept_rows = new_rows
        if retention is not None and new_rows:
            by_group: dict[str, list[tuple[Any, ...]]] = {}
            for row in new_rows:
                by_group.setdefault(str(row[9]), []).append(row)
            counts = group_counts(connection, by_group)
            _drop_middle_rows(by_group, counts, retention, held)
            kept_rows = [row for group_rows in by_group.values() for row in group_rows]
            plan = window_plan(
                connection, by_group, counts, retention, held, indexed_through(connection)
            )
        _write_rows(connection, kept_rows, plan)
        record_reports(
            connection,
            [(row[0], row[9], row[2]) for row in new_rows],
            retention,
            held,
            now,
            plan.settled,
        )
        connection.commit()
    except sqlite3.Error:
        connection.rollback()
        raise
    for index, report_id in positions:
        if report_id in existing:
            outcomes[index] = False  # already stored before this batch
    return outcomes


def _drop_middle_rows(
    by_group: dict[str, list[tuple[Any, ...]]],
    counts: dict[str, int],
    retention: Retention,
    held: Collection[str],
) -> None:
    """Leave out the new rows worth no write: a group's middle reports (after its first
    ``keep_first``, before the batch's last ``keep_latest``) would be deleted again in
    this transaction, so a storm's reports are only counted, never written (unless their
    frames are held). ``by_group``: the batch's new rows by group, changed in place."""
    for key, group_rows in by_group.items():
        if len(group_rows) <= retention.keep_latest:
            continue
        stored = counts.get(key, 0)
        ordered = sorted(group_rows, key=lambda row: (row[2], row[0]))
        cut = len(ordered) - retention.keep_latest
        by_group[key] = [
            row
            for position, row in enumerate(ordered)
            if position >= cut or stored + position < retention.keep_first or row[0] in held
        ]


def _write_rows(
    connection: sqlite3.Connection, rows: list[tuple[Any, ...]], plan: WindowPlan
) -> None:
    """Write the new report rows: over the rows ``plan`` reuses, the rest inserted (with
    rowids above the search index's mark, see ``search``); delete what ``plan`` says.
    Deletes and inserts are one statement per ``_ROWS_PER_STATEMENT`` rows, not one per
    row (each SQLite call lets go of the GIL and must win it back from the busy event
    loop); the rows written over are one ``executemany`` of a one-row UPDATE (16-18 µs a
    report: one ``UPDATE ... FROM (VALUES ...)`` for the batch copies the rows into a
    temporary table first, 46 µs; see BENCHMARKS.md section 8)."""
    columns = f"{SUMMARY_COLUMNS}, body"
    for start in range(0, len(plan.delete), _ROWS_PER_STATEMENT):
        chunk = plan.delete[start : start + _ROWS_PER_STATEMENT]
        connection.execute(
            f"DELETE FROM reports WHERE id IN ({', '.join('?' * len(chunk))})", chunk
        )
    reused = {row[0] for _, row in plan.reuse}  # their ids
    assignments = ", ".join(f"{name} = ?" for name in columns.split(", "))
    connection.executemany(
        f"UPDATE reports SET {assignments} WHERE rowid = ?",
        [(*row, rowid) for rowid, row in plan.reuse],
    )
    fresh = [row for row in rows if row[0] not in reused]
    rowid = next_rowid(connection) if fresh else 0  # the search index's, see search
    for start in range(0, len(fresh), _ROWS_PER_STATEMENT):
        chunk_rows = fresh[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk_rows))
        parameters = []
        for row in chunk_rows:
            parameters.append(rowid)
            parameters += row
            rowid += 1
        connection.execute(
            f"INSERT OR IGNORE INTO reports (rowid, {columns}) VALUES {values}", parameters
        )


def select_reports(
    connection: sqlite3.Connection,
    limit: int,
    before: float | None = None,
    filters: ReportFilter | None = None,
    before_id: str | None = None,
) -> list[dict[str, Any]]:
    """Report summaries, newest first (ties by id), optionally only those after the row
    ``(before, before_id)`` in that order: the last row of the previous page (keyset
    pagination: stable while reports arrive or go). Without ``before_id``, only those
    created before ``before``. A search (``filters.text``) first indexes the reports not
    yet indexed (``search.index_pending``), so it finds every stored report."""
    query = f"SELECT {SUMMARY_COLUMNS} FROM reports"
    conditions, parameters = (filters or ReportFilter()).where()
    if before is not None:
        after = "created < ?" if before_id is None else "(created < ? OR (created = ? AND id > ?))"
        conditions = " AND ".join(filter(None, [conditions, after]))
        parameters += [before] if before_id is None else [before, before, before_id]
    if conditions:
        query += f" WHERE {conditions}"
    query += " ORDER BY created DESC, id LIMIT ?"
    if filters and filters.text:
        index_pending(connection)  # the reports not yet indexed first (see ``search``)
    rows = connection.execute(query, (*parameters, limit)).fetchall()
    if connection.in_transaction:
        try:
            connection.commit()
        except sqlite3.Error:  # a full disk: this answer was right; the next search retries
            connection.rollback()
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
