"""The console_entries table: shared console transcripts, their numbering and trimming.

The store is the only writer of the table, so it numbers entries itself (``EntryNumbers``,
on the event loop) and queues their inserts without waiting for them (see ``thread.py``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from debugbroker.broker.store.thread import Write

__all__ = [
    "ConsoleInsert",
    "EntryNumbers",
    "console_update",
    "finish_queued",
    "last_console_id",
    "select_console_entries",
]

_CONSOLE_KEEP = 500  # entries kept per console transcript; older ones are deleted...
_CONSOLE_TRIM_EVERY = 50  # ...every 50 entries of that transcript (at most 549 are kept)
_CONSOLE_TRIM_TARGETS = 10_000  # transcripts counted for trimming (then counting restarts)


@dataclass(slots=True)
class EntryNumbers:
    """The next entry id, and how many entries each transcript got since its last trim."""

    next_id: int = 0
    untrimmed: dict[str, int] = field(default_factory=dict)  # target -> entries since trim

    def take(self, target: str) -> tuple[int, bool]:
        """A new entry's id, and whether its insert trims the target's transcript."""
        entry_id = self.next_id
        self.next_id += 1
        untrimmed = self.untrimmed.get(target, 0) + 1
        trim = untrimmed >= _CONSOLE_TRIM_EVERY
        if trim:
            self.untrimmed.pop(target, None)
        else:
            if len(self.untrimmed) >= _CONSOLE_TRIM_TARGETS:
                self.untrimmed.clear()  # bounded memory; counts start again
            self.untrimmed[target] = untrimmed
        return entry_id, trim


@dataclass(slots=True)
class ConsoleInsert:
    """The queued insert of a transcript entry (a ``Write``). It is changed only while it
    waits in ``StoreThread._queued``, on the event loop, before any thread can run it."""

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


def finish_queued(queued: list[Write], entry_id: int, state: str, body: str) -> bool:
    """Give an entry its end in its insert when that still waits in ``queued`` (then no
    UPDATE is needed); False when the insert was handed over already."""
    for write in reversed(queued):  # not handed over: only the loop's thread sees it
        if isinstance(write, ConsoleInsert) and write.entry_id == entry_id:
            write.state, write.body = state, body
            return True
    return False


def console_update(entry_id: int, state: str, body: str) -> Write:
    """The update that records how an entry ended (not committed)."""

    def update(connection: sqlite3.Connection) -> None:
        connection.execute(
            "UPDATE console_entries SET state = ?, body = ? WHERE id = ?",
            (state, body, entry_id),
        )

    return update


def last_console_id(connection: sqlite3.Connection) -> int:
    """The highest entry id ever given, deleted entries included (ids are never reused)."""
    row = connection.execute(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence "
        "WHERE name = 'console_entries'), 0), COALESCE(MAX(id), 0)) "
        "FROM console_entries"
    ).fetchone()
    return int(row[0] or 0)


def select_console_entries(
    connection: sqlite3.Connection, target: str, limit: int
) -> list[dict[str, Any]]:
    """The last ``limit`` entries of a transcript, oldest first, body fields merged in."""
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
