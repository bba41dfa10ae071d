"""The groups table: one row per fingerprint with its triage state and exact counts, and
what the store keeps of each group's reports (retention).

A group counts every report it was ever sent (``total``) and an hourly histogram of them
(``group_hours``), whether or not the report itself is still stored: a storm of one error
keeps its group's first ``keep_first`` and latest ``keep_latest`` full reports, and only
counts the rest. Store-wide limits (``Retention``: age, number of reports, file size) then
delete the oldest reports. A report is never deleted by retention while it is protected:
its frames are still held by a live agent, it has a console transcript, or a share link.

A group's state is ``open``, ``resolved`` (reopens as ``regressed`` when the error comes
back), ``regressed``, ``ignored`` (for good) or ``muted`` (until a time, or until N more
occurrences: then it is ``open`` again). Plain functions of a connection (blocking: the
store runs them on its thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from debugbroker.broker.store.search import INDEX_DELAY_SECONDS, index_pending

__all__ = [
    "GROUP_STATES",
    "MAX_MUTE_MINUTES",
    "MAX_MUTE_OCCURRENCES",
    "Retention",
    "WindowPlan",
    "clear_all",
    "create_group_tables",
    "delete_group",
    "delete_report",
    "enforce_retention",
    "group_counts",
    "record_reports",
    "record_repeats",
    "GroupPage",
    "count_groups",
    "select_groups",
    "state_condition",
    "set_group_state",
    "window_plan",
]

GROUP_STATES = ("open", "resolved", "regressed", "ignored", "muted")
MAX_MUTE_MINUTES = 366 * 24 * 60  # a mute lasts at most a year, or this many more reports
MAX_MUTE_OCCURRENCES = 1_000_000_000
_HOUR = 3600.0
_SPARKLINE_HOURS = 24
_DELETE_CHUNK = 500  # ids in one DELETE ... IN (...)
_GROUP_COLUMNS = (
    "fingerprint, state, mute_until, mute_remaining, total, first_seen, last_seen, state_changed"
)

_GROUP_TABLES = """
CREATE TABLE IF NOT EXISTS groups (
    fingerprint TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'open',
    mute_until REAL,
    mute_remaining INTEGER,
    total INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    state_changed REAL
);
CREATE INDEX IF NOT EXISTS groups_last_seen ON groups (last_seen DESC);
CREATE TABLE IF NOT EXISTS group_hours (
    fingerprint TEXT NOT NULL,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, hour)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reports_fingerprint_created ON reports (fingerprint, created);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """What the store keeps; 0 turns a store-wide limit off."""

    keep_first: int = 10  # full reports kept from the start of each group
    keep_latest: int = 10  # and from its end; the others are only counted
    retain_days: float = 30.0  # reports (and groups not seen since) older than this go
    max_reports: int = 100_000  # the oldest reports go beyond this many
    max_db_mb: float = 1024.0  # the oldest reports go while the file's data is larger


def create_group_tables(connection: sqlite3.Connection) -> None:
    """The groups and their histograms, filled from the reports already stored (a migration
    of a file written before groups existed), and the file set to give space back
    (``auto_vacuum=INCREMENTAL``, which takes a ``VACUUM`` on a file that has tables)."""
    connection.executescript(_GROUP_TABLES)
    connection.execute(
        f"INSERT OR IGNORE INTO groups ({_GROUP_COLUMNS}) "
        "SELECT fingerprint, 'open', NULL, NULL, COUNT(*), MIN(created), MAX(created), NULL "
        "FROM reports GROUP BY fingerprint"
    )
    connection.execute(
        "INSERT OR IGNORE INTO group_hours (fingerprint, hour, count) "
        "SELECT fingerprint, CAST(created / 3600 AS INTEGER), COUNT(*) FROM reports "
        "GROUP BY 1, 2"
    )
    connection.commit()
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("VACUUM")


