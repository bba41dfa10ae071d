"""The store's queued writes (console transcript, audit) and the frame-target cache.

A real SQLite file through the real ``Store``: writes the console's hot path does not wait
for must still be seen by any later read, survive a stop, and never reuse an entry id.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from debugbroker.broker.store.frame_targets import FrameCache, FrameTargets, frame_targets
from debugbroker.broker.store.store import Store


def _report(report_id: str) -> dict[str, Any]:
    frame = {"index": 0, "frame_id": "held-0", "function": "f"}
    inner = {"frames": [{"index": 2, "frame_id": "", "function": "h"}], "exceptions": []}
    return {
        "id": report_id,
        "agent_id": "agent-1",
        "created": 1.0,
        "type_name": "ValueError",
        "message": "boom",
        "pid": 1,
        "host": "h",
        "app": "a",
        "request": None,
        "exceptions": [
            {"frames": [frame, {"index": 1, "frame_id": "held-1"}], "exceptions": [inner]}
        ],
    }


def test_queued_writes_are_seen_by_the_next_read_and_survive_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def first() -> tuple[int, int, list[dict[str, Any]], list[dict[str, Any]]]:
        store = Store(path)
        await store.open()
        row = await store.start_audit({"at": 10.0, "action": "eval", "code": "1 + 1"})
        assert row is not None  # committed: the outcome is an update
        one = store.start_console_entry("t", "ann", "1 + 1", 10.0)
        two = store.start_console_entry("t", "bob", "x", 11.0)
        store.queue_finish_console_entry(one, "done", {"result": {"text": "2"}, "failure": None})
        store.queue_finish_audit(row, "ok", "")
        # No waiting in between: the reads must still see every queued write.
        entries = await store.list_console_entries("t", 10)
        audit = await store.list_audit(10)
        await store.close()
        return one, two, entries, audit

    one, two, entries, audit = asyncio.run(first())
    assert two == one + 1
    assert [(e["id"], e["state"], e["author"]) for e in entries] == [
        (one, "done", "ann"),
        (two, "running", "bob"),
    ]
    assert entries[0]["result"] == {"text": "2"}
    assert [(a["action"], a["code"], a["outcome"]) for a in audit] == [("eval", "1 + 1", "ok")]

    async def second() -> tuple[int, list[dict[str, Any]]]:
        store = Store(path)
        await store.open()  # marks the running entry failed: its eval never answered
        three = store.start_console_entry("t", "cy", "y", 12.0)
        await store.flush()
        entries = await store.list_console_entries("t", 10)
        await store.close()
        return three, entries

    three, entries = asyncio.run(second())
    assert three > two  # ids are never reused, even after a restart
    assert [(e["id"], e["state"]) for e in entries] == [
        (one, "done"),
        (two, "failed"),
        (three, "running"),
    ]
    with closing(sqlite3.connect(path)) as connection, connection:  # committed to the file itself
        rows = connection.execute("SELECT id, body FROM console_entries ORDER BY id").fetchall()
    assert [row[0] for row in rows] == [one, two, three]
    assert json.loads(rows[1][1])["failure"] == "the broker stopped while this ran"


def test_entry_ids_continue_after_deleted_entries(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> tuple[int, int]:
        store = Store(path)
        await store.open()
        last = store.start_console_entry("t", "a", "x", 1.0)
        await store.close()
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("DELETE FROM console_entries")
        store = Store(path)
        await store.open()
        after = store.start_console_entry("t", "a", "y", 2.0)
        await store.close()
        return last, after

    last, after = asyncio.run(run())
    assert after == last + 1  # AUTOINCREMENT's sequence, not MAX(id), decides


def test_frame_targets_are_read_once_and_cached(tmp_path: Path) -> None:
    async def run() -> tuple[FrameTargets | None, FrameTargets | None, FrameTargets | None]:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        missing = await store.get_frame_targets("r1")
        await store.add_report(_report("r1"))
        found = await store.get_frame_targets("r1")
        again = await store.get_frame_targets("r1")
        await store.close()
        assert again is found  # from the cache, not parsed again
        return missing, found, again

    missing, found, _ = asyncio.run(run())
    assert missing is None  # not cached: a report may still arrive
    assert found == FrameTargets("agent-1", {0: "held-0", 1: "held-1", 2: ""})


def test_frame_targets_first_index_wins_and_bad_frames_are_skipped() -> None:
    report = _report("r")
    report["exceptions"][0]["frames"] += [{"index": 0, "frame_id": "later"}, {"index": "x"}]
    report["exceptions"][0]["frames"].append({"index": 5, "frame_id": 7})
    targets = frame_targets(report)
    assert targets.frame_ids == {0: "held-0", 1: "held-1", 2: "", 5: ""}


def test_frame_cache_forgets_the_least_recently_used() -> None:
    cache = FrameCache(capacity=2)
    a, b, c = (FrameTargets(name, {}) for name in "abc")
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # now b is the least recently used
    cache.put("c", c)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is a and cache.get("c") is c


def test_a_transcript_is_trimmed_to_its_last_500_entries_every_50(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def run() -> tuple[list[int], list[int], list[int]]:
        store = Store(path)
        await store.open()
        ids = []
        for number in range(600):  # another console's entries interleaved: never trimmed
            ids.append(store.start_console_entry("t", "a", f"{number}", float(number)))
            if number % 20 == 0:
                store.start_console_entry("u", "b", "other", float(number))
        await store.flush()
        trimmed = [e["id"] for e in await store.list_console_entries("t", 500)]
        more = [store.start_console_entry("t", "a", "more", 1.0) for _ in range(49)]
        await store.flush()
        await store.close()
        return ids, trimmed, more

    ids, trimmed, more = asyncio.run(run())
    with closing(sqlite3.connect(path)) as connection, connection:
        counts = dict(
            connection.execute("SELECT target, COUNT(*) FROM console_entries GROUP BY target")
        )
        kept = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM console_entries WHERE target = 't' ORDER BY id"
            )
        ]
    assert trimmed == ids[-500:]  # the 600th entry trimmed it to exactly 500
    assert kept == ids[-500:] + more  # 49 more: not trimmed yet (at most 549)
    assert counts == {"t": 549, "u": 30}


def test_an_entry_ends_alike_whether_its_insert_was_written_yet_or_not(tmp_path: Path) -> None:
    async def run() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        queued = store.start_console_entry("t", "a", "1", 1.0)
        store.queue_finish_console_entry(queued, "done", '{"result":{"text":"1"},"failure":null}')
        written = store.start_console_entry("t", "a", "2", 2.0)
        running = await store.list_console_entries("t", 10)  # both inserts are written now
        store.queue_finish_console_entry(written, "failed", {"result": None, "failure": "gone"})
        await store.flush()
        with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as connection, connection:
            rows = connection.execute("SELECT state, body FROM console_entries ORDER BY id")
            stored = [(state, body) for state, body in rows]
        await store.close()
        return running, stored

    running, stored = asyncio.run(run())
    assert [(e["state"], e["result"]) for e in running] == [
        ("done", {"text": "1"}),
        ("running", None),
    ]
    assert stored == [
        ("done", '{"result":{"text":"1"},"failure":null}'),
        ("failed", '{"result":null,"failure":"gone"}'),
    ]


def test_a_flush_never_waits_on_the_loop_for_another_programs_lock(tmp_path: Path) -> None:
    # flush() commits on the event loop when the store's thread is idle; another program
    # holding the file's write lock (the sqlite3 shell, a backup) must not stall the loop,
    # and the writes must not be lost: the store's thread waits for the lock instead.
    path = tmp_path / "db.sqlite3"

    async def scenario() -> tuple[bool, int, list[dict[str, Any]]]:
        store = Store(path)
        await store.open()
        other = sqlite3.connect(path, timeout=0)
        other.execute("BEGIN IMMEDIATE")  # the write lock, held by "another program"
        entry = store.start_console_entry("t", "ann", "1 + 1", 10.0)
        store.queue_finish_console_entry(entry, "done", {"result": {"text": "2"}})
        flush = asyncio.ensure_future(store.flush())
        await asyncio.sleep(0)  # one loop turn: the flush has tried the commit by now
        waiting = not flush.done()  # it waits off the loop (this coroutine ran meanwhile)
        other.rollback()
        other.close()
        await flush
        entries = await store.list_console_entries("t", 10)
        await store.close()
        return waiting, entry, entries

    waiting, entry, entries = asyncio.run(scenario())
    assert waiting
    assert [(e["id"], e["state"]) for e in entries] == [(entry, "done")]


def test_the_stores_thread_still_waits_for_a_lock_after_commits_on_the_loop(
    tmp_path: Path,
) -> None:
    # The loop's commits leave the connection's busy timeout at 0 between them (no PRAGMA
    # per commit); a job on the store's thread must get its 5 s back before it runs, and a
    # commit on the loop after that job must again not wait.
    path = tmp_path / "db.sqlite3"

    def busy_timeout(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA busy_timeout").fetchone()[0])

    async def scenario() -> tuple[int, int, bool, list[str]]:
        store = Store(path)
        await store.open()
        timeouts = []
        for code in ("1", "2"):  # two commits on the loop in a row, then a thread's job
            store.start_console_entry("t", "ann", code, 10.0)
            await store.flush()
            # What the store's thread's next job runs with (no public way to ask).
            timeouts.append(await store._call(busy_timeout))  # noqa: SLF001
        other = sqlite3.connect(path, timeout=0)
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        store.start_console_entry("t", "ann", "3", 10.0)
        flush = asyncio.ensure_future(store.flush())
        await asyncio.sleep(0)  # the loop tried once, did not wait, and handed it over
        waiting = not flush.done()
        other.rollback()
        other.close()
        await flush
        entries = await store.list_console_entries("t", 10)
        await store.close()
        return timeouts[0], timeouts[1], waiting, [e["code"] for e in entries]

    first, second, waiting, codes = asyncio.run(scenario())
    assert (first, second) == (5000, 5000)
    assert waiting
    assert codes == ["1", "2", "3"]
