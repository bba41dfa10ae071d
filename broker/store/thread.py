"""The store's thread: one SQLite connection used off the event loop, and its write queue.

SQLite calls block, so calls run on a single-thread executor (the store's thread): the event
loop never waits on the disk. The one connection is used by whoever holds its lock: that
thread, or ``flush`` on the loop when the thread is idle (below). WAL mode keeps readers and
the writer apart (see ``schema.connect``). SQLite's automatic checkpoint is off; the
store's thread copies the WAL into the database file every ``_CHECKPOINT_CHANGES`` rows
instead, so a commit made on the loop never runs one.

The console's hot path does not wait for most of its writes: ``_queue`` (behind the store's
``start_console_entry``, ``queue_finish_console_entry`` and ``queue_finish_audit``) queues
them and returns at once. Queued writes run in order, in one transaction per batch, and always
before any call made after them (``_call`` hands them over first), so a read that follows an answer
(a reload's transcript, the audit list) sees what the answer promised. They are committed at
most ``_QUEUE_SECONDS`` (50 ms) after being queued, in one batch, or at once by ``flush()``,
made on the loop itself when the store's thread is idle (no thread hand-off). An eval's
audit row is durable before the code is sent without a commit (``Store.start_audit``
appends it to the audit journal, ``journal.py``); an eval over the HTTP API flushes its
transcript entry, its end and the row's outcome before the answer leaves, one over the
dashboard's WebSocket leaves them to the next batch.

A storage fault (a full disk, a data file that cannot be written: ``storage_fault``) rolls
the failing batch back and keeps its writes at the head of the queue, in order, in memory;
they are tried again every ``retry_seconds`` until space returns, and ``fault`` names the
reason meanwhile. At most ``max_waiting_writes`` wait: past that, new writes are shed and
counted (``writes_shed``), never dropped without a trace. Reports wait the same way (see
``store``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from debugbroker.broker.store.schema import connect

__all__ = ["StorageFault", "StoreThread", "Write", "run_batch", "storage_fault"]

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], object]
log = logging.getLogger("debugbroker")

# Queued writes wait this long for more to join their batch: an eval's transcript entry,
# its result and its audit row then go in one commit after the answer, not during it.
_QUEUE_SECONDS = 0.05
# Rows changed between two checkpoints of the WAL. A stored report changes about four
# (its row of about 5 KB, its group, its hour, and the middle report its group lets go;
# its search index row only if it lived long enough to be indexed, see ``search``):
# about a thousand reports' pages per checkpoint.
_CHECKPOINT_CHANGES = 5000
_BUSY_TIMEOUT_MS = 5_000  # sqlite3.connect's default timeout: the store's thread waits this long
_RETRY_SECONDS = 1.0  # how often writes that met a storage fault are tried again
_MAX_WAITING_WRITES = 10_000  # queued writes kept in memory through a fault; more are shed
# SQLite's primary result codes of a file that cannot be written (sqlite3.h).
_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_CANTOPEN = 13, 10, 8, 14
DISK_FULL = "the disk is full"


class StorageFault(Exception):
    """A write was rolled back because the file cannot take it now (``reason``); it is
    kept to be tried again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def storage_fault(error: BaseException) -> str | None:
    """Why ``error`` means the store cannot write now (a full disk, a read-only or broken
    file), in words for the dashboard; None for any other error."""
    if not isinstance(error, sqlite3.DatabaseError):
        return None
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error)
    if primary == _SQLITE_FULL or "disk is full" in text:
        return DISK_FULL
    if primary in (_SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_CANTOPEN) or any(
        words in text for words in ("disk I/O error", "readonly database", "unable to open")
    ):
        return f"the data file cannot be written ({text})"
    return None