def record_reports(
    connection: sqlite3.Connection,
    rows: Iterable[tuple[str, str, float]],
    retention: Retention | None,
    held: Collection[str],
    now: float,
    settled: Collection[str] = (),
) -> set[str]:
    """Count newly stored reports ``(id, fingerprint, created)`` in their groups, move the
    groups' states (a resolved group regresses, a mute may end), and delete what each
    group keeps no longer (but the ``settled`` groups: ``window_plan`` kept their window).
    Returns the fingerprints whose state changed. In the caller's transaction; a few
    statements for the whole batch, not a few per group."""
    batch: dict[str, list[float]] = {}
    hours: dict[tuple[str, int], int] = {}
    for _, key, created in rows:
        batch.setdefault(key, []).append(created)
        hour = (key, int(created // _HOUR))
        hours[hour] = hours.get(hour, 0) + 1
    if not batch:
        return set()
    counted = [(key, hour, count) for (key, hour), count in hours.items()]
    for start in range(0, len(counted), _DELETE_CHUNK):  # one statement, not one per row
        chunk_hours = counted[start : start + _DELETE_CHUNK]
        connection.execute(
            "INSERT INTO group_hours (fingerprint, hour, count) "
            f"VALUES {', '.join(['(?, ?, ?)'] * len(chunk_hours))} "
            "ON CONFLICT (fingerprint, hour) DO UPDATE SET count = count + excluded.count",
            [value for row in chunk_hours for value in row],
        )
    keys = list(batch)
    found: dict[str, tuple[str, float | None, int | None]] = {}
    for start in range(0, len(keys), _DELETE_CHUNK):
        chunk = keys[start : start + _DELETE_CHUNK]
        for key, state, mute_until, remaining in connection.execute(
            "SELECT fingerprint, state, mute_until, mute_remaining FROM groups "
            f"WHERE fingerprint IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            found[key] = (state, mute_until, remaining)
    changed: set[str] = set()
    new_groups: list[tuple[str, int, float, float]] = []
    updates: list[tuple[Any, ...]] = []
    for key, times in batch.items():
        first, last = min(times), max(times)
        if key not in found:
            new_groups.append((key, len(times), first, last))
            continue
        state, remaining = _next_state(found[key], len(times), now)
        if state != found[key][0]:
            changed.add(key)
        updates.append((key, len(times), first, last, state, remaining))
    connection.executemany(
        f"INSERT INTO groups ({_GROUP_COLUMNS}) VALUES (?, 'open', NULL, NULL, ?, ?, ?, NULL)",
        new_groups,
    )
    for start in range(0, len(updates), _DELETE_CHUNK):  # one statement, not one per group
        chunk_updates = updates[start : start + _DELETE_CHUNK]
        connection.execute(
            "UPDATE groups SET total = total + v.column2, first_seen = MIN(first_seen, "
            "v.column3), last_seen = MAX(last_seen, v.column4), state = v.column5, "
            "mute_remaining = v.column6, "
            "mute_until = CASE WHEN v.column5 = 'muted' THEN mute_until END, "
            "state_changed = CASE WHEN v.column5 != state THEN ? ELSE state_changed END "
            f"FROM (VALUES {', '.join(['(?, ?, ?, ?, ?, ?)'] * len(chunk_updates))}) AS v "
            "WHERE groups.fingerprint = v.column1",
            [now, *(value for row in chunk_updates for value in row)],
        )
    if retention is not None:
        _trim_groups(connection, [key for key in keys if key not in settled], retention, held)
    return changed


def group_counts(connection: sqlite3.Connection, keys: Collection[str]) -> dict[str, int]:
    """How many reports each group of ``keys`` has stored (from the group index alone)."""
    ordered = list(keys)
    counts: dict[str, int] = {}
    for start in range(0, len(ordered), _DELETE_CHUNK):
        chunk = ordered[start : start + _DELETE_CHUNK]
        counts.update(
            connection.execute(
                "SELECT fingerprint, COUNT(*) FROM reports INDEXED BY reports_fingerprint_created "
                f"WHERE fingerprint IN ({', '.join('?' * len(chunk))}) GROUP BY fingerprint",
                chunk,
            ).fetchall()
        )
    return counts


@dataclass(slots=True)
class WindowPlan:
    """What a batch does to the groups' windows without the general trim (``window_plan``)."""

    reuse: list[tuple[int, Any]]  # (rowid of a report leaving its window, new row taking it)
    delete: list[str]  # reports leaving their window that no new row takes the place of
    settled: set[str]  # groups whose window this plan keeps: no trim after the batch


def window_plan(
    connection: sqlite3.Connection,
    rows: dict[str, list[Any]],
    counts: dict[str, int],
    retention: Retention,
    held: Collection[str],
    indexed_through: int,
) -> WindowPlan:
    """For a batch's new rows by group (each row's ``created`` at ``[2]``), which stored
    reports leave their group's window and which new rows take their place.

    In a storm every new report pushes its group's oldest "latest" report out: the reports
    after the group's first ``keep_first``, in order of time. Deleting that row and
    inserting the new one frees a page of the table and takes one again; the new row
    written over the leaving one (its rowid reused: an UPDATE) costs less and never fires
    the search index's delete trigger. That is the same outcome as inserting and then
    trimming (``_trim_groups``) when every new row of the group is newer than the
    reports that leave; other groups (a group's first reports, a batch older than what is
    stored) are left to the trim. A leaving report that is protected stays, as in the
    trim; one already indexed for search (rowid up to ``indexed_through``) is deleted (the
    trigger drops its index row) and its new row inserted, so reused rowids are never
    indexed ones (``search``)."""
    keep = retention.keep_first + retention.keep_latest
    plan = WindowPlan(reuse=[], delete=[], settled=set())
    leaving: dict[str, list[int]] = {}
    one_each: list[str] = []  # groups that one stored report leaves: a storm's usual case
    for key, group_rows in rows.items():
        stored = counts.get(key, 0)
        going = stored + len(group_rows) - keep
        if not group_rows:
            continue  # none of the batch's is written (no latest window): the trim decides
        if going <= 0:
            plan.settled.add(key)  # the window still holds them all
        elif going == 1 <= stored - retention.keep_first:
            one_each.append(key)
        elif going <= stored - retention.keep_first:
            leaving[key] = [
                rowid
                for (rowid,) in connection.execute(  # from the index alone: no report row read
                    "SELECT rowid FROM reports INDEXED BY reports_fingerprint_created "
                    "WHERE fingerprint = ? ORDER BY created, rowid LIMIT ? OFFSET ?",
                    (key, going, retention.keep_first),
                )
            ]
    for start in range(0, len(one_each), _DELETE_CHUNK):  # one statement for all of them
        chunk = one_each[start : start + _DELETE_CHUNK]
        for key, rowid in connection.execute(
            "SELECT k.column1, (SELECT rowid FROM reports INDEXED BY reports_fingerprint_created "
            "WHERE fingerprint = k.column1 ORDER BY created, rowid LIMIT 1 OFFSET ?) "
            f"FROM (VALUES {', '.join(['(?)'] * len(chunk))}) AS k",
            (retention.keep_first, *chunk),
        ):
            leaving[key] = [rowid]
    rowids = [rowid for found in leaving.values() for rowid in found]
    reports: dict[int, tuple[str, float]] = {}  # rowid: id, created
    for start in range(0, len(rowids), _DELETE_CHUNK):
        chunk_rowids = rowids[start : start + _DELETE_CHUNK]
        for rowid, report_id, created in connection.execute(
            "SELECT rowid, id, created FROM reports "
            f"WHERE rowid IN ({', '.join('?' * len(chunk_rowids))})",
            chunk_rowids,
        ):
            reports[rowid] = (report_id, created)
    ids = [report_id for report_id, _ in reports.values()]
    protected = _protected(connection, ids, held) if ids else set()
    for key, found in leaving.items():
        group_rows = sorted(rows[key], key=lambda row: (row[2], row[0]))
        if max(reports[rowid][1] for rowid in found) >= group_rows[0][2]:
            continue  # a new row is not newer than a leaving report: the trim decides
        plan.settled.add(key)
        for rowid in found:
            report_id = reports[rowid][0]
            if report_id in protected:
                continue
            if rowid > indexed_through and group_rows:
                plan.reuse.append((rowid, group_rows.pop()))
            else:
                plan.delete.append(report_id)
    return plan


def record_repeats(
    connection: sqlite3.Connection, rows: Iterable[tuple[str, int, float, float]], now: float
) -> set[str]:
    """Count errors agents counted, not captured (``protocol.Repeats``, the storm policy):
    ``(fingerprint, count, first, last)``, the times of one row in one clock hour. Like
    ``record_reports`` without a report: the group's total and hourly histogram grow by
    ``count`` exactly, its first and last seen widen, its state moves (a resolved group
    regresses, a mute counts them down), and a group not stored yet (its report shed or
    still in a batch) is made. Returns the fingerprints whose state changed. In the
    caller's transaction."""
    totals: dict[str, tuple[int, float, float]] = {}  # fingerprint -> count, first, last
    hours: dict[tuple[str, int], int] = {}
    for key, count, first, last in rows:
        hour = (key, int(first // _HOUR))
        hours[hour] = hours.get(hour, 0) + count
        so_far = totals.get(key)
        if so_far is not None:
            count, first, last = so_far[0] + count, min(so_far[1], first), max(so_far[2], last)
        totals[key] = (count, first, last)
    connection.executemany(
        "INSERT INTO group_hours (fingerprint, hour, count) VALUES (?, ?, ?) "
        "ON CONFLICT (fingerprint, hour) DO UPDATE SET count = count + excluded.count",
        [(key, hour, count) for (key, hour), count in hours.items()],
    )
    changed: set[str] = set()
    for key, (count, first, last) in totals.items():
        found = connection.execute(
            "SELECT state, mute_until, mute_remaining FROM groups WHERE fingerprint = ?", (key,)
        ).fetchone()
        if found is None:
            connection.execute(
                f"INSERT INTO groups ({_GROUP_COLUMNS}) "
                "VALUES (?, 'open', NULL, NULL, ?, ?, ?, NULL)",
                (key, count, first, last),
            )
            continue
        state, remaining = _next_state(found, count, now)
        if state != found[0]:
            changed.add(key)
        connection.execute(
            "UPDATE groups SET total = total + ?, first_seen = MIN(first_seen, ?), "
            "last_seen = MAX(last_seen, ?), state = ?, mute_remaining = ?, "
            "mute_until = CASE WHEN ? = 'muted' THEN mute_until END, "
            "state_changed = CASE WHEN ? != state THEN ? ELSE state_changed END "
            "WHERE fingerprint = ?",
            (count, first, last, state, remaining, state, state, now, key),
        )
    return changed


def _next_state(
    found: tuple[str, float | None, int | None], occurrences: int, now: float
) -> tuple[str, int | None]:
    """A group's state after ``occurrences`` more reports, and its mute's remaining count."""
    state, mute_until, remaining = found
    if state == "resolved":
        return "regressed", None
    if state != "muted":
        return state, None
    if mute_until is not None and mute_until <= now:
        return "open", None
    if remaining is not None:
        remaining -= occurrences
        return ("open", None) if remaining <= 0 else ("muted", remaining)
    return "muted", None


def _trim_groups(
    connection: sqlite3.Connection, keys: list[str], retention: Retention, held: Collection[str]
) -> int:
    """Delete the groups' reports beyond their first and latest ones (but protected ones).

    Read from the ``(fingerprint, created)`` index alone: each group's reports in order of
    time (ties in the order they were stored), the middle ones by their rowids."""
    keep = retention.keep_first + retention.keep_latest
    over: list[tuple[str, int]] = []
    for start in range(0, len(keys), _DELETE_CHUNK):
        chunk = keys[start : start + _DELETE_CHUNK]
        over += connection.execute(
            "SELECT fingerprint, COUNT(*) FROM reports INDEXED BY reports_fingerprint_created "
            f"WHERE fingerprint IN ({', '.join('?' * len(chunk))}) GROUP BY fingerprint "
            "HAVING COUNT(*) > ?",
            (*chunk, keep),
        ).fetchall()
    doomed: list[int] = []
    for key, count in over:
        doomed += [
            row[0]
            for row in connection.execute(
                "SELECT rowid FROM reports INDEXED BY reports_fingerprint_created "
                "WHERE fingerprint = ? ORDER BY created, rowid LIMIT ? OFFSET ?",
                (key, count - keep, retention.keep_first),
            )
        ]
    if not doomed:
        return 0
    ids: list[str] = []
    for start in range(0, len(doomed), _DELETE_CHUNK):
        chunk_rowids = doomed[start : start + _DELETE_CHUNK]
        ids += [
            row[0]
            for row in connection.execute(
                f"SELECT id FROM reports WHERE rowid IN ({', '.join('?' * len(chunk_rowids))})",
                chunk_rowids,
            )
        ]
    return _delete_unprotected(connection, ids, held)


def _protected(connection: sqlite3.Connection, ids: list[str], held: Collection[str]) -> set[str]:
    """Which of ``ids`` have held frames, a share link or a console transcript."""
    protected = {report_id for report_id in ids if report_id in held}
    for start in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[start : start + _DELETE_CHUNK]
        marks = ", ".join("?" * len(chunk))
        protected.update(
            row[0]
            for row in connection.execute(
                f"SELECT report_id FROM shares WHERE report_id IN ({marks})", chunk
            )
        )
    for start in range(0, len(ids), _DELETE_CHUNK):  # transcripts: reports/{id}/frames/{index}
        chunk = ids[start : start + _DELETE_CHUNK]
        protected.update(
            row[0]
            for row in connection.execute(
                f"WITH doomed (report_id) AS (VALUES {', '.join(['(?)'] * len(chunk))}) "
                "SELECT report_id FROM doomed WHERE EXISTS (SELECT 1 FROM console_entries "
                "WHERE target >= 'reports/' || report_id || '/' "
                "AND target < 'reports/' || report_id || '0')",
                chunk,
            )
        )
    return protected


def _delete_unprotected(
    connection: sqlite3.Connection, ids: list[str], held: Collection[str]
) -> int:
    protected = _protected(connection, ids, held)
    doomed = [report_id for report_id in ids if report_id not in protected]
    for start in range(0, len(doomed), _DELETE_CHUNK):
        chunk = doomed[start : start + _DELETE_CHUNK]
        connection.execute(
            f"DELETE FROM reports WHERE id IN ({', '.join('?' * len(chunk))})", chunk
        )
    return len(doomed)


def enforce_retention(
    connection: sqlite3.Connection, retention: Retention, held: Collection[str], now: float
) -> int:
    """The store-wide limits: age, number of reports, file size, and each group's window;
    then the reports stored ``INDEX_DELAY_SECONDS`` ago and still kept are indexed for
    search (see ``search``), and the freed pages go back to the file system. Returns the
    reports deleted. Commits."""
    deleted = 0
    over = connection.execute(
        "SELECT fingerprint FROM reports GROUP BY fingerprint HAVING COUNT(*) > ?",
        (retention.keep_first + retention.keep_latest,),
    ).fetchall()
    deleted += _trim_groups(connection, [key for (key,) in over], retention, held)
    if retention.retain_days > 0:
        cutoff = now - retention.retain_days * 86_400
        found = connection.execute("SELECT id FROM reports WHERE created < ?", (cutoff,))
        old = [row[0] for row in found]
        deleted += _delete_unprotected(connection, old, held)
        connection.execute("DELETE FROM group_hours WHERE hour < ?", (int(cutoff // _HOUR),))
        connection.execute(
            "DELETE FROM groups WHERE last_seen < ? AND NOT EXISTS "
            "(SELECT 1 FROM reports WHERE reports.fingerprint = groups.fingerprint)",
            (cutoff,),
        )
    if retention.max_reports > 0:
        excess = _count(connection) - retention.max_reports
        if excess > 0:
            deleted += _delete_oldest(connection, excess, held)
    if retention.max_db_mb > 0:
        limit = int(retention.max_db_mb * 1024 * 1024)
        while _used_bytes(connection) > limit:
            chunk = max(1, _count(connection) // 10)
            gone = _delete_oldest(connection, chunk, held)
            deleted += gone
            if gone == 0:
                break  # all that is left is protected
    index_pending(connection, now - INDEX_DELAY_SECONDS)
    connection.commit()
    give_space_back(connection)
    return deleted


def give_space_back(connection: sqlite3.Connection) -> None:
    """Return the file's free pages to the file system (at the next checkpoint in WAL)."""
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    if free:  # execute() would step it once: one page; a script runs it to the end
        connection.executescript("PRAGMA incremental_vacuum;")


def _count(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT COUNT(*) FROM reports").fetchone()[0])


def _used_bytes(connection: sqlite3.Connection) -> int:
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _delete_oldest(connection: sqlite3.Connection, count: int, held: Collection[str]) -> int:
    """Delete the ``count`` oldest unprotected reports (fewer when too many are protected)."""
    deleted, offset = 0, 0
    while deleted < count:
        want = count - deleted
        ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM reports ORDER BY created, id LIMIT ? OFFSET ?", (want, offset)
            )
        ]
        if not ids:
            break
        gone = _delete_unprotected(connection, ids, held)
        deleted += gone
        offset += len(ids) - gone  # the protected ones stay in front
    return deleted


def state_condition(states: Collection[str], now: float) -> tuple[str, list[Any]]:
    """An SQL condition on a ``groups`` row: its state as shown (a mute for a time that
    ended is ``open``) is one of ``states``; and its parameters."""
    marks = ", ".join("?" * len(states))
    shown = "CASE WHEN state = 'muted' AND mute_until <= ? THEN 'open' ELSE state END"
    return f"({shown}) IN ({marks})", [now, *states]


@dataclass(frozen=True, slots=True)
class GroupPage:
    """Which groups ``select_groups`` lists: those in ``states`` (all when empty), and the
    page after the row ``(before, before_key)`` (last seen, fingerprint) when given."""

    states: tuple[str, ...] = ()
    before: float | None = None
    before_key: str = ""

    def where(self, now: float) -> tuple[str, list[Any]]:
        """The SQL conditions (``1`` for none) and their parameters."""
        conditions, parameters = ["1"], []
        if self.states:
            condition, values = state_condition(self.states, now)
            conditions.append(condition)
            parameters.extend(values)
        if self.before is not None:
            conditions.append("(last_seen < ? OR (last_seen = ? AND fingerprint > ?))")
            parameters.extend([self.before, self.before, self.before_key])
        return " AND ".join(conditions), parameters


def count_groups(connection: sqlite3.Connection, now: float, states: Collection[str] = ()) -> int:
    """How many groups are in ``states`` (all when empty)."""
    where, parameters = GroupPage(tuple(states)).where(now)
    found = connection.execute(f"SELECT COUNT(*) FROM groups WHERE {where}", parameters)
    return int(found.fetchone()[0])


def select_groups(
    connection: sqlite3.Connection,
    limit: int,
    now: float,
    summary_columns: str,
    page: GroupPage = GroupPage(),
) -> list[dict[str, Any]]:
    """Groups, most recently seen first (ties by fingerprint): state, seen (``count``) and
    kept, the last 24 hours hour by hour, the latest kept report, and the agents and apps
    of the kept reports. A handful of statements for the whole page, not a few per group."""
    where, parameters = page.where(now)
    rows = connection.execute(
        f"SELECT {_GROUP_COLUMNS} FROM groups WHERE {where} "
        "ORDER BY last_seen DESC, fingerprint LIMIT ?",
        (*parameters, limit),
    ).fetchall()
    if not rows:
        return []
    keys = [row[0] for row in rows]
    marks = ", ".join("?" * len(keys))
    names = summary_columns.split(", ")
    this_hour = int(now // _HOUR)
    kept: dict[str, int] = dict(
        connection.execute(
            f"SELECT fingerprint, COUNT(*) FROM reports WHERE fingerprint IN ({marks}) "
            "GROUP BY fingerprint",
            keys,
        ).fetchall()
    )
    prefixed = ", ".join(f"r.{name}" for name in names)
    latest: dict[str, dict[str, Any]] = {}
    for found in connection.execute(
        f"SELECT {prefixed} FROM groups g JOIN reports r ON r.id = ("
        "SELECT id FROM reports WHERE fingerprint = g.fingerprint "
        f"ORDER BY created DESC, id LIMIT 1) WHERE g.fingerprint IN ({marks})",
        keys,
    ):
        summary = dict(zip(names, found, strict=True))
        latest[str(summary["fingerprint"])] = summary
    workers: dict[str, list[tuple[str, int, str, str, int]]] = {}
    for key, agent_id, pid, host, app, count in connection.execute(
        "SELECT fingerprint, agent_id, pid, host, app, COUNT(*) FROM reports "
        f"WHERE fingerprint IN ({marks}) GROUP BY fingerprint, agent_id "
        "ORDER BY MAX(created) DESC",
        keys,
    ):
        workers.setdefault(key, []).append((agent_id, pid, host, app, count))
    hours: dict[str, dict[int, int]] = {}
    for key, hour, count in connection.execute(
        f"SELECT fingerprint, hour, count FROM group_hours WHERE fingerprint IN ({marks}) "
        "AND hour > ?",
        (*keys, this_hour - _SPARKLINE_HOURS),
    ):
        hours.setdefault(key, {})[hour] = count
    groups = []
    for key, state, mute_until, remaining, total, first, last, changed in rows:
        if state == "muted" and mute_until is not None and mute_until <= now:
            state, mute_until = "open", None
        agents = workers.get(key, [])[:50]
        by_hour = hours.get(key, {})
        groups.append(
            {
                "fingerprint": key,
                "state": state,
                "mute_until": mute_until,
                "mute_remaining": remaining,
                "state_changed": changed,
                "count": total,
                "kept": kept.get(key, 0),
                "first_seen": first,
                "last_seen": last,
                "hourly": [
                    by_hour.get(hour, 0)
                    for hour in range(this_hour - _SPARKLINE_HOURS + 1, this_hour + 1)
                ],
                "latest": latest.get(key),
                "apps": sorted({app for _, _, _, app, _ in agents}),
                "workers": [
                    {"agent_id": a, "pid": p, "host": h, "count": n} for a, p, h, _, n in agents
                ],
            }
        )
    return groups


def set_group_state(
    connection: sqlite3.Connection,
    key: str,
    state: str,
    now: float,
    mute_until: float | None = None,
    mute_remaining: int | None = None,
) -> bool:
    """Resolve, reopen, ignore or mute a group; False when there is no such group."""
    if state not in GROUP_STATES:
        raise ValueError(f"unknown state {state!r}")
    cursor = connection.execute(
        "UPDATE groups SET state = ?, mute_until = ?, mute_remaining = ?, state_changed = ? "
        "WHERE fingerprint = ?",
        (state, mute_until, mute_remaining, now, key),
    )
    connection.commit()
    return cursor.rowcount > 0


def delete_report(connection: sqlite3.Connection, report_id: str) -> bool:
    """Delete one report (its group keeps counting it as seen); False when unknown."""
    cursor = connection.execute("DELETE FROM reports WHERE id = ?", (report_id,))
    connection.execute("DELETE FROM shares WHERE report_id = ?", (report_id,))
    connection.commit()
    give_space_back(connection)
    return cursor.rowcount > 0


def delete_group(connection: sqlite3.Connection, key: str) -> int | None:
    """Delete a group, its counts and its reports; the reports deleted, None when unknown."""
    found = connection.execute("SELECT 1 FROM groups WHERE fingerprint = ?", (key,)).fetchone()
    if found is None:
        return None
    connection.execute(
        "DELETE FROM shares WHERE report_id IN (SELECT id FROM reports WHERE fingerprint = ?)",
        (key,),
    )
    cursor = connection.execute("DELETE FROM reports WHERE fingerprint = ?", (key,))
    connection.execute("DELETE FROM group_hours WHERE fingerprint = ?", (key,))
    connection.execute("DELETE FROM groups WHERE fingerprint = ?", (key,))
    connection.commit()
    give_space_back(connection)
    return cursor.rowcount


def clear_all(connection: sqlite3.Connection) -> int:
    """Delete every report, group and share link; the reports deleted."""
    cursor = connection.execute("DELETE FROM reports")
    for table in ("group_hours", "groups", "shares"):
        connection.execute(f"DELETE FROM {table}")  # noqa: S608 (a fixed name)
    connection.commit()
    give_space_back(connection)
    return cursor.rowcount
