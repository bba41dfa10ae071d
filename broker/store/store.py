"""The broker's SQLite file, behind one door: ``Store``.

Every statement runs on the store's thread (``thread.py``), never on the event loop; the
tables' statements live one module per table (``reports``, ``console``, ``agents``,
``shares``, ``audit``), the schema and what opening the file checks and repairs in
``schema``. This module ties them to the thread and batches reports.

Reports arrive in storms, so ``queue_report`` returns a future at once and the thread
inserts the reports queued meanwhile in one transaction; in a storm the next batch gathers
for up to ``_GATHER_SECONDS`` (fewer, larger commits). A future resolves after its commit:
only then does a report count as stored, do the dashboards hear of it, and is its agent
told (``protocol.Stored``), so a broker killed mid-batch loses no report an agent was told
was stored. A batch that meets a full disk is rolled back and waits in memory, bounded by
``max_waiting_reports`` and ``max_waiting_bytes``, retried every ``retry_seconds``; past the
bound a report is shed and counted with the reason (docs/limits.md).

The console's hot path does not wait for its writes: ``start_console_entry``,
``queue_finish_console_entry`` and ``queue_finish_audit`` queue them and return at once (see
``thread.py`` for when they are committed and why a later read always sees them).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any

from debugbroker.broker.store import agents as store_agents
from debugbroker.broker.store import audit as store_audit
from debugbroker.broker.store import breakpoints as store_breakpoints
from debugbroker.broker.store import console as store_console
from debugbroker.broker.store import groups as store_groups
from debugbroker.broker.store import reports as store_reports
from debugbroker.broker.store import shares as store_shares
from debugbroker.broker.store.agents import AgentRecord
from debugbroker.broker.store.frame_targets import FrameCache, FrameTargets
from debugbroker.broker.store.groups import Retention
from debugbroker.broker.store.journal import AuditJournal, replay_journal
from debugbroker.broker.store.reports import ReportFilter, report_summary
from debugbroker.broker.store.thread import DISK_FULL, StoreThread, Write, storage_fault
from debugbroker.broker.wire import wire_json

__all__ = ["Store", "AgentRecord", "ReportFilter", "ReportShed", "Retention", "report_summary"]

log = logging.getLogger("debugbroker")
# Reports inserted in one transaction at most; after a commit, the next batch gathers until
# it has this many or ``_GATHER_SECONDS`` have passed. In a storm each batch rewrites a page
# of the table and a few index pages per report, and its commit and checkpoint write them:
# fuller batches share the index pages (BENCHMARKS.md section 8). The gather is short: at
# 60 ms the store's thread sat idle while the loop filled the next batch, and the ingest rate
# fell to 0.74-0.86x of today's broker; at 10 ms it is 1.05-1.07x (section 8).
_REPORT_BATCH = 400
_GATHER_SECONDS = 0.01
_SWEEP_REPORTS = 2_000  # store-wide retention runs after this many new reports
_SWEEP_SECONDS = 300.0  # or this long after the last time: with the next batch, or on its own
_MAX_WAITING_REPORTS = 1_000  # reports kept in memory through a storage fault...
_MAX_WAITING_BYTES = 32 * 1024 * 1024  # ...and their messages' bytes; more are shed
# A report, whoever waits for it, the size of its message, and its list row and JSON text
# if known.
_Queued = tuple[dict[str, Any], asyncio.Future[bool], int, dict[str, Any] | None, str | None]


class ReportShed(Exception):
    """A report was not stored and will not be: too many wait through a storage fault."""


class Store(StoreThread):
    """Reports and agents in one SQLite file (WAL), every call off the event loop."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        """``retention``: what to keep (see ``store_groups``); None keeps every report."""
        super().__init__(path)
        self.retention = retention
        # The reports whose frames agents still hold (retention keeps them): the relay's.
        self.held_reports: Collection[str] = ()
        self._reports_since_sweep = 0
        self._last_sweep = 0.0
        self.sweep_seconds = _SWEEP_SECONDS
        self._frames = FrameCache()
        self._console_numbers = store_console.EntryNumbers()
        self._journal = AuditJournal(path)
        self._last_audit_id = 0  # the store numbers audit rows (it is the only writer)
        # Reports not yet handed to the store's thread, and how many are in its hands.
        self._reports: list[_Queued] = []
        self._report_batches = 0
        self._reports_in_hand = 0
        self._last_commit = 0.0  # time.monotonic() of the last report batch's commit
        self._gathering: asyncio.TimerHandle | None = None
        self.gather_seconds = _GATHER_SECONDS
        self.batch_size = _REPORT_BATCH
        self.report_commits = 0  # transactions that wrote reports (a storm's batching)
        # Reports that met a storage fault, oldest first, retried by ``_retry_reports``.
        self._waiting: list[_Queued] = []
        self.waiting_bytes = 0
        self.reports_shed = 0
        self.max_waiting_reports = _MAX_WAITING_REPORTS
        self.max_waiting_bytes = _MAX_WAITING_BYTES
        self._report_retry: asyncio.TimerHandle | None = None
        self._retrying = 0  # waiting reports in the batch being tried again

    async def open(self) -> None:
        """Open (creating if needed) the database file."""
        await super().open()
        # Audit rows journaled but not committed when the broker stopped (``journal.py``).
        replay = partial(replay_journal, store_path=self.path, columns=store_audit.AUDIT_COLUMNS)
        replayed = await self._call(replay)
        if replayed:
            log.info("the audit journal had %d rows; the audit log has them all", replayed)
        # The store is the only writer: it numbers transcript entries and audit rows itself.
        self._console_numbers.next_id = await self._call(store_console.last_console_id) + 1
        self._last_audit_id = await self._call(store_audit.last_audit_id)
        try:
            await self.enforce_retention()
        except sqlite3.Error:  # a full disk, say: the broker starts; the next sweep tries again
            log.exception("applying the store's retention at opening failed")

    async def enforce_retention(self) -> int:
        """Apply the store-wide retention now; the reports deleted (also run at opening and
        every ``_SWEEP_REPORTS`` reports or ``sweep_seconds``)."""
        self._reports_since_sweep = 0
        self._last_sweep = time.monotonic()
        if self.retention is None:
            return 0
        sweep = partial(
            store_groups.enforce_retention,
            retention=self.retention,
            held=frozenset(self.held_reports),
            now=time.time(),
        )
        return await self._call(sweep)

    async def sweep_while_quiet(self, deleted: Callable[[int], Awaitable[object]]) -> None:
        """Run the store-wide retention every ``sweep_seconds`` when no report brought it
        (a stack gone quiet): reports past their age go, reports whose frames were
        released or whose process exited are trimmed from their groups, and the last
        reports are indexed for search. ``deleted(n)`` is awaited after a sweep that
        deleted reports. Runs until cancelled."""
        while True:
            due = self._last_sweep + self.sweep_seconds - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            try:
                gone = await self.enforce_retention()
            except Exception:  # a full disk, say: tried again at the next interval
                log.exception("applying the store's retention failed")
                self._last_sweep = time.monotonic()
                continue
            if gone:
                log.info("retention: %d reports deleted while no report came in", gone)
                await deleted(gone)

    async def close(self) -> None:
        """Close the file and stop the worker thread (reports still waiting through a
        storage fault fail; they were never acknowledged)."""
        if self._report_retry is not None:
            self._report_retry.cancel()
            self._report_retry = None
        if self._connection is not None:
            self._hand_over_reports(at_once=True)  # queued reports are written first
        waiting, self._waiting = self._waiting, []
        if waiting:
            log.error("%d reports waiting for the store to write were not stored", len(waiting))
        for _, future, _, _, _ in waiting:
            if not future.done():
                future.set_exception(RuntimeError("the store is closed"))
        await super().close()
        self._journal.close()

    # --- reports ------------------------------------------------------------------------

    async def add_report(self, report: dict[str, Any]) -> bool:
        """Store a report (its wire dict); False when one with this id is already stored."""
        return await self.queue_report(report)

    def queue_report(
        self,
        report: dict[str, Any],
        size: int = 0,
        summary: dict[str, Any] | None = None,
        body: str | None = None,
    ) -> asyncio.Future[bool]:
        """Store a report (its wire dict, from a message of ``size`` bytes; ``summary``: its
        ``report_summary`` and ``body``: its JSON text, when the caller has them: with both,
        ``report`` need only hold what ``report_summary`` reads) in the next
        batch, without waiting (see the module's docstring). The future resolves once it is
        committed: False when one with this id was already stored; it fails with the error
        when the report could not be written, or with ``ReportShed``."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._connection is None:
            future.set_exception(RuntimeError("the store is closed"))
            return future
        if self._waiting or self._retrying:  # a storage fault: behind the others (bounded)
            if (
                self.reports_waiting >= self.max_waiting_reports
                or self.waiting_bytes + size > self.max_waiting_bytes
            ):
                self._shed_report(future, self.fault or DISK_FULL)
            else:
                self._waiting.append((report, future, size, summary, body))
                self.waiting_bytes += size
            return future
        self._reports.append((report, future, size, summary, body))
        self._hand_over_reports(at_once=False)
        return future

    @property
    def reports_gathering(self) -> int:
        """Reports queued and not yet handed to the store's thread (a batch gathering)."""
        return len(self._reports)

    @property
    def report_backlog(self) -> int:
        """Reports queued or being written, not yet committed (not those waiting)."""
        return len(self._reports) + self._reports_in_hand

    @property
    def reports_waiting(self) -> int:
        """Reports kept in memory because a storage fault stopped their batch (those being
        tried again included)."""
        return len(self._waiting) + self._retrying

    def _faulty_reports(self) -> bool:
        return bool(self._waiting or self._retrying)

    def _shed_report(self, future: asyncio.Future[bool], reason: str) -> None:
        self.reports_shed += 1
        self.shed_reason = reason
        if self.reports_shed <= 20 or self.reports_shed % 100 == 0:
            log.error("shed a report (%s): %d so far", reason, self.reports_shed)
        if not future.done():
            future.set_exception(ReportShed(f"not stored: {reason}"))

    def _keep_reports(self, batch: list[_Queued], reason: str) -> None:
        """A fault stopped ``batch``: it waits, oldest first, with those queued behind it
        (bounded: the newest past the bound are shed), and is tried again later."""
        if not self._waiting:
            log.error(
                "the store cannot write reports (%s): they wait in memory (at most %d) and "
                "are tried again every %gs",
                reason,
                self.max_waiting_reports,
                self.retry_seconds,
            )
        self.note_fault(reason)
        kept = batch + self._reports + self._waiting
        self._reports = []
        self._waiting, self.waiting_bytes = [], 0
        for queued in kept:
            size = queued[2]
            if (
                len(self._waiting) >= self.max_waiting_reports
                or self.waiting_bytes + size > self.max_waiting_bytes
            ):
                self._shed_report(queued[1], reason)
            else:
                self._waiting.append(queued)
                self.waiting_bytes += size
        if self._report_retry is None and self._connection is not None:
            loop = asyncio.get_running_loop()
            self._report_retry = loop.call_later(self.retry_seconds, self._retry_reports)

    def _retry_reports(self) -> None:
        """Try the oldest waiting reports again (one batch; the rest follow once it is in)."""
        if self._report_retry is not None:
            self._report_retry.cancel()
            self._report_retry = None
        if not self._waiting or self._connection is None:
            return
        batch = self._waiting[: self.batch_size]
        del self._waiting[: self.batch_size]
        self.waiting_bytes -= sum(size for _, _, size, _, _ in batch)
        self._retrying = len(batch)
        self._reports[:0] = batch
        self._hand_over_reports(at_once=True)

    def _hand_over_reports(self, *, at_once: bool) -> None:
        """Give queued reports to the store's thread: when it has none in hand, or now."""
        while self._reports and self._connection is not None:
            if self._report_batches and not at_once:
                return  # the batch in hand hands over the next one when it is committed
            if not at_once and len(self._reports) < self.batch_size:
                wait = self._last_commit + self.gather_seconds - time.monotonic()
                if wait > 0:  # a storm: let the batch gather (a lone report goes at once)
                    if self._gathering is None:
                        loop = asyncio.get_running_loop()
                        self._gathering = loop.call_later(wait, self._gathered)
                    return
            if self._gathering is not None:
                self._gathering.cancel()
                self._gathering = None
            batch = self._reports[: self.batch_size]
            del self._reports[: self.batch_size]
            self._report_batches += 1
            self._reports_in_hand += len(batch)
            self._reports_since_sweep += len(batch)
            sweep = self.retention is not None and (
                self._reports_since_sweep >= _SWEEP_REPORTS
                or time.monotonic() - self._last_sweep >= self.sweep_seconds
            )
            insert = partial(
                _insert_batch,
                reports=[report for report, _, _, _, _ in batch],
                summaries=[summary for _, _, _, summary, _ in batch],
                bodies=[body for _, _, _, _, body in batch],
                retention=self.retention,
                held=frozenset(self.held_reports),
                now=time.time(),
                sweep=sweep,
            )
            if sweep:
                self._reports_since_sweep = 0
                self._last_sweep = time.monotonic()
            done = asyncio.wrap_future(self._submit(insert))
            done.add_done_callback(partial(self._reports_written, batch))

    def _gathered(self) -> None:
        self._gathering = None
        self._hand_over_reports(at_once=False)

    def _reports_written(
        self, batch: list[_Queued], written: asyncio.Future[list[bool | Exception]]
    ) -> None:
        """A batch is committed (or failed): resolve its futures, hand over the next one."""
        self._report_batches -= 1
        self._reports_in_hand -= len(batch)
        self.report_commits += 1
        self._last_commit = time.monotonic()
        self._retrying = 0  # under a fault, the batch in hand is the one tried again
        error = None if written.cancelled() else written.exception()
        fault = None if error is None else storage_fault(error)
        if fault is not None and self._connection is not None:
            self._keep_reports(batch, fault)
            return
        if written.cancelled():
            outcomes: list[bool | Exception] = [RuntimeError("the store is closed")] * len(batch)
        elif error is not None:
            log.error("storing %d reports failed: %s", len(batch), error)
            outcomes = [RuntimeError(f"storing the report failed: {error}")] * len(batch)
        else:
            outcomes = written.result()
            if self._waiting:  # space is back: the next waiting batch goes now
                log.info("the store writes reports again: %d still wait", len(self._waiting))
                self._retry_reports()
            self.note_written()
        for (_, future, _, _, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._hand_over_reports(at_once=False)

    def queue_repeats(self, rows: list[tuple[str, int, float, float]]) -> None:
        """Add errors agents counted, not captured, to their groups (``(fingerprint, count,
        first, last)``, see ``store_groups.record_repeats``): a queued write, committed
        within ``thread._QUEUE_SECONDS``, kept through a storage fault like the others."""
        if rows:
            self._queue(partial(store_groups.record_repeats, rows=rows, now=time.time()))

    async def list_reports(
        self,
        limit: int,
        before: float | None = None,
        filters: ReportFilter | None = None,
        before_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Report summaries, newest first, after the row ``(before, before_id)`` when given
        (see ``store_reports.select_reports``)."""
        select = partial(
            store_reports.select_reports,
            limit=limit,
            before=before,
            filters=filters,
            before_id=before_id,
        )
        return await self._call(select)

    async def get_report(self, report_id: str) -> dict[str, Any] | None:
        """The full report (wire dict), or None when unknown."""
        return await self._call(partial(store_reports.select_report, report_id=report_id))

    async def get_frame_targets(self, report_id: str) -> FrameTargets | None:
        """Which agent holds a report's frames and their ids (cached), or None when unknown."""
        cached = self._frames.get(report_id)
        if cached is not None:
            return cached
        targets = await self._call(partial(store_reports.select_frame_targets, report_id=report_id))
        if targets is not None:
            self._frames.put(report_id, targets)
        return targets

    async def list_groups(
        self, limit: int, page: store_groups.GroupPage | None = None
    ) -> list[dict[str, Any]]:
        """Groups (fingerprints) with state and counts, most recently seen first: those of
        ``page`` (its states, after its row), all when None."""
        select = partial(
            store_groups.select_groups,
            limit=limit,
            now=time.time(),
            summary_columns=store_reports.SUMMARY_COLUMNS,
            page=page or store_groups.GroupPage(),
        )
        return await self._call(select)

    async def count_groups(self, states: tuple[str, ...] = ()) -> int:
        """How many groups are in ``states`` as shown (all when empty)."""
        return await self._call(partial(store_groups.count_groups, now=time.time(), states=states))

    async def set_group_state(
        self,
        fingerprint: str,
        state: str,
        mute_until: float | None = None,
        mute_remaining: int | None = None,
    ) -> bool:
        """Resolve, reopen, ignore or mute a group; False when there is no such group."""
        update = partial(
            store_groups.set_group_state,
            key=fingerprint,
            state=state,
            now=time.time(),
            mute_until=mute_until,
            mute_remaining=mute_remaining,
        )
        return await self._call(update)

    async def delete_report(self, report_id: str) -> bool:
        """Delete one report (its group still counts it); False when unknown."""
        self._frames.forget(report_id)
        return await self._call(partial(store_groups.delete_report, report_id=report_id))

    async def delete_group(self, fingerprint: str) -> int | None:
        """Delete a group and its reports: how many, or None when there is no such group."""
        self._frames.clear()
        return await self._call(partial(store_groups.delete_group, key=fingerprint))

    async def clear_all(self) -> int:
        """Delete every report, group and share link: how many reports."""
        self._frames.clear()
        return await self._call(store_groups.clear_all)

    async def count_reports(self) -> int:
        """How many reports are stored."""
        return await self._call(store_reports.count_reports)

    # --- share links ----------------------------------------------------------------------

    async def create_share(self, share_id: str, report_id: str, created: float) -> None:
        """Record a read-only share link of a report."""
        await self._call(
            partial(
                store_shares.insert_share, share_id=share_id, report_id=report_id, created=created
            )
        )

    async def shared_report_id(self, share_id: str) -> str | None:
        """The report a share link shows, or None when the link is unknown or revoked."""
        return await self._call(partial(store_shares.select_share, share_id=share_id))

    async def list_shares(self, report_id: str) -> list[dict[str, Any]]:
        """The share links of a report, newest first."""
        return await self._call(partial(store_shares.select_shares, report_id=report_id))

    async def delete_share(self, share_id: str) -> bool:
        """Revoke a share link; False when it did not exist."""
        return await self._call(partial(store_shares.delete_share, share_id=share_id))

    # --- agents -------------------------------------------------------------------------

    async def list_breakpoints(self) -> list[dict[str, Any]]:
        """Every breakpoint set from the dashboard, oldest first."""
        return await self._call(store_breakpoints.select_breakpoints)

    async def save_breakpoint(self, breakpoint: dict[str, Any]) -> None:
        """Insert or replace a breakpoint (``store_breakpoints.BREAKPOINT_COLUMNS``)."""
        await self._call(partial(store_breakpoints.save_breakpoint, breakpoint=breakpoint))

    async def delete_breakpoint(self, breakpoint_id: str) -> bool:
        """Remove a breakpoint; False when there was none with that id."""
        return await self._call(
            partial(store_breakpoints.delete_breakpoint, breakpoint_id=breakpoint_id)
        )

    async def save_agent(self, agent: AgentRecord) -> None:
        """Insert or update an agent (see ``store_agents``), a queued write that this waits
        for (through a storage fault it waits in memory with the others)."""
        self._queue(partial(store_agents.save_agent, agent=agent))
        await self.flush()

    async def list_agents(self, limit: int = 1000) -> list[AgentRecord]:
        """Agents the broker has ever seen, most recently seen first."""
        return await self._call(partial(store_agents.select_agents, limit=limit))

    # --- audit log ----------------------------------------------------------------------

    async def add_audit(self, entry: dict[str, Any]) -> None:
        """Append an audit entry (the columns of the audit table but ``id``) and wait for
        its commit (through a storage fault it waits in memory with the queued writes)."""
        self.queue_audit(entry)
        await self.flush()

    def queue_audit(self, entry: dict[str, Any]) -> None:
        """Append an audit entry without waiting: stored before any later call runs."""
        self._queue(self._audit_insert(entry))

    def _audit_insert(self, entry: dict[str, Any]) -> store_audit.AuditInsert:
        self._last_audit_id += 1
        return store_audit.audit_insert(self._last_audit_id, entry)

    async def start_audit(self, entry: dict[str, Any]) -> int | None:
        """Append an audit entry, durable before this returns (an action is audited before
        it runs): appended to the audit journal in one ``write`` (``journal.py``, as durable
        as a commit) and queued for the next commit. The entry's id for
        ``queue_finish_audit``, or None when it could not be written (the store's ``fault``
        says why; the row waits in memory with the queued writes)."""
        insert = self._audit_insert(entry)
        line = wire_json(insert.values).encode() + b"\n"
        try:
            insert.journal = self._journal.append(line)
        except OSError as error:
            full = error.errno in (errno.ENOSPC, errno.EDQUOT)
            reason = DISK_FULL if full else f"the audit journal cannot be written ({error})"
            log.error("an audit row could not be written: %s", reason)
            self.note_fault(reason)
            self._queue(insert)
            return None
        self._queue(insert)
        return insert.row_id

    def _writes_committed(self, batch: list[Write]) -> None:
        super()._writes_committed(batch)
        journaled = [
            write.journal
            for write in batch
            if isinstance(write, store_audit.AuditInsert) and write.journal is not None
        ]
        if journaled:  # in the table now: the journal lets them go
            self._journal.committed(journaled)

    def queue_finish_audit(self, row_id: int, outcome: str, detail: str) -> None:
        """Record how an audited action ended, without waiting (stored before any later
        call runs)."""
        self._queue(store_audit.audit_update(row_id, outcome, detail))

    async def list_audit(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first, optionally only those with ``id < before``."""
        return await self._call(partial(store_audit.select_audit, limit=limit, before=before))

    # --- console transcripts ------------------------------------------------------------

    def start_console_entry(self, target: str, author: str, code: str, created: float) -> int:
        """Start a transcript entry (state ``running``) and return its id, without waiting:
        it is stored before any later call runs (see ``thread.py``).

        A transcript keeps its last ``_CONSOLE_KEEP`` (500) entries, approximately: it is
        trimmed to 500 once every ``_CONSOLE_TRIM_EVERY`` (50) of its entries, not on each
        (a DELETE per eval is a noticeable share of an eval's broker CPU), so between two trims
        it holds up to 549 (and a few more after a broker restart, which starts the count
        again). ``GET .../transcript`` lists at most 500 either way.
        """
        entry_id, trim = self._console_numbers.take(target)
        self._queue(store_console.ConsoleInsert(entry_id, target, created, author, code, trim))
        return entry_id

    def queue_finish_console_entry(
        self, entry_id: int, state: str, body: dict[str, Any] | str
    ) -> None:
        """Record how an entry ended: ``state`` and its ``result``/``failure`` as ``body``
        (or ``body`` already as JSON text), without waiting (stored before any later call
        runs). While the entry's insert still waits in the queue (an eval's answer comes
        before its writes are committed), the insert takes the end and no UPDATE runs."""
        text = body if isinstance(body, str) else wire_json(body)
        if not store_console.finish_queued(self._queued, entry_id, state, text):
            self._queue(store_console.console_update(entry_id, state, text))

    async def list_console_entries(self, target: str, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries of a transcript, oldest first, body fields merged in."""
        select = partial(store_console.select_console_entries, target=target, limit=limit)
        return await self._call(select)


def _insert_batch(
    connection: sqlite3.Connection,
    reports: list[dict[str, Any]],
    summaries: list[dict[str, Any] | None],
    bodies: list[str | None],
    retention: Retention | None,
    held: Collection[str],
    now: float,
    sweep: bool,
) -> list[bool | Exception]:
    """On the store's thread: a batch of reports, then the store-wide retention when due
    (its failure is logged: the reports are committed by then)."""
    outcomes = store_reports.insert_reports(
        connection, reports, retention, held, now, summaries, bodies
    )
    if sweep and retention is not None:
        try:
            store_groups.enforce_retention(connection, retention, held, now)
        except sqlite3.Error:
            connection.rollback()
            log.exception("applying the store's retention failed")
    return outcomes