class StoreThread:
    """One SQLite file (WAL) and the thread that uses it: every call off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="debugbroker-store")
        self._connection: sqlite3.Connection | None = None
        # Whoever uses the connection holds this: the store's thread, or ``flush`` on the
        # loop when that thread is idle. ``_jobs`` counts jobs handed to the thread.
        self._connection_lock = threading.Lock()
        # Whether the connection's busy timeout is 0, as ``flush`` on the loop needs (never
        # wait for the file's lock) rather than ``_BUSY_TIMEOUT_MS``, as the thread's jobs
        # do: switched only when the other side takes the connection, so back-to-back
        # console commits on the loop run no PRAGMA (guarded by ``_connection_lock``).
        self._no_wait = False
        self._jobs_lock = threading.Lock()
        self._jobs = 0
        self._changes_at_checkpoint = 0
        self._queued: list[Write] = []  # writes nobody waits for, not yet handed over
        self._queue_timer: asyncio.TimerHandle | None = None
        # Storage faults: the reason while writes wait for space, and what was shed.
        self.fault: str | None = None
        self.retry_seconds = _RETRY_SECONDS
        self.max_waiting_writes = _MAX_WAITING_WRITES
        self.writes_shed = 0
        self.shed_reason: str | None = None  # why the last writes or reports were shed
        self._writes_failed = False  # the queued writes include some that met a fault
        self._write_batches = 0  # batches of queued writes handed over, not yet back...
        self._writes_in_hand = 0  # ...and the writes in them

    async def open(self) -> None:
        """Open (creating if needed) the database file."""
        loop = asyncio.get_running_loop()
        self._connection = await loop.run_in_executor(
            self._executor, functools.partial(connect, self.path)
        )

    async def close(self) -> None:
        """Close the file and stop the worker thread (writes still kept back by a storage
        fault are tried once more, then logged as lost)."""
        if self._connection is not None:
            await self._call(lambda connection: connection.close())
            self._connection = None
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        if self._queued:
            log.error("%d console and audit writes were not stored", len(self._queued))
        self._executor.shutdown(wait=True)

    async def abandon(self) -> None:
        """Let go of the file as a killed broker would: nothing queued is committed (the
        journal's tests; a connection left to the collector warns on Python 3.13)."""
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=True)

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
                if self._no_wait:
                    _set_busy_timeout(connection, _BUSY_TIMEOUT_MS)
                    self._no_wait = False
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

    @property
    def writes_waiting(self) -> int:
        """Queued writes kept in memory because a storage fault stopped them (those being
        tried again included)."""
        return len(self._queued) + self._writes_in_hand if self._writes_failed else 0

    def _queue(self, write: Write) -> None:
        """Run ``write`` on the store's thread soon, in order, without waiting for it (shed
        and counted when a storage fault already keeps ``max_waiting_writes`` waiting)."""
        if self._writes_failed and self.writes_waiting >= self.max_waiting_writes:
            self._shed_writes(1, self.fault or DISK_FULL)
            return
        if self._queue_timer is None:
            delay = self.retry_seconds if self._writes_failed else _QUEUE_SECONDS
            loop = asyncio.get_running_loop()
            self._queue_timer = loop.call_later(delay, self._hand_over_queued)
        self._queued.append(write)

    def _hand_over_queued(self) -> None:
        """Give the queued writes to the store's thread as one batch (one commit)."""
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        if self._writes_failed and self._write_batches:
            return  # a fault: the batch out comes back first, so the order is kept
        if self._queued and self._connection is not None:
            batch, self._queued = self._queued, []
            self._write_batches += 1
            self._writes_in_hand += len(batch)
            done = asyncio.wrap_future(
                self._submit(lambda connection: run_batch(connection, batch))
            )
            done.add_done_callback(functools.partial(self._writes_done, batch))

    def _writes_done(self, batch: list[Write], done: asyncio.Future[bool]) -> None:
        """A batch of queued writes came back: committed, or kept for a retry."""
        self._write_batches -= 1
        self._writes_in_hand -= len(batch)
        error = None if done.cancelled() else done.exception()
        if isinstance(error, StorageFault):
            self._keep_writes(batch, error.reason)
            return
        if not done.cancelled():
            self._writes_committed(batch)
        if self._queued and self._queue_timer is None and self._connection is not None:
            loop = asyncio.get_running_loop()  # held back while this batch was out
            self._queue_timer = loop.call_later(_QUEUE_SECONDS, self._hand_over_queued)

    def _keep_writes(self, batch: list[Write], reason: str) -> None:
        """A fault stopped ``batch``: back at the head of the queue (bounded), retried."""
        self._queued[:0] = batch
        excess = len(self._queued) - self.max_waiting_writes
        if excess > 0:
            del self._queued[-excess:]  # the newest go: the oldest keep their order
            self._shed_writes(excess, reason)
        if not self._writes_failed:
            log.error(
                "the store cannot write (%s): console and audit writes wait in memory "
                "(at most %d) and are tried again every %gs",
                reason,
                self.max_waiting_writes,
                self.retry_seconds,
            )
        self._writes_failed = True
        self.note_fault(reason)
        if self._queue_timer is None and self._connection is not None:
            loop = asyncio.get_running_loop()
            self._queue_timer = loop.call_later(self.retry_seconds, self._hand_over_queued)

    def _writes_committed(self, batch: list[Write]) -> None:
        """``batch`` was committed (the ``Store`` also lets the audit journal go)."""
        if self._writes_failed:
            log.warning(
                "the store writes again: the console and audit writes that waited are stored"
            )
            self._writes_failed = False
        self.note_written()

    def _shed_writes(self, count: int, reason: str) -> None:
        self.writes_shed += count
        self.shed_reason = reason
        if count and (self.writes_shed <= 20 or self.writes_shed % 100 < count):
            log.error("shed %d store writes (%s); %d so far", count, reason, self.writes_shed)

    def note_fault(self, reason: str) -> None:
        """A write met a storage fault: the store is failing for ``reason``."""
        self.fault = reason

    def note_written(self) -> None:
        """A commit succeeded: the store writes, unless something still waits to."""
        if not self._writes_failed and not self._faulty_reports():
            self.fault = None

    def _faulty_reports(self) -> bool:
        """Whether reports still wait for a fault to pass (the ``Store`` says)."""
        return False

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
            if self._writes_failed:
                return False  # a fault: the retry writes them, in order, on the thread
            batch, self._queued = self._queued, []
            if batch and not self._no_wait:
                _set_busy_timeout(connection, 0)
                self._no_wait = True
            try:
                if batch and not run_batch(connection, batch, wait=False):
                    self._queued[:0] = batch  # the store's thread waits for the lock instead
                    return False
            except StorageFault as fault:
                self._keep_writes(batch, fault.reason)
                return True  # they wait in memory: nothing more to wait for now
            if batch:
                self._writes_committed(batch)
            grown = connection.total_changes - self._changes_at_checkpoint
        finally:
            self._connection_lock.release()
        if grown >= _CHECKPOINT_CHANGES:  # the store's thread checkpoints, not the loop
            self._submit(lambda connection: None)
        return True


