"""The store's thread: one SQLite connection used off the event loop, and its write queue.

SQLite calls block, so calls run on a single-thread executor (the store's thread): the event
loop never waits on the disk. The one connection is used by whoever holds its lock: that
thread, or ``flush`` on the loop when the thread is idle (below). WAL mode keeps readers and
the writer apart (see ``store_schema.connect``). SQLite's automatic checkpoint is off; the
store's thread copies the WAL into the database file every ``_CHECKPOINT_CHANGES`` rows
instead, so a commit made on the loop never runs one.

The console's hot path does not wait for its writes: ``_queue`` (behind the store's
``start_console_entry``, ``queue_finish_console_entry`` and ``queue_audit``) queues them and
returns at once. Queued writes run in order, in one transaction per batch, and always before
any call made after them (``_call`` hands them over first), so a read that follows an answer
(a reload's transcript, the audit list) sees what the answer promised. They are committed at
most ``_QUEUE_SECONDS`` (50 ms) after being queued, in one batch, or at once by ``flush()``:
the eval's audit middleware flushes before the answer leaves, so an eval's writes are durable
in one commit, made on the loop itself when the store's thread is idle (no thread hand-off in
an eval's round trip).
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

__all__ = ["StoreThread", "Write", "run_batch"]

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], object]
log = logging.getLogger("debugbroker")

# Queued writes wait this long for more to join their batch: an eval's transcript entry,
# its result and its audit row then go in one commit after the answer, not during it.
_QUEUE_SECONDS = 0.05
# Rows written between two checkpoints of the WAL (a report is a row of about 5 KB).
_CHECKPOINT_CHANGES = 1000
_BUSY_TIMEOUT_MS = 5_000  # sqlite3.connect's default timeout: the store's thread waits this long


class StoreThread:
    """One SQLite file (WAL) and the thread that uses it: every call off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="debugbroker-store")
        self._connection: sqlite3.Connection | None = None
        # Whoever uses the connection holds this: the store's thread, or ``flush`` on the
        # loop when that thread is idle. ``_jobs`` counts jobs handed to the thread.
        self._connection_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs = 0
        self._changes_at_checkpoint = 0
        self._queued: list[Write] = []  # writes nobody waits for, not yet handed over
        self._queue_timer: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        """Open (creating if needed) the database file."""
        loop = asyncio.get_running_loop()
        self._connection = await loop.run_in_executor(
            self._executor, functools.partial(connect, self.path)
        )

    async def close(self) -> None:
        """Close the file and stop the worker thread."""
        if self._connection is not None:
            await self._call(lambda connection: connection.close())
            self._connection = None
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
            self._submit(lambda connection: run_batch(connection, batch))

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
            if batch and not run_batch(connection, batch, wait=False):
                self._queued[:0] = batch  # the store's thread waits for the lock instead
                return False
            grown = connection.total_changes - self._changes_at_checkpoint
        finally:
            self._connection_lock.release()
        if grown >= _CHECKPOINT_CHANGES:  # the store's thread checkpoints, not the loop
            self._submit(lambda connection: None)
        return True


def run_batch(connection: sqlite3.Connection, batch: list[Write], *, wait: bool = True) -> bool:
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
