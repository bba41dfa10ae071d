"""The breakpoints table (broker/store/breakpoints.py): schema version 4 and its migration."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from debugbroker.broker.store.schema import SCHEMA_VERSION
from debugbroker.broker.store.store import Store

T = TypeVar("T")


def with_store(path: Path, use: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(path)
        await store.open()
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def breakpoint_row(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "b1",
        "app": "shop",
        "agent_id": "",
        "file": "/srv/shop/views.py",
        "line": 12,
        "condition": "n > 2",
        "hit_count": 0,
        "enabled": True,
        "created": 1_780_000_000.0,
        "created_by": "ana",
    }
    return row | fields


def test_breakpoints_survive_a_broker_restart(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with_store(path, lambda store: store.save_breakpoint(breakpoint_row()))
    second = breakpoint_row(id="b2", agent_id="a-1", enabled=False, created=1_780_000_001.0)
    with_store(path, lambda store: store.save_breakpoint(second))
    assert with_store(path, lambda store: store.list_breakpoints()) == [breakpoint_row(), second]
    changed = breakpoint_row(condition="", hit_count=3)
    with_store(path, lambda store: store.save_breakpoint(changed))  # the same id: replaced
    assert with_store(path, lambda store: store.delete_breakpoint("b2")) is True
    assert with_store(path, lambda store: store.delete_breakpoint("b2")) is False
    assert with_store(path, lambda store: store.list_breakpoints()) == [changed]


def test_a_file_of_schema_version_3_opens_with_the_breakpoints_table(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with_store(path, lambda store: store.count_reports())
    # What the version-3 broker left: no breakpoints table.
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TABLE breakpoints")
        connection.execute("PRAGMA user_version = 3")
    assert SCHEMA_VERSION >= 4  # the table came with version 4
    assert with_store(path, lambda store: store.list_breakpoints()) == []
    with_store(path, lambda store: store.save_breakpoint(breakpoint_row()))
    with closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert with_store(path, lambda store: store.list_breakpoints()) == [breakpoint_row()]
