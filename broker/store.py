"""The broker's SQLite file: reports and agents, written by one worker thread.

SQLite calls block, so calls run on a single-thread executor (the store's thread): the event
loop never waits on the disk. The one connection is used by whoever holds its lock: that
thread, or ``flush`` on the loop when the thread is idle (below). WAL mode keeps readers and
the writer apart and makes a report durable once ``add_report`` returns, so a broker that
is killed and restarted loses nothing it had acknowledged. SQLite's automatic checkpoint is
off; the store's thread copies the WAL into the database file every ``_CHECKPOINT_CHANGES``
rows instead, so a commit made on the loop never runs one.

Reports arrive in storms, so they are written in batches: ``queue_report`` returns a future
at once, and the store's thread inserts every report queued meanwhile in one transaction
(at most ``_REPORT_BATCH``); a batch is handed over as soon as the thread has no report
batch in hand, so a lone report is written at once and a storm in few commits. The future
resolves after the commit: a report counts as stored (and the dashboards hear of it) only
once it is durable. A broker killed before that commit loses the reports of that batch and
of the queue behind it, exactly like the ones still in its zmq buffers; agents are never
told that a report was stored (the protocol has no report acknowledgement), so nothing an
agent was told about is lost. ``add_report`` is ``queue_report`` awaited. Reads see a
report once it is committed (when its future resolves and the dashboards hear of it), not
before: a read during a storm waits for at most the batch in hand, not for the whole queue.

The console's hot path does not wait for its writes: ``start_console_entry``,
``queue_finish_console_entry`` and ``queue_audit`` queue them and return at once. Queued
writes run in order, in one transaction per batch, and always before any call made after
them (``_call`` hands them over first), so a read that follows an answer (a reload's
transcript, the audit list) sees what the answer promised. They are committed at most
``_QUEUE_SECONDS`` (50 ms) after being queued, in one batch, or at once by ``flush()``: the
eval's audit middleware flushes before the answer leaves, so an eval's writes are durable
in one commit, made on the loop itself when the store's thread is idle (no thread
hand-off in an eval's round trip).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .frames import FrameCache, FrameTargets, frame_targets
from .grouping import fingerprint
from .wire import wire_json

__all__ = ["Store", "AgentRecord", "ReportFilter", "report_summary"]

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], object]
log = logging.getLogger("debugbroker")
AgentRecord = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    created REAL NOT NULL,
    type_name TEXT NOT NULL,
    message TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    url TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_created ON reports (created DESC);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    python TEXT NOT NULL,
    started REAL NOT NULL,
    evalex INTEGER NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    client TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    frame_index INTEGER,
    code TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    author TEXT NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_entries_target ON console_entries (target, id);
CREATE TABLE IF NOT EXISTS shares (
    share_id TEXT PRIMARY KEY,
    report_id TEXT NOT NULL,
    created REAL NOT NULL
);
"""
# Queued writes wait this long for more to join their batch: an eval's transcript entry,
# its result and its audit row then go in one commit after the answer, not during it.
_QUEUE_SECONDS = 0.05
# Rows written between two checkpoints of the WAL (a report is a row of about 5 KB).
_CHECKPOINT_CHANGES = 1000
_REPORT_BATCH = 200  # reports inserted in one transaction at most
_ROWS_PER_STATEMENT = 200  # 11 parameters a row: well under SQLite's 32,766 per statement
_CONSOLE_KEEP = 500  # entries kept per console transcript; older ones are deleted...
_CONSOLE_TRIM_EVERY = 50  # ...every 50 entries of that transcript (at most 549 are kept)
_CONSOLE_TRIM_TARGETS = 10_000  # transcripts counted for trimming (then counting restarts)
_AUDIT_COLUMNS = (
    "id, at, action, role, name, client, agent_id, report_id, frame_index, code, outcome, detail"
)
_AUDIT_KEEP = 100_000  # rows kept; older ones are deleted as new ones arrive
_SUMMARY_COLUMNS = "id, agent_id, created, type_name, message, pid, host, app, url, fingerprint"
_AGENT_COLUMNS = "agent_id, pid, host, app, python, started, evalex, last_seen"
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
        if self.path:
            conditions.append("debugbroker_url_path(url) LIKE ? ESCAPE '\\'")
            parameters.append(f"{_like_escape(self.path)}%")
        return " AND ".join(conditions), parameters


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _url_path(url: object) -> str:
    return urlsplit(url).path if isinstance(url, str) else ""