def run_batch(connection: sqlite3.Connection, batch: list[Write], *, wait: bool = True) -> bool:
    """Queued writes in order, then one commit; one failing write does not stop the rest,
    but a storage fault (``storage_fault``) rolls the whole batch back and raises
    ``StorageFault``, for the batch to be tried again.

    ``wait=False`` is for the event loop, which must never wait for the file's lock (held a
    moment by another program reading or writing the file: the sqlite3 shell, a backup),
    with the connection's busy timeout set to 0 by the caller: when the lock is busy
    everything is rolled back and False returned, for the store's thread to write (it may
    wait).
    """
    for write in batch:
        try:
            write(connection)
        except sqlite3.Error as error:
            if not wait and _busy(error):
                connection.rollback()
                return False
            _raise_fault(connection, error)
            log.exception("a queued write to the store failed")
    try:
        connection.commit()
    except sqlite3.Error as error:
        if not wait and _busy(error):
            connection.rollback()
            return False
        _raise_fault(connection, error)
        log.exception("committing queued writes to the store failed")
    return True


def _set_busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> None:
    """How long the connection waits for the file's lock held by another program."""
    connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


def _raise_fault(connection: sqlite3.Connection, error: sqlite3.Error) -> None:
    """Roll back and raise ``StorageFault`` when ``error`` is one (else return)."""
    reason = storage_fault(error)
    if reason is not None:
        try:
            connection.rollback()
        except sqlite3.Error:
            pass
        raise StorageFault(reason) from error


def _busy(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error)
    )
