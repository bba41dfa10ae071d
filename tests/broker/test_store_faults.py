"""The store's queued writes on a full disk: a real ``Store`` on a small tmpfs the test fills.

Console transcript entries, their ends and audit rows that meet a full disk wait in memory,
in order, and are written once space returns; past the bound they are shed and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from debugbroker.broker.store.store import Store
from tests.conftest import fill_file_system


def _fault(store: Store) -> str | None:
    """The store's fault, read afresh (the asserts before narrowed the attribute)."""
    return store.fault


def test_console_and_audit_writes_wait_through_a_full_disk_and_are_shed_past_the_bound(
    tmp_path: Path, mount_tmpfs: Callable[..., Path]
) -> None:
    disk = mount_tmpfs(tmp_path / "disk", "1m")

    async def run() -> None:
        store = Store(disk / "db.sqlite3")
        store.retry_seconds = 0.05
        store.max_waiting_writes = 4
        await store.open()
        try:
            fill_file_system(disk / "filler")
            entry = store.start_console_entry("t", "ann", "1 + 1", 10.0)
            store.queue_audit({"at": 10.0, "action": "eval", "code": "1 + 1", "outcome": "ok"})
            await store.flush()  # no commit is possible: the writes wait
            assert store.fault == "the disk is full"
            assert store.writes_waiting == 2
            # The end of an entry whose insert waits goes into that insert (no lost UPDATE).
            store.queue_finish_console_entry(entry, "done", {"result": None, "failure": None})
            store.queue_audit({"at": 11.0, "action": "eval", "code": "2", "outcome": "ok"})
            store.queue_audit({"at": 12.0, "action": "eval", "code": "3", "outcome": "ok"})
            store.queue_audit({"at": 13.0, "action": "eval", "code": "4", "outcome": "ok"})
            assert (store.writes_waiting, store.writes_shed) == (4, 1)
            assert store.shed_reason == "the disk is full"
            for _ in range(3):  # tried again and again while the disk stays full
                await asyncio.sleep(store.retry_seconds * 2)
                assert store.writes_waiting == 4 and store.fault == "the disk is full"

            (disk / "filler").unlink()
            for _ in range(200):
                if _fault(store) is None:
                    break
                await asyncio.sleep(store.retry_seconds)
            assert (_fault(store), store.writes_waiting, store.writes_shed) == (None, 0, 1)
            entries = await store.list_console_entries("t", 10)
            assert [(e["id"], e["state"]) for e in entries] == [(entry, "done")]
            audit = await store.list_audit(10)
            assert [row["code"] for row in audit] == ["3", "2", "1 + 1"]  # "4" was shed
        finally:
            await store.close()

    asyncio.run(run())
