"""The audit journal: an audit row made durable by one append, before its action runs.

An action is audited before it runs (DESIGN.md). Committing the row to SQLite on the
action's path costs a transaction (locks, a few WAL frames); appending it to a file costs
one ``write``. Both are as durable as the store's policy asks (``schema``: WAL with
``synchronous=NORMAL``, no ``fsync`` per commit: a killed broker loses nothing written, a
power cut may lose the last writes), so the row is appended here, one JSON line, and its
SQLite insert joins the store's queued writes (``thread.py``), committed in the next batch.

The journal is a series of files next to the store's (``<store>.audit-<n>``). An append
goes to the current one; a file is started afresh (truncated) once every row in it is
committed, and a file past ``_SEGMENT_BYTES`` is set aside for a new one, deleted once
its rows are committed. Opening the store replays every file (``INSERT OR IGNORE`` by the
rows' ids, which the store gives) and deletes them: a row appended but not yet committed
when the broker was killed is in the table after the restart.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["AuditJournal", "replay_journal", "journal_files"]

log = logging.getLogger("debugbroker")
_SEGMENT_BYTES = 1 << 20  # a file past this is set aside; the next append starts another


def journal_files(store_path: Path) -> list[Path]:
    """The journal's files next to ``store_path``, oldest first."""
    found = []
    for path in store_path.parent.glob(f"{store_path.name}.audit-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and path.is_file():
            found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def replay_journal(connection: sqlite3.Connection, store_path: Path, columns: str) -> int:
    """Insert every journaled row the table lacks (``columns``: the audit table's, ``id``
    first), commit, and delete the files; the rows read. A line cut short (the broker was
    killed in its ``write``: its action never ran) is skipped."""
    files = journal_files(store_path)
    rows: list[Sequence[Any]] = []
    for path in files:
        for line in path.read_bytes().split(b"\n"):
            try:
                row = json.loads(line) if line else None
            except ValueError:
                row = None
            if isinstance(row, list) and len(row) == columns.count(",") + 1:
                rows.append(row)
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        connection.executemany(f"INSERT OR IGNORE INTO audit ({columns}) VALUES ({marks})", rows)
    connection.commit()
    for path in files:
        path.unlink(missing_ok=True)
    return len(rows)


class AuditJournal:
    """Appends audit rows to the journal's files and removes what SQLite has committed
    (used on the event loop only)."""

    def __init__(self, store_path: Path) -> None:
        self._stem = f"{store_path}.audit-"
        self._number = 0  # the current file's number
        self._fd: int | None = None
        self._size = 0
        self._pending: dict[int, int] = {}  # file number -> its rows not yet committed

    def append(self, line: bytes) -> int:
        """Write ``line`` (one JSON row and its newline) in one ``write``; the number of
        the file it went to, for ``committed``. Raises ``OSError`` when it could not be
        written whole (nothing of it is left in the file)."""
        if self._fd is not None and self._size >= _SEGMENT_BYTES:
            self._set_aside()
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(f"{self._stem}{self._number}", flags, 0o600)
            self._size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
        except OSError:
            self._cut_back()
            raise
        if written != len(line):  # a full disk took part of it
            self._cut_back()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._size += written
        self._pending[self._number] = self._pending.get(self._number, 0) + 1
        return self._number

    def committed(self, numbers: Sequence[int]) -> None:
        """The rows appended to files ``numbers`` (one per row) are committed: a file with
        none left is emptied (the current one) or deleted (one set aside)."""
        for number in numbers:
            left = self._pending.get(number, 0) - 1
            if left > 0:
                self._pending[number] = left
                continue
            self._pending.pop(number, None)
            try:
                if number != self._number:
                    os.unlink(f"{self._stem}{number}")
                elif self._fd is not None:
                    os.ftruncate(self._fd, 0)
                    self._size = 0
            except OSError:  # left for the next opening's replay, which ignores stored rows
                log.warning("the audit journal could not be emptied", exc_info=True)

    def close(self) -> None:
        """Close the current file, deleted if every row in it is committed (else replayed
        at the next opening)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._number not in self._pending:
                with contextlib.suppress(OSError):
                    os.unlink(f"{self._stem}{self._number}")

    def _set_aside(self) -> None:
        """The current file is full: its pending rows keep it until committed."""
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        if self._number not in self._pending:
            os.unlink(f"{self._stem}{self._number}")
        self._number += 1

    def _cut_back(self) -> None:
        """Remove a partly written line, so that the next one starts a line of its own."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:  # then the next opening skips the torn line
                log.warning("the audit journal could not be cut back", exc_info=True)