def _add_fingerprints(connection: sqlite3.Connection) -> None:
    """Give reports stored before fingerprints existed their column and value."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(reports)")}
    if "fingerprint" not in columns:
        connection.execute("ALTER TABLE reports ADD COLUMN fingerprint TEXT")
    connection.execute("CREATE INDEX IF NOT EXISTS reports_fingerprint ON reports (fingerprint)")
    rows = connection.execute("SELECT id, body FROM reports WHERE fingerprint IS NULL").fetchall()
    for report_id, body in rows:
        try:
            value = fingerprint(json.loads(body))
        except ValueError:
            value = ""
        connection.execute("UPDATE reports SET fingerprint = ? WHERE id = ?", (value, report_id))


class Store:
    """Reports and agents in one SQLite file (WAL), every call off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="debugbroker-store")
        self._connection: sqlite3.Connection | None = None
        self._frames = FrameCache()
        # Whoever uses the connection holds this: the store's thread, or ``flush`` on the
        # loop when that thread is idle. ``_jobs`` counts jobs handed to the thread.
        self._connection_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs = 0
        self._changes_at_checkpoint = 0
        self._queued: list[Write] = []  # writes nobody waits for, not yet handed over
        self._queue_timer: asyncio.TimerHandle | None = None
        self._next_console_id = 0  # the store is the only writer: it numbers entries itself
        self._console_untrimmed: dict[str, int] = {}  # target -> entries since its last trim
        # Reports not yet handed to the store's thread, and how many are in its hands.
        self._reports: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._report_batches = 0
        self._reports_in_hand = 0
        self.report_commits = 0  # transactions that wrote reports (a storm's batching)

    async def _call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        self._hand_over_queued()  # queued writes first: this call must see them
        return await asyncio.wrap_future(self._submit(function))

    def _submit(self, function: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Hand ``function`` to the store's thread (only ever called on the event loop)."""
        with self._jobs_lock:
            self._jobs += 1
        return self._executor.submit(self._run_job, function)

    def _run_job(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """On the store's thread: one job, then a checkpoint if the WAL has grown."""
        try:
            with self._connection_lock:
                connection = self._connection
                if connection is None:
                    raise RuntimeError("the store is closed")
                try:
                    return function(connection)
                finally:
                    self._checkpoint_if_grown(connection)
        finally:
            with self._jobs_lock:
                self._jobs -= 1

    def _checkpoint_if_grown(self, connection: sqlite3.Connection) -> None:
        """Copy the WAL into the database file once enough rows were written since the last
        time (SQLite's own automatic checkpoint is off: it would also run in a commit made
        on the event loop, see ``flush``, and block it for milliseconds)."""
        try:
            changes = connection.total_changes
            if changes - self._changes_at_checkpoint < _CHECKPOINT_CHANGES:
                return
            self._changes_at_checkpoint = changes
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.ProgrammingError:
            pass  # the job closed the connection (the store is closing)
        except sqlite3.Error:
            log.exception("checkpointing the store's write-ahead log failed")

    def _queue(self, write: Write) -> None:
        """Run ``write`` on the store's thread soon, in order, without waiting for it."""
        if not self._queued:
            loop = asyncio.get_running_loop()
            self._queue_timer = loop.call_later(_QUEUE_SECONDS, self._hand_over_queued)
        self._queued.append(write)

    def _hand_over_queued(self) -> None:
        """Give the queued writes to the store's thread as one batch (one commit)."""
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        if self._queued and self._connection is not None:
            batch, self._queued = self._queued, []
            self._submit(lambda connection: _run_batch(connection, batch))

    async def flush(self) -> None:
        """Wait until every write queued so far is committed.

        When the store's thread has nothing in hand (no job handed over and not finished),
        the queued writes are committed right here on the event loop: a console eval's
        transcript entry and audit row are a few small statements and one append to the
        WAL (tens of µs; checkpoints never run here), while the trip to the store's thread
        and back is two thread wake-ups, about half a millisecond of an eval's round trip.
        Otherwise they are handed over behind the jobs already there, and awaited.
        """
        if not self._commit_here():
            await self._call(lambda connection: None)

    def _commit_here(self) -> bool:
        """Run the queued writes on this (the loop's) thread if the store's thread is idle."""
        connection = self._connection
        if connection is None:
            return False
        with self._jobs_lock:
            if self._jobs:  # only this thread hands jobs over: none can start meanwhile
                return False
        if not self._connection_lock.acquire(blocking=False):
            return False
        try:
            if self._queue_timer is not None:
                self._queue_timer.cancel()
                self._queue_timer = None
            batch, self._queued = self._queued, []
            if batch and not _run_batch(connection, batch, wait=False):
                self._queued[:0] = batch  # the store's thread waits for the lock instead
                return False
            grown = connection.total_changes - self._changes_at_checkpoint
        finally:
            self._connection_lock.release()
        if grown >= _CHECKPOINT_CHANGES:  # the store's thread checkpoints, not the loop
            self._submit(lambda connection: None)
        return True

    async def open(self) -> None:
        """Open (creating if needed) the database file."""

        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Reports hold the app's locals: only this user may read them (SQLite gives
            # its -wal and -shm files the mode of the database file).
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            connection = sqlite3.connect(self.path, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_if_grown
            connection.executescript(_SCHEMA)
            connection.create_function("debugbroker_url_path", 1, _url_path, deterministic=True)
            _add_fingerprints(connection)
            connection.execute(  # evals cut short by a broker stop never get their answer
                "UPDATE console_entries SET state = 'failed', body = ? WHERE state = 'running'",
                (json.dumps({"failure": "the broker stopped while this ran"}),),
            )
            connection.commit()
            return connection

        def last_console_id(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence "
                "WHERE name = 'console_entries'), 0), COALESCE(MAX(id), 0)) "
                "FROM console_entries"
            ).fetchone()
            return int(row[0] or 0)

        loop = asyncio.get_running_loop()
        self._connection = await loop.run_in_executor(self._executor, connect)
        self._next_console_id = await self._call(last_console_id) + 1

    async def close(self) -> None:
        """Close the file and stop the worker thread."""
        if self._connection is not None:
            self._hand_over_reports(at_once=True)  # queued reports are written first
            await self._call(lambda connection: connection.close())
            self._connection = None
        self._executor.shutdown(wait=True)

    # --- reports ------------------------------------------------------------------------

    async def add_report(self, report: dict[str, Any]) -> bool:
        """Store a report (its wire dict); False when one with this id is already stored."""
        return await self.queue_report(report)

    def queue_report(self, report: dict[str, Any]) -> asyncio.Future[bool]:
        """Store a report (its wire dict) in the next batch, without waiting (see the module's
        docstring). The future resolves once it is committed: False when one with this id
        was already stored; it fails with the error when the report could not be written."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._connection is None:
            future.set_exception(RuntimeError("the store is closed"))
            return future
        self._reports.append((report, future))
        self._hand_over_reports(at_once=False)
        return future

    @property
    def report_backlog(self) -> int:
        """Reports queued or being written, not yet committed."""
        return len(self._reports) + self._reports_in_hand

    def _hand_over_reports(self, *, at_once: bool) -> None:
        """Give queued reports to the store's thread: when it has none in hand, or now."""
        while self._reports and self._connection is not None:
            if self._report_batches and not at_once:
                return  # the batch in hand hands over the next one when it is committed
            batch = self._reports[:_REPORT_BATCH]
            del self._reports[:_REPORT_BATCH]
            self._report_batches += 1
            self._reports_in_hand += len(batch)
            insert = functools.partial(_insert_reports, reports=[report for report, _ in batch])
            done = asyncio.wrap_future(self._submit(insert))
            done.add_done_callback(functools.partial(self._reports_written, batch))

    def _reports_written(
        self,
        batch: list[tuple[dict[str, Any], asyncio.Future[bool]]],
        written: asyncio.Future[list[bool | Exception]],
    ) -> None:
        """A batch is committed (or failed): resolve its futures, hand over the next one."""
        self._report_batches -= 1
        self._reports_in_hand -= len(batch)
        self.report_commits += 1
        if written.cancelled():
            outcomes: list[bool | Exception] = [RuntimeError("the store is closed")] * len(batch)
        elif written.exception() is not None:
            error = written.exception()
            log.error("storing %d reports failed: %s", len(batch), error)
            outcomes = [RuntimeError(f"storing the report failed: {error}")] * len(batch)
        else:
            outcomes = written.result()
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._hand_over_reports(at_once=False)

    async def list_reports(
        self, limit: int, before: float | None = None, filters: ReportFilter | None = None
    ) -> list[dict[str, Any]]:
        """Report summaries, newest first, optionally only those created before ``before``."""

        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            query = f"SELECT {_SUMMARY_COLUMNS} FROM reports"
            conditions, parameters = (filters or ReportFilter()).where()
            if before is not None:
                conditions = " AND ".join(filter(None, [conditions, "created < ?"]))
                parameters.append(before)
            if conditions:
                query += f" WHERE {conditions}"
            query += " ORDER BY created DESC, id LIMIT ?"
            rows = connection.execute(query, (*parameters, limit)).fetchall()
            names = _SUMMARY_COLUMNS.split(", ")
            return [dict(zip(names, row, strict=True)) for row in rows]

        return await self._call(select)

    async def get_report(self, report_id: str) -> dict[str, Any] | None:
        """The full report (wire dict), or None when unknown."""

        def select(connection: sqlite3.Connection) -> dict[str, Any] | None:
            row = connection.execute("SELECT body FROM reports WHERE id = ?", (report_id,))
            found = row.fetchone()
            return None if found is None else dict(json.loads(found[0]))

        return await self._call(select)

    async def get_frame_targets(self, report_id: str) -> FrameTargets | None:
        """Which agent holds a report's frames and their ids (cached), or None when unknown."""
        cached = self._frames.get(report_id)
        if cached is not None:
            return cached

        def select(connection: sqlite3.Connection) -> FrameTargets | None:
            row = connection.execute("SELECT body FROM reports WHERE id = ?", (report_id,))
            found = row.fetchone()
            return None if found is None else frame_targets(json.loads(found[0]))

        targets = await self._call(select)
        if targets is not None:
            self._frames.put(report_id, targets)
        return targets

    async def list_groups(self, limit: int) -> list[dict[str, Any]]:
        """Reports grouped by fingerprint, most recently seen first (see ``grouping``)."""

        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                "SELECT fingerprint, COUNT(*), MIN(created), MAX(created) FROM reports "
                "GROUP BY fingerprint ORDER BY MAX(created) DESC LIMIT ?",
                (limit,),
            ).fetchall()
            groups = []
            for key, count, first, last in rows:
                latest = connection.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM reports WHERE fingerprint = ? "
                    "ORDER BY created DESC, id LIMIT 1",
                    (key,),
                ).fetchone()
                workers = connection.execute(
                    "SELECT agent_id, pid, host, COUNT(*) FROM reports WHERE fingerprint = ? "
                    "GROUP BY agent_id ORDER BY MAX(created) DESC LIMIT 50",
                    (key,),
                ).fetchall()
                groups.append(
                    {
                        "fingerprint": key,
                        "count": count,
                        "first_seen": first,
                        "last_seen": last,
                        "latest": dict(zip(_SUMMARY_COLUMNS.split(", "), latest, strict=True)),
                        "workers": [
                            {"agent_id": a, "pid": p, "host": h, "count": n}
                            for a, p, h, n in workers
                        ],
                    }
                )
            return groups

        return await self._call(select)

    # --- share links ----------------------------------------------------------------------

    async def create_share(self, share_id: str, report_id: str, created: float) -> None:
        """Record a read-only share link of a report."""

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO shares (share_id, report_id, created) VALUES (?, ?, ?)",
                (share_id, report_id, created),
            )
            connection.commit()

        await self._call(insert)

    async def shared_report_id(self, share_id: str) -> str | None:
        """The report a share link shows, or None when the link is unknown or revoked."""

        def select(connection: sqlite3.Connection) -> str | None:
            row = connection.execute(
                "SELECT report_id FROM shares WHERE share_id = ?", (share_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._call(select)

    async def list_shares(self, report_id: str) -> list[dict[str, Any]]:
        """The share links of a report, newest first."""

        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                "SELECT share_id, created FROM shares WHERE report_id = ? ORDER BY created DESC",
                (report_id,),
            ).fetchall()
            return [{"share_id": share_id, "created": created} for share_id, created in rows]

        return await self._call(select)

    async def delete_share(self, share_id: str) -> bool:
        """Revoke a share link; False when it did not exist."""

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute("DELETE FROM shares WHERE share_id = ?", (share_id,))
            connection.commit()
            return cursor.rowcount > 0

        return await self._call(delete)

    async def count_reports(self) -> int:
        """How many reports are stored."""
        return await self._call(
            lambda connection: int(connection.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
        )

    # --- agents -------------------------------------------------------------------------

    async def save_agent(self, agent: AgentRecord) -> None:
        """Insert or update an agent (the fields of ``_AGENT_COLUMNS``)."""
        names = _AGENT_COLUMNS.split(", ")
        values = tuple(int(agent[n]) if n == "evalex" else agent[n] for n in names)

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"INSERT OR REPLACE INTO agents ({_AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            connection.commit()

        await self._call(upsert)

    async def list_agents(self, limit: int = 1000) -> list[AgentRecord]:
        """Agents the broker has ever seen, most recently seen first."""

        def select(connection: sqlite3.Connection) -> list[AgentRecord]:
            rows = connection.execute(
                f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY last_seen DESC LIMIT ?", (limit,)
            ).fetchall()
            names = _AGENT_COLUMNS.split(", ")
            agents = [dict(zip(names, row, strict=True)) for row in rows]
            for agent in agents:
                agent["evalex"] = bool(agent["evalex"])
            return agents

        return await self._call(select)

    # --- audit log ----------------------------------------------------------------------

    async def add_audit(self, entry: dict[str, Any]) -> None:
        """Append an audit entry (the columns of ``_AUDIT_COLUMNS`` but ``id``)."""
        insert = _audit_insert(entry)

        def insert_and_commit(connection: sqlite3.Connection) -> None:
            insert(connection)
            connection.commit()

        await self._call(insert_and_commit)

    def queue_audit(self, entry: dict[str, Any]) -> None:
        """Like ``add_audit`` without waiting: stored before any later call runs."""
        self._queue(_audit_insert(entry))

    async def list_audit(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first, optionally only those with ``id < before``."""

        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            query = f"SELECT {_AUDIT_COLUMNS} FROM audit"
            parameters: tuple[Any, ...] = ()
            if before is not None:
                query += " WHERE id < ?"
                parameters = (before,)
            rows = connection.execute(query + " ORDER BY id DESC LIMIT ?", (*parameters, limit))
            names = _AUDIT_COLUMNS.split(", ")
            return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]

        return await self._call(select)

    # --- console transcripts ------------------------------------------------------------

    def start_console_entry(self, target: str, author: str, code: str, created: float) -> int:
        """Start a transcript entry (state ``running``) and return its id, without waiting:
        it is stored before any later call runs (see the module's docstring).

        A transcript keeps its last ``_CONSOLE_KEEP`` (500) entries, approximately: it is
        trimmed to 500 once every ``_CONSOLE_TRIM_EVERY`` (50) of its entries, not on each
        (a DELETE per eval was about 5% of the broker's CPU per eval), so between two trims
        it holds up to 549 (and a few more after a broker restart, which starts the count
        again). ``GET .../transcript`` lists at most 500 either way.
        """
        entry_id = self._next_console_id
        self._next_console_id += 1
        untrimmed = self._console_untrimmed.get(target, 0) + 1
        trim = untrimmed >= _CONSOLE_TRIM_EVERY
        if trim:
            self._console_untrimmed.pop(target, None)
        else:
            if len(self._console_untrimmed) >= _CONSOLE_TRIM_TARGETS:
                self._console_untrimmed.clear()  # bounded memory; counts start again
            self._console_untrimmed[target] = untrimmed
        self._queue(_ConsoleInsert(entry_id, target, created, author, code, trim))
        return entry_id

    def queue_finish_console_entry(
        self, entry_id: int, state: str, body: dict[str, Any] | str
    ) -> None:
        """Record how an entry ended: ``state`` and its ``result``/``failure`` as ``body``
        (or ``body`` already as JSON text), without waiting (stored before any later call
        runs). While the entry's insert still waits in the queue (an eval's answer comes
        before its writes are committed), the insert takes the end and no UPDATE runs."""
        if isinstance(body, str):
            text = body
        else:
            text = wire_json(body)
        for write in reversed(self._queued):  # not handed over: only this thread sees it
            if isinstance(write, _ConsoleInsert) and write.entry_id == entry_id:
                write.state, write.body = state, text
                return

        def update(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE console_entries SET state = ?, body = ? WHERE id = ?",
                (state, text, entry_id),
            )

        self._queue(update)

    async def list_console_entries(self, target: str, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries of a transcript, oldest first, body fields merged in."""

        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                "SELECT id, target, created, author, code, state, body FROM console_entries "
                "WHERE target = ? ORDER BY id DESC LIMIT ?",
                (target, limit),
            ).fetchall()
            entries = []
            for entry_id, target_, created, author, code, state, body in reversed(rows):
                entry = {"id": entry_id, "target": target_, "created": created}
                entry |= {"author": author, "code": code, "state": state}
                entries.append(entry | {"result": None, "failure": None} | json.loads(body))
            return entries

        return await self._call(select)


@dataclass(slots=True)
class _ConsoleInsert:
    """The queued insert of a transcript entry (a ``Write``). It is changed only while it
    waits in ``Store._queued``, on the event loop, before any thread can run it."""

    entry_id: int
    target: str
    created: float
    author: str
    code: str
    trim: bool  # trim the target's transcript to its last _CONSOLE_KEEP entries
    state: str = "running"
    body: str = "{}"

    def __call__(self, connection: sqlite3.Connection) -> None:
        row = (self.entry_id, self.target, self.created, self.author, self.code)
        connection.execute(
            "INSERT INTO console_entries (id, target, created, author, code, state, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row, self.state, self.body),
        )
        if self.trim:  # everything older than the target's last _CONSOLE_KEEP entries
            connection.execute(
                "DELETE FROM console_entries WHERE target = ? AND id <= (SELECT id "
                "FROM console_entries WHERE target = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.target, self.target, _CONSOLE_KEEP),
            )


def _audit_insert(entry: dict[str, Any]) -> Write:
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


def _insert_reports(
    connection: sqlite3.Connection, reports: list[dict[str, Any]]
) -> list[bool | Exception]:
    """Insert reports in one transaction: for each, whether it was new, or why it was not
    written (a report that cannot be encoded fails alone; a failing commit fails them all).

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
                f"INSERT OR IGNORE INTO reports ({_SUMMARY_COLUMNS}, body) VALUES {values}",
                [value for row in chunk_rows for value in row],
            )
        connection.commit()
    except sqlite3.Error:
        connection.rollback()
        raise
    for index, report_id in positions:
        if report_id in existing:
            outcomes[index] = False  # already stored before this batch
    return outcomes


_BUSY_TIMEOUT_MS = 5_000  # sqlite3.connect's default timeout: the store's thread waits this long


def _run_batch(connection: sqlite3.Connection, batch: list[Write], *, wait: bool = True) -> bool:
    """Queued writes in order, then one commit; one failing write does not stop the rest.

    ``wait=False`` is for the event loop, which must never wait for the file's lock (held a
    moment by another program reading or writing the file: the sqlite3 shell, a backup):
    when the lock is busy everything is rolled back and False returned, for the store's
    thread to write (it may wait).
    """
    if not wait:
        connection.execute("PRAGMA busy_timeout = 0")
    try:
        for write in batch:
            try:
                write(connection)
            except sqlite3.Error as error:
                if not wait and _busy(error):
                    connection.rollback()
                    return False
                log.exception("a queued write to the store failed")
        try:
            connection.commit()
        except sqlite3.Error as error:
            if not wait and _busy(error):
                connection.rollback()
                return False
            log.exception("committing queued writes to the store failed")
        return True
    finally:
        if not wait:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


def _busy(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error)
    )
