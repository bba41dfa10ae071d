"""Groups, triage states and retention, on the real ``Store`` and a real SQLite file.

A group counts every report exactly (total and hourly) while keeping only its first and
latest full reports; protected reports (held frames, console transcripts, share links)
stay; a resolved group regresses when its error comes back; a file written before groups
existed (``fixtures/store_v0.sqlite3``, made by the store of eed02e6) opens, migrated.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from debugbroker.broker.store.groups import GroupPage
from debugbroker.broker.store.reports import ReportFilter, insert_reports, select_reports
from debugbroker.broker.store.schema import SCHEMA_VERSION, connect
from debugbroker.broker.store.search import index_pending
from debugbroker.broker.store.store import Retention, Store

T = TypeVar("T")
_FIXTURE = Path(__file__).parent / "fixtures" / "store_v0.sqlite3"
_HOUR = 3600.0
_NO_LIMITS = {"retain_days": 0, "max_reports": 0, "max_db_mb": 0}


def _report(report_id: str, type_name: str = "ValueError", **fields: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "id": report_id,
        "agent_id": "agent-1",
        "created": time.time(),
        "type_name": type_name,  # no exceptions: the type alone is the fingerprint
        "message": "boom",
        "pid": 1,
        "host": "h",
        "app": "shop",
        "request": {"url": "http://h/x"},
        "exceptions": [],
    }
    report.update(fields)
    return report


def _with_store(path: Path, retention: Retention | None, use: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(path, retention)
        await store.open()
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection, connection:
        rows = connection.execute("SELECT id FROM reports ORDER BY created, id")
        return [row[0] for row in rows]


def _groups_by_type(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {group["latest"]["type_name"]: group for group in groups}


def test_a_file_written_before_groups_opens_migrated_with_exact_counts(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)
    with closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 0
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 0

    async def read(store: Store) -> tuple[list[dict[str, Any]], int, str | None]:
        return (
            await store.list_groups(10),
            await store.count_reports(),
            await store.shared_report_id("share-1"),
        )

    groups, count, shared = _with_store(path, None, read)
    assert count == 9 and shared == "r001"
    by_type = _groups_by_type(groups)
    assert {name: group["count"] for name, group in by_type.items()} == {
        "ValueError": 5,
        "KeyError": 3,
        "TypeError": 1,
    }
    assert {name: group["kept"] for name, group in by_type.items()} == {
        "ValueError": 5,
        "KeyError": 3,
        "TypeError": 1,
    }
    value_error = by_type["ValueError"]
    assert value_error["state"] == "open"
    assert value_error["first_seen"] == 1_780_000_000.0
    assert value_error["last_seen"] == 1_780_000_000.0 + 4 * 1800.0 + 4
    with closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        hours = dict(
            connection.execute(
                "SELECT hour, count FROM group_hours WHERE fingerprint = ?",
                (value_error["fingerprint"],),
            ).fetchall()
        )
    first_hour = int(1_780_000_000.0 // _HOUR)  # reports every half hour: 2, 2, 1
    assert hours == {first_hour: 2, first_hour + 1: 2, first_hour + 2: 1}


def test_a_file_of_schema_version_1_opens_migrated(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)
    with (
        closing(sqlite3.connect(path)) as connection,
        connection,
    ):  # what the version-1 broker left: same tables
        connection.execute("PRAGMA user_version = 1")
    groups = _with_store(path, None, lambda store: store.list_groups(10))
    assert sorted(group["count"] for group in groups) == [1, 3, 5]
    with closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_of_schema_version_2_opens_without_the_fingerprint_index(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)
    _with_store(path, None, lambda store: store.list_groups(10))
    # What the version-2 broker left: one more index.
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE INDEX reports_fingerprint ON reports (fingerprint)")
        connection.execute("PRAGMA user_version = 2")
    groups = _with_store(path, None, lambda store: store.list_groups(10))
    assert sorted(group["count"] for group in groups) == [1, 3, 5]
    assert sorted(group["kept"] for group in groups) == [1, 3, 5]
    with closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(reports)")}
    assert "reports_fingerprint" not in indexes
    assert "reports_fingerprint_created" in indexes


def test_migration_applies_retention_but_keeps_shared_reports(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)
    retention = Retention(keep_first=1, keep_latest=1, **_NO_LIMITS)
    groups = _with_store(path, retention, lambda store: store.list_groups(10))
    by_type = _groups_by_type(groups)
    assert by_type["ValueError"]["count"] == 5
    assert by_type["ValueError"]["kept"] == 3  # first, latest, and r001 (shared)
    assert by_type["KeyError"]["kept"] == 2
    assert sorted(_ids(path)) == ["r000", "r001", "r004", "r005", "r007", "r008"]


def test_a_storm_of_one_error_keeps_its_first_and_latest_and_counts_all(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    retention = Retention(keep_first=2, keep_latest=3, **_NO_LIMITS)
    start = 1_780_000_000.0

    async def storm(store: Store) -> list[dict[str, Any]]:
        futures = [
            store.queue_report(_report(f"r{i:04d}", created=start + i * 10.0)) for i in range(1_000)
        ]
        assert all(await asyncio.gather(*futures))
        await store.add_report(_report("other", "KeyError", created=start))
        return await store.list_groups(10)

    groups = _with_store(path, retention, storm)
    by_type = _groups_by_type(groups)
    assert by_type["ValueError"]["count"] == 1_000
    assert by_type["ValueError"]["kept"] == 5
    assert by_type["ValueError"]["latest"]["id"] == "r0999"
    assert by_type["KeyError"]["count"] == 1
    assert _ids(path) == ["other", "r0000", "r0001", "r0997", "r0998", "r0999"]
    with closing(sqlite3.connect(path)) as connection, connection:
        total = connection.execute(
            "SELECT SUM(count) FROM group_hours WHERE fingerprint = ?",
            (by_type["ValueError"]["fingerprint"],),
        ).fetchone()[0]
    assert total == 1_000  # every report counted by the hour, kept or not


def test_the_hourly_counts_of_the_last_day_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    now = time.time()

    async def send(store: Store) -> list[dict[str, Any]]:
        for i in range(6):  # 3 this hour, 2 five hours ago, 1 two days ago (not shown)
            ago = [0, 0, 0, 5, 5, 48][i] * _HOUR
            await store.add_report(_report(f"r{i}", created=now - ago))
        return await store.list_groups(10)

    [group] = _with_store(path, Retention(keep_first=1, keep_latest=1, **_NO_LIMITS), send)
    assert group["count"] == 6 and group["kept"] == 2
    assert len(group["hourly"]) == 24
    assert group["hourly"][-1] == 3 and group["hourly"][-6] == 2 and sum(group["hourly"]) == 5


def test_a_resolved_group_regresses_when_its_error_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def triage(store: Store) -> list[str]:
        states = []
        await store.add_report(_report("r1"))
        [group] = await store.list_groups(10)
        assert await store.set_group_state(group["fingerprint"], "resolved")
        states.append((await store.list_groups(10))[0]["state"])
        await store.add_report(_report("r2"))
        states.append((await store.list_groups(10))[0]["state"])
        assert not await store.set_group_state("no-such-group", "resolved")
        return states

    assert _with_store(path, None, triage) == ["resolved", "regressed"]


def test_a_mute_ends_after_n_more_or_at_its_time_and_ignore_lasts(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def triage(store: Store) -> list[tuple[str, int | None]]:
        seen: list[tuple[str, int | None]] = []

        async def state(type_name: str) -> None:
            group = _groups_by_type(await store.list_groups(10))[type_name]
            seen.append((group["state"], group["mute_remaining"]))

        await store.add_report(_report("a0", "ValueError"))
        await store.add_report(_report("b0", "KeyError"))
        await store.add_report(_report("c0", "TypeError"))
        groups = _groups_by_type(await store.list_groups(10))
        await store.set_group_state(groups["ValueError"]["fingerprint"], "muted", mute_remaining=3)
        await store.set_group_state(
            groups["KeyError"]["fingerprint"], "muted", mute_until=time.time() - 1
        )
        await store.set_group_state(groups["TypeError"]["fingerprint"], "ignored")
        await store.add_report(_report("a1", "ValueError"))
        await store.add_report(_report("a2", "ValueError"))
        await state("ValueError")  # 2 of 3 more: still muted
        await store.add_report(_report("a3", "ValueError"))
        await state("ValueError")  # the 3rd: open again
        await state("KeyError")  # its time is past: open
        await store.add_report(_report("c1", "TypeError"))
        await state("TypeError")
        return seen

    assert _with_store(path, None, triage) == [
        ("muted", 1),
        ("open", None),
        ("open", None),
        ("ignored", None),
    ]


def test_a_mute_whose_time_ended_is_open_in_every_filter(tmp_path: Path) -> None:
    """The groups' and the reports' state filters agree with the state a group shows."""

    async def filtered(store: Store) -> dict[str, Any]:
        await store.add_report(_report("a0", "ValueError"))
        await store.add_report(_report("b0", "KeyError"))
        groups = _groups_by_type(await store.list_groups(10))
        ended, running = time.time() - 1, time.time() + 600
        await store.set_group_state(groups["ValueError"]["fingerprint"], "muted", ended)
        await store.set_group_state(groups["KeyError"]["fingerprint"], "muted", running)
        found: dict[str, Any] = {}
        for state in ("open", "muted"):
            page = GroupPage((state,))
            found[f"groups {state}"] = sorted(_groups_by_type(await store.list_groups(10, page)))
            found[f"count {state}"] = await store.count_groups((state,))
            reports = await store.list_reports(10, filters=ReportFilter(state=state))
            found[f"reports {state}"] = [report["id"] for report in reports]
        return found

    assert _with_store(tmp_path / "db.sqlite3", None, filtered) == {
        "groups open": ["ValueError"],
        "count open": 1,
        "reports open": ["a0"],
        "groups muted": ["KeyError"],
        "count muted": 1,
        "reports muted": ["b0"],
    }


def test_held_frames_and_console_transcripts_keep_their_reports(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    retention = Retention(keep_first=1, keep_latest=1, **_NO_LIMITS)
    start = 1_780_000_000.0

    async def storm(store: Store) -> None:
        store.held_reports = {"r03"}
        await store.add_report(_report("r00", created=start))
        for i in range(1, 6):
            await store.add_report(_report(f"r{i:02d}", created=start + i))
            if i == 2:
                store.start_console_entry("reports/r02/frames/0", "me", "x", start)
                await store.flush()
        store.held_reports = set()  # the agent let r03 go: retention may take it now
        await store.add_report(_report("r06", created=start + 6))

    _with_store(path, retention, storm)
    assert _ids(path) == ["r00", "r02", "r06"]


def test_delete_a_report_a_group_and_everything(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def delete(store: Store) -> list[object]:
        for i in range(3):
            await store.add_report(_report(f"v{i}", "ValueError"))
            await store.add_report(_report(f"k{i}", "KeyError"))
        await store.create_share("s1", "v0", 1.0)
        by_type = _groups_by_type(await store.list_groups(10))
        outcomes: list[object] = [
            await store.delete_report("v1"),
            await store.delete_report("v1"),
            await store.delete_group(by_type["KeyError"]["fingerprint"]),
            await store.delete_group("no-such-group"),
        ]
        [group] = await store.list_groups(10)
        outcomes += [group["count"], group["kept"], await store.count_reports()]
        outcomes += [await store.clear_all(), await store.list_groups(10)]
        outcomes.append(await store.shared_report_id("s1"))
        return outcomes

    assert _with_store(path, None, delete) == [True, False, 3, None, 3, 2, 2, 2, [], None]


def test_space_is_given_back_when_reports_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    bulky = "x" * 20_000
    start = 1_780_000_000.0

    async def fill(store: Store) -> None:
        futures = [
            store.queue_report(_report(f"r{i}", f"Error{i}", created=start + i, message=bulky))
            for i in range(400)
        ]
        await asyncio.gather(*futures)

    _with_store(path, None, fill)
    full = path.stat().st_size
    assert full > 8_000_000
    retention = Retention(max_reports=20, retain_days=0, max_db_mb=0)
    groups = _with_store(path, retention, lambda store: store.list_groups(1_000))
    assert len(groups) == 400 and sum(group["kept"] for group in groups) == 20
    # The file shrank, not only its free pages: 20 of 400 reports are left (each now also
    # in the search index, which the sweep fills after the reports were stored).
    assert path.stat().st_size < full / 5


def test_the_file_size_limit_deletes_the_oldest_reports(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    bulky = "y" * 20_000
    start = 1_780_000_000.0

    async def fill(store: Store) -> None:
        for i in range(300):
            await store.queue_report(
                _report(f"r{i:03d}", f"Error{i}", created=start + i, message=bulky)
            )

    _with_store(path, None, fill)
    retention = Retention(max_db_mb=1.0, retain_days=0, max_reports=0)
    _with_store(path, retention, lambda store: store.count_reports())
    left = _ids(path)
    assert 0 < len(left) < 60 and left[-1] == "r299"  # the newest stay
    assert path.stat().st_size < 2 * 1024 * 1024


def test_reports_older_than_the_retention_go_with_their_quiet_groups(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    now = time.time()

    async def send(store: Store) -> None:
        await store.add_report(_report("old", "KeyError", created=now - 40 * 86_400))
        await store.add_report(_report("new", "ValueError", created=now))

    _with_store(path, None, send)
    retention = Retention(retain_days=30, max_reports=0, max_db_mb=0)
    groups = _with_store(path, retention, lambda store: store.list_groups(10))
    assert _ids(path) == ["new"]
    assert [group["latest"]["id"] for group in groups] == ["new"]


def _window_model(
    stored: dict[str, list[tuple[float, str]]],
    batch: list[dict[str, Any]],
    retention: Retention,
    protected: set[str],
) -> None:
    """What the store keeps, written plainly: each group the batch adds to has its reports
    in order of time, and all but its first and latest ones go, unless protected."""
    for report in batch:
        stored.setdefault(report["type_name"], []).append((report["created"], report["id"]))
    for key in {report["type_name"] for report in batch}:
        group = sorted(stored[key])
        middle = group[retention.keep_first : len(group) - retention.keep_latest]
        gone = {entry for entry in middle if entry[1] not in protected}
        stored[key] = [entry for entry in group if entry not in gone]


def test_batches_of_many_groups_keep_exact_counts_and_the_same_windows_as_a_trim(
    tmp_path: Path,
) -> None:
    """Batches mixing many groups, one group over its whole window in one batch, reports
    older than what their group keeps, shared and held reports, and reports already
    indexed for search: the store keeps what the plain model keeps and counts every one."""
    retention = Retention(keep_first=2, keep_latest=3, **_NO_LIMITS)
    chance = random.Random(19)
    start = 1_780_000_000.0
    connection = connect(tmp_path / "db.sqlite3")
    stored: dict[str, list[tuple[float, str]]] = {}
    sent: dict[str, int] = {}
    protected: set[str] = set()
    clock = 0
    try:
        for number in range(40):
            batch = []
            for index in range(chance.randrange(1, 30)):
                clock += 1
                kind = "Storm" if number % 5 == 0 and index < 12 else f"E{chance.randrange(8)}"
                # sent with a time before its group's latest (but after its first ones)
                late = number >= 10 and chance.random() < 0.1
                created = start + clock - (chance.randrange(1, 20) if late else 0) + clock / 1e6
                batch.append(_report(f"r{number:02d}-{index:02d}", kind, created=created))
            held = {batch[0]["id"]} if number % 7 == 3 else set()
            if number % 6 == 2:  # a share link on the oldest "latest" report of a group
                group = stored.get("E1", [])
                if len(group) > retention.keep_first:
                    shared = group[retention.keep_first][1]
                    connection.execute(
                        "INSERT INTO shares VALUES (?, ?, ?)", (f"s{number}", shared, start)
                    )
                    protected.add(shared)
            outcomes = insert_reports(connection, batch, retention, held, start + clock)
            assert outcomes == [True] * len(batch)
            _window_model(stored, batch, retention, protected | held)
            for report in batch:
                sent[report["type_name"]] = sent.get(report["type_name"], 0) + 1
            if number % 4 == 1:  # the reports kept so far are indexed for search
                index_pending(connection)
                connection.commit()
            kept = sorted(row[0] for row in connection.execute("SELECT id FROM reports"))
            assert kept == sorted(entry[1] for group in stored.values() for entry in group)
        totals = dict(
            connection.execute(
                "SELECT r.type_name, g.total FROM groups g JOIN reports r ON r.id = "
                "(SELECT id FROM reports WHERE fingerprint = g.fingerprint LIMIT 1)"
            ).fetchall()
        )
        assert totals == sent
        hours = connection.execute("SELECT SUM(count) FROM group_hours").fetchone()[0]
        assert hours == sum(sent.values())
        orphans = connection.execute(
            "SELECT COUNT(*) FROM reports_fts WHERE rowid NOT IN (SELECT rowid FROM reports)"
        ).fetchone()[0]
        assert orphans == 0  # a report that left its window left the search index too
        found = select_reports(connection, 1000, filters=ReportFilter(text="boom"))
        assert sorted(row["id"] for row in found) == kept  # every kept report, found once
    finally:
        connection.close()


def test_a_group_without_a_latest_window_keeps_its_first_reports_only(tmp_path: Path) -> None:
    """``--keep-latest 0``: a batch writes none of its reports, and a report that was kept
    while its frames were held goes once they are not."""
    retention = Retention(keep_first=1, keep_latest=0, **_NO_LIMITS)
    connection = connect(tmp_path / "db.sqlite3")
    try:
        for number, held in enumerate([set(), {"r1"}, set(), set()]):
            report = _report(f"r{number}", created=1_780_000_000.0 + number)
            assert insert_reports(connection, [report], retention, held, 0.0) == [True]
        kept = [row[0] for row in connection.execute("SELECT id FROM reports")]
        total = connection.execute("SELECT total FROM groups").fetchone()[0]
        assert (kept, total) == (["r0"], 4)
    finally:
        connection.close()
