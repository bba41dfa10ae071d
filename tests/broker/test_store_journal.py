"""The audit journal: an audit row is durable when ``start_audit`` returns, before any
commit, and a broker that stops before the commit has the row after its restart.

A real SQLite file through the real ``Store``; "killed" is a store that ``abandon``s its file,
whose loop ends before its queued writes are committed (what SIGKILL leaves on disk).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from debugbroker.broker.store import journal
from debugbroker.broker.store.audit import AUDIT_COLUMNS
from debugbroker.broker.store.journal import AuditJournal, journal_files, replay_journal
from debugbroker.broker.store.store import Store


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        query = "SELECT id, action, code, outcome FROM audit ORDER BY id"
        return list(connection.execute(query).fetchall())


def test_an_audit_row_is_journaled_before_any_commit_and_replayed_after_a_kill(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"

    async def killed() -> tuple[int | None, int | None]:
        store = Store(path)
        await store.open()
        first = await store.start_audit(
            {"at": 1.0, "action": "eval", "code": "1 + 1", "outcome": "running"}
        )
        second = await store.start_audit(
            {"at": 2.0, "action": "complete", "code": "ca", "outcome": "running"}
        )
        await store.abandon()  # no close, no flush: nothing queued is committed
        return first, second

    first, second = asyncio.run(killed())
    assert first is not None and second == first + 1
    assert _rows(path) == []  # nothing committed...
    assert [p.stat().st_size > 0 for p in journal_files(path)] == [True]  # ...but journaled

    async def restarted() -> tuple[list[dict[str, Any]], int | None]:
        store = Store(path)
        await store.open()
        audit = await store.list_audit(10)
        third = await store.start_audit({"at": 3.0, "action": "eval", "code": "x"})
        await store.close()
        return audit, third

    audit, third = asyncio.run(restarted())
    assert [(a["id"], a["code"], a["outcome"]) for a in audit] == [
        (second, "ca", "running"),
        (first, "1 + 1", "running"),
    ]
    assert third is not None and third > second  # ids are never reused
    assert journal_files(path) == []  # replayed, then committed: nothing left
    assert [row[0] for row in _rows(path)] == [first, second, third]


def test_the_journal_is_emptied_once_its_rows_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> list[int]:
        store = Store(path)
        await store.open()
        try:
            row = await store.start_audit({"at": 1.0, "action": "eval", "code": "1"})
            assert row is not None
            store.queue_finish_audit(row, "ok", "")
            await store.flush()
            return [p.stat().st_size for p in journal_files(path)]
        finally:
            await store.close()

    assert asyncio.run(run()) == [0]  # the current file, emptied
    assert [row[3] for row in _rows(path)] == ["ok"]


def test_an_audit_row_that_cannot_be_journaled_is_refused_and_waits_in_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> tuple[int | None, str | None]:
        store = Store(path)
        await store.open()
        (tmp_path / "db.sqlite3.audit-0").mkdir()  # the journal's file cannot be opened
        try:
            row = await store.start_audit({"at": 1.0, "action": "eval", "code": "1"})
            return row, store.fault
        finally:
            await store.close()

    row, fault = asyncio.run(run())
    assert row is None  # the handler answers 507: nothing runs
    assert fault is not None and fault.startswith("the audit journal cannot be written")
    assert [row[2] for row in _rows(path)] == ["1"]  # written with the queued writes


def test_a_line_cut_short_is_skipped_and_full_files_go_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite3"
    monkeypatch.setattr(journal, "_SEGMENT_BYTES", 40)
    kept = AuditJournal(path)
    line = b'[1,1.0,"eval","full","","","","",null,"code","running",""]\n'
    numbers = [kept.append(line), kept.append(line.replace(b"[1,", b"[2,"))]
    assert numbers == [0, 1] and len(journal_files(path)) == 2  # the first was set aside
    kept.committed([0])
    assert [p.name for p in journal_files(path)] == ["db.sqlite3.audit-1"]
    kept.close()
    with (tmp_path / "db.sqlite3.audit-1").open("ab") as file:
        file.write(b'[3,1.0,"eval"')  # a broker killed in the middle of its write
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"CREATE TABLE audit ({AUDIT_COLUMNS})")  # columns without types
        assert replay_journal(connection, path, AUDIT_COLUMNS) == 1
        assert connection.execute("SELECT id, code FROM audit").fetchall() == [(2, "code")]
    assert journal_files(path) == []
