"""Counted repeats (``protocol.Repeats``) on the broker: both decoders refuse what cannot be
counted exactly, and the store adds the counts to the group's total and hourly histogram,
reopening a resolved group like a full report would."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import msgpack
import pytest

from debugbroker import protocol
from debugbroker.broker.store.grouping import fingerprint
from debugbroker.broker.store.store import Retention, Store
from debugbroker.broker.wire import decode_message
from debugbroker.protocol import ProtocolError, RepeatCount, Repeats

_HOUR = 3600


def packed(counts: list[dict[str, Any]]) -> bytes:
    return bytes(msgpack.packb({"kind": "repeats", "counts": counts}, use_bin_type=True))


def entry(**fields: Any) -> dict[str, Any]:
    return {"report_id": "r1", "count": 3, "first": 7200.0, "last": 7260.0, **fields}


def test_a_good_repeats_message_decodes_the_same_on_both_paths() -> None:
    payload = packed([entry()])
    expected = Repeats(counts=(RepeatCount(report_id="r1", count=3, first=7200.0, last=7260.0),))
    assert protocol.decode(payload) == expected == decode_message(payload)
    assert protocol.encode(expected) == payload


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"count": 0}, "count: expected 1 to"),
        ({"count": -5}, "count: expected 1 to"),
        ({"count": protocol.MAX_REPEATS + 1}, "count: expected 1 to"),
        ({"count": "3"}, "expected an integer"),
        ({"first": 7300.0, "last": 7200.0}, "not after last"),
        ({"first": 3599.0}, "same clock hour"),
        ({"last": float("inf")}, "finite"),
        ({"first": float("nan")}, "finite"),
        ({"report_id": ""}, "report_id"),
        ({"report_id": "x" * 201}, "report_id"),
    ],
)
def test_counts_that_cannot_be_added_exactly_are_refused_with_the_reason(
    fields: dict[str, Any], why: str
) -> None:
    payload = packed([entry(**fields)])
    for decode in (protocol.decode, decode_message):
        with pytest.raises(ProtocolError, match=why):
            decode(payload)


def test_too_many_counts_in_one_message_are_refused() -> None:
    payload = packed([entry()] * (protocol.MAX_REPEAT_COUNTS + 1))
    for decode in (protocol.decode, decode_message):
        with pytest.raises(ProtocolError, match="at most"):
            decode(payload)
    with pytest.raises(ProtocolError, match="counts"):
        protocol.decode(bytes(msgpack.packb({"kind": "repeats"})))


def _report(report_id: str, created: float) -> dict[str, Any]:
    return {
        "id": report_id,
        "agent_id": "agent-1",
        "created": created,
        "type_name": "ValueError",
        "message": "boom",
        "pid": 1,
        "host": "h",
        "app": "shop",
        "request": None,
        "exceptions": [],
    }


def _hours(path: Path, key: str) -> dict[int, int]:
    with closing(sqlite3.connect(path)) as connection, connection:
        rows = connection.execute(
            "SELECT hour, count FROM group_hours WHERE fingerprint = ?", (key,)
        ).fetchall()
    return dict(rows)


def test_counts_land_exactly_in_the_group_and_reopen_a_resolved_one(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    now = time.time()
    this_hour = int(now // _HOUR)
    report = _report("r1", now - _HOUR)
    key = fingerprint(report)

    async def run() -> list[dict[str, Any]]:
        store = Store(path, Retention(retain_days=0, max_reports=0, max_db_mb=0))
        await store.open()
        try:
            assert await store.add_report(report)
            assert await store.set_group_state(key, "resolved")
            store.queue_repeats([(key, 7, now - _HOUR, now - _HOUR + 1), (key, 5, now, now)])
            store.queue_repeats([(key, 1, now, now)])
            await store.flush()
            return await store.list_groups(10)
        finally:
            await store.close()

    [group] = asyncio.run(run())
    assert group["count"] == 1 + 7 + 5 + 1 and group["kept"] == 1
    assert group["state"] == "regressed"
    assert group["hourly"][-2:] == [1 + 7, 5 + 1]
    assert _hours(path, key) == {this_hour - 1: 8, this_hour: 6}
    assert group["last_seen"] == now


def test_counts_of_a_shed_report_make_its_group(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    now = time.time()

    async def run() -> list[dict[str, Any]]:
        store = Store(path)
        await store.open()
        try:
            store.queue_repeats([("feedfacefeedface", 4, now, now)])
            await store.flush()
            return await store.list_groups(10)
        finally:
            await store.close()

    [group] = asyncio.run(run())
    assert (group["fingerprint"], group["count"], group["kept"]) == ("feedfacefeedface", 4, 0)
    assert group["state"] == "open" and group["latest"] is None
