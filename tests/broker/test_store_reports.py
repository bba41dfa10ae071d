"""Reports written in batches by the real ``Store`` on a real SQLite file.

A storm's reports share transactions, yet each one's future resolves only once it is
committed, a report that cannot be written fails alone, any later read sees queued
reports, and closing the store writes what is still queued.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from debugbroker.broker.store.store import Store


def _report(report_id: str) -> dict[str, Any]:
    return {
        "id": report_id,
        "agent_id": "agent-1",
        "created": 1.0,
        "type_name": "ValueError",
        "message": "boom",
        "pid": 1,
        "host": "h",
        "app": "a",
        "request": {"url": "http://h/x"},
        "exceptions": [],
    }


def _stored_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection, connection:
        return sorted(row[0] for row in connection.execute("SELECT id FROM reports"))


def test_a_storm_of_reports_is_written_in_few_transactions(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def storm() -> tuple[list[bool], int, int]:
        store = Store(path)
        await store.open()
        futures = [store.queue_report(_report(f"r{i}")) for i in range(2_000)]
        assert store.report_backlog == 2_000
        outcomes = list(await asyncio.gather(*futures))
        again = await store.add_report(_report("r7"))  # already stored
        outcomes.append(again)
        backlog, commits = store.report_backlog, store.report_commits
        await store.close()
        return outcomes, backlog, commits

    outcomes, backlog, commits = asyncio.run(storm())
    assert outcomes == [True] * 2_000 + [False]
    assert backlog == 0
    assert commits < 40  # batches of up to 200, not one commit per report
    assert len(_stored_ids(path)) == 2_000


def test_a_report_that_cannot_be_written_fails_alone(tmp_path: Path) -> None:
    async def mixed() -> list[Any]:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        broken = _report("bad") | {"message": object()}  # not JSON: cannot be stored
        futures = [store.queue_report(_report("a")), store.queue_report(broken)]
        futures.append(store.queue_report(_report("b")))
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        await store.close()
        return list(outcomes)

    first, broken, last = asyncio.run(mixed())
    assert first is True and last is True
    assert isinstance(broken, ValueError) and "not stored" in str(broken)
    assert _stored_ids(tmp_path / "db.sqlite3") == ["a", "b"]


def test_reads_see_committed_reports_and_closing_writes_queued_ones(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> tuple[int, dict[str, Any] | None]:
        store = Store(path)
        await store.open()
        last = [store.queue_report(_report(f"q{i}")) for i in range(5)][-1]
        await last  # committed: every read from now on sees it, and the ones before it
        counted = await store.count_reports()
        found = await store.get_report("q4")
        for i in range(5, 1_000):
            store.queue_report(_report(f"q{i}"))  # nobody waits for these
        await store.close()  # still queued: written before the file closes
        return counted, found

    counted, found = asyncio.run(run())
    assert counted == 5
    assert found is not None and found["id"] == "q4"
    assert len(_stored_ids(path)) == 1_000


def test_a_closed_store_refuses_reports(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        await store.close()
        future = store.queue_report(_report("late"))
        await asyncio.wait_for(future, 5)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(run())


def test_repeated_ids_count_once_within_a_batch_and_across_batches(tmp_path: Path) -> None:
    async def run() -> list[bool]:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        await store.add_report(_report("old"))
        futures = [
            store.queue_report(_report("new")),
            store.queue_report(_report("old") | {"message": "again"}),
            store.queue_report(_report("new") | {"message": "twice"}),
            store.queue_report(_report("other")),
        ]
        outcomes = list(await asyncio.gather(*futures))
        found = await store.get_report("new")
        await store.close()
        assert found is not None and found["message"] == "boom"  # the first one is kept
        return outcomes

    assert asyncio.run(run()) == [True, False, False, True]
    assert _stored_ids(tmp_path / "db.sqlite3") == ["new", "old", "other"]


def test_a_lone_report_goes_at_once_and_a_storm_gathers_its_batches(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> None:
        store = Store(path)
        await store.open()
        store.gather_seconds = 3_600.0  # every report after a commit gathers (no timing here)
        store.batch_size = 50
        first = store.queue_report(_report("lone"))
        assert store.report_backlog == 1 and store.reports_gathering == 0  # handed over at once
        assert await first and store.report_commits == 1
        # Right after a commit: the next reports gather until a batch is full.
        gathered = [store.queue_report(_report(f"g{i}")) for i in range(49)]
        assert store.reports_gathering == 49 and store.report_commits == 1
        gathered.append(store.queue_report(_report("g49")))  # the 50th: handed over now
        assert store.reports_gathering == 0
        assert all(await asyncio.gather(*gathered)) and store.report_commits == 2
        late = [store.queue_report(_report(f"late{i}")) for i in range(3)]
        assert store.reports_gathering == 3  # gathering: closing the store writes them
        await store.close()
        assert all(future.done() and future.result() for future in late)

    asyncio.run(run())
    assert len(_stored_ids(path)) == 54


def test_a_gathering_batch_is_written_when_its_time_is_up(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        store.gather_seconds = 0.05
        await store.add_report(_report("first"))
        waiting = store.queue_report(_report("second"))
        assert store.reports_gathering  # gathering, not yet in the thread's hands
        assert await asyncio.wait_for(waiting, 30)  # the timer hands it over
        assert store.report_commits == 2
        await store.close()

    asyncio.run(run())
