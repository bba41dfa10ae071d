"""Search and pagination on the real ``Store``: the FTS5 index of message, traceback,
locals and URL (filled after the reports are stored: by the sweep, or by a search first),
the filters (state, time, app, agent) and keyset pages."""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from debugbroker.broker.store import search
from debugbroker.broker.store.reports import ReportFilter
from debugbroker.broker.store.schema import SCHEMA_VERSION
from debugbroker.broker.store.search import match_query
from debugbroker.broker.store.store import Retention, Store
from tests.broker.test_store_groups import _FIXTURE, _NO_LIMITS, _report, _with_store


def _local(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "value": {"kind": "str", "type_name": "str", "text": text}}


def _rich(report_id: str, **fields: Any) -> dict[str, Any]:
    frame = {"index": 0, "filename": "shop.py", "function": "view"}
    frame["locals"] = [_local("cart", "'basket-42'")]
    return _report(
        report_id,
        text="Traceback (most recent call last):\n  File shop.py in checkout_total\nValueError",
        exceptions=[{"type_name": "ValueError", "module": "builtins", "frames": [frame]}],
        **fields,
    )


def _ids(reports: list[dict[str, Any]]) -> list[str]:
    return [report["id"] for report in reports]


def test_words_are_found_in_message_traceback_locals_and_url(tmp_path: Path) -> None:
    async def search(store: Store) -> dict[str, list[str]]:
        await store.add_report(_rich("a", message="payment declined", created=1.0))
        await store.add_report(
            _report(
                "b",
                "KeyError",
                message="no user",
                created=2.0,
                request={"url": "http://h/users/grace"},
            )
        )
        found = {}
        queries = ("declined", "checkout_total", "basket", "grace", "PAYMENT decl", "nothing", "%_")
        for query in queries:
            found[query] = _ids(await store.list_reports(10, filters=ReportFilter(text=query)))
        await store.delete_report("a")
        gone = await store.list_reports(10, filters=ReportFilter(text="declined"))
        found["after delete"] = _ids(gone)
        return found

    assert _with_store(tmp_path / "db.sqlite3", None, search) == {
        "declined": ["a"],
        "checkout_total": ["a"],
        "basket": ["a"],  # a local's value
        "grace": ["b"],  # the URL
        "PAYMENT decl": ["a"],  # any case; the last word a prefix too
        "nothing": [],
        "%_": [],  # only separators
        "after delete": [],
    }


# Chinese, Japanese and Korean runs have no spaces between their words: a word inside one
# is found too, in every indexed field (message, locals, URL).
_UNSPACED_QUERIES = {
    "見つかりません": ["r000"],  # inside ユーザーが見つかりません
    "ユーザー": ["r000"],
    "ーザ": ["r000"],
    "在庫": ["r000"],  # a local's value
    "处理": ["r001"],
    "订单处理失败": ["r001"],
    "超时": ["r001"],
    "찾을수": ["r002"],
    "注文": ["r000", "r001", "r002", "r003"],  # the URL's path
    "见つ": [],  # characters of two reports, never adjacent in either
    "declined": ["r003"],
    "payment 处理": [],  # every word must be in the one report
}


async def _unspaced_found(store: Store) -> dict[str, list[str]]:
    return {
        query: sorted(_ids(await store.list_reports(10, filters=ReportFilter(text=query))))
        for query in _UNSPACED_QUERIES
    }


def test_words_inside_chinese_japanese_and_korean_text_are_found(tmp_path: Path) -> None:
    async def search(store: Store) -> dict[str, list[str]]:
        for i, (message, local) in enumerate(_UNSPACED_ROWS):
            report = _rich(f"r{i:03d}", message=message, created=float(i + 1))
            report["request"] = {"url": f"http://h/注文/{i}"}
            report["exceptions"][0]["frames"][0]["locals"] = [_local("note", local)]
            await store.add_report(report)
        return await _unspaced_found(store)

    assert _with_store(tmp_path / "db.sqlite3", None, search) == _UNSPACED_QUERIES


_UNSPACED_ROWS = [
    ("ユーザーが見つかりません id=5", "'在庫がありません'"),
    ("订单处理失败", "'支付网关超时'"),
    ("사용자를찾을수없습니다", "'결제실패'"),
    ("payment declined", "'basket-42'"),
]


def test_a_file_of_schema_version_5_is_indexed_again_for_unspaced_scripts(
    tmp_path: Path,
) -> None:
    """``fixtures/store_v5.sqlite3`` (made by the code of 089fa4d, see its README) indexed
    these reports with each run of CJK text as one word: ``見つかりません`` was not found."""
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE.with_name("store_v5.sqlite3"), path)
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 5
        old = "SELECT rowid FROM reports_fts WHERE reports_fts MATCH ?"
        assert connection.execute(old, ('"見つかりません"*',)).fetchall() == []
        assert connection.execute(old, ('"ユーザーが見つかりません"*',)).fetchall()
    assert _with_store(path, None, _unspaced_found) == _UNSPACED_QUERIES
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert _indexed(path) == ["r000", "r001", "r002", "r003"]


def test_fts_operators_in_a_query_are_taken_literally() -> None:
    assert match_query('a OR b NOT "c" NEAR(d)') == (
        '"a"* AND "OR"* AND "b"* AND "NOT"* AND "c"* AND "NEAR"* AND "d"*'
    )
    assert match_query("  ") == ""
    assert match_query("id5見つ OR") == '"id5 見 つ"* AND "OR"*'


def test_filters_by_state_time_app_and_agent(tmp_path: Path) -> None:
    async def search(store: Store) -> dict[str, list[str]]:
        await store.add_report(_report("v1", created=10.0, app="shop"))
        await store.add_report(_report("v2", created=20.0, app="blog", agent_id="agent-2"))
        await store.add_report(_report("k1", "KeyError", created=30.0, app="shop"))
        groups = {g["latest"]["type_name"]: g for g in await store.list_groups(10)}
        await store.set_group_state(groups["KeyError"]["fingerprint"], "resolved")
        found = {}
        for name, filters in {
            "resolved": ReportFilter(state="resolved"),
            "open": ReportFilter(state="open"),
            "since 20": ReportFilter(since=20.0),
            "until 20": ReportFilter(until=20.0),
            "blog": ReportFilter(app="blog"),
            "agent-2": ReportFilter(agent_id="agent-2"),
            "shop, open": ReportFilter(app="shop", state="open"),
        }.items():
            found[name] = _ids(await store.list_reports(10, filters=filters))
        return found

    assert _with_store(tmp_path / "db.sqlite3", None, search) == {
        "resolved": ["k1"],
        "open": ["v2", "v1"],
        "since 20": ["k1", "v2"],
        "until 20": ["v1"],
        "blog": ["v2"],
        "agent-2": ["v2"],
        "shop, open": ["v1"],
    }


def test_bad_filters_are_refused_clearly() -> None:
    for query, message in (
        ({"state": "sleeping"}, "state must be one of"),
        ({"since": "yesterday"}, "since must be a time"),
        ({"until": "inf"}, "until must be a finite number"),
        ({"app": "x" * 501}, "limited to 500"),
    ):
        try:
            ReportFilter.from_query(query)
        except ValueError as error:
            assert message in str(error)
        else:
            raise AssertionError(f"{query} was taken")


def test_keyset_pages_are_stable_across_equal_times_and_new_reports(tmp_path: Path) -> None:
    async def pages(store: Store) -> list[list[str]]:
        for i in range(7):  # all at the same time: only the id orders them
            await store.add_report(_report(f"r{i}", created=5.0))
        seen = []
        page = await store.list_reports(3)
        seen.append(_ids(page))
        await store.add_report(_report("newer", created=9.0))  # arrives between two pages
        while page:
            last = page[-1]
            page = await store.list_reports(3, before=last["created"], before_id=last["id"])
            seen.append(_ids(page))
        return seen

    assert _with_store(tmp_path / "db.sqlite3", None, pages) == [
        ["r0", "r1", "r2"],
        ["r3", "r4", "r5"],
        ["r6"],
        [],
    ]


def test_reports_of_a_file_written_before_search_existed_are_found(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)

    async def search(store: Store) -> list[str]:
        return _ids(await store.list_reports(10, filters=ReportFilter(text="KeyError number")))

    assert sorted(_with_store(path, None, search)) == ["r005", "r006", "r007"]


def _indexed(path: Path) -> list[str]:
    """The ids of the reports in the search index, sorted."""
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT id FROM reports WHERE rowid IN (SELECT rowid FROM reports_fts)"
        )
        return sorted(row[0] for row in rows)


def test_reports_are_indexed_after_their_window_but_always_found(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    retention = Retention(keep_first=1, keep_latest=2, **_NO_LIMITS)
    old = time.time() - 3600  # stored long before the sweep's delay

    async def storm(store: Store) -> list[str]:
        for i in range(6):  # one group: r0 is its first, r4 and r5 its latest
            await store.add_report(_report(f"r{i}", message=f"storm number{i}", created=old + i))
        return _ids(await store.list_reports(10))

    assert _with_store(path, retention, storm) == ["r5", "r4", "r0"]
    assert _indexed(path) == []  # r1, r2 and r3 came and went without ever being indexed
    _with_store(path, retention, lambda store: store.enforce_retention())  # the sweep
    assert _indexed(path) == ["r0", "r4", "r5"]

    async def recent(store: Store) -> list[list[str]]:
        await store.add_report(_report("n1", "KeyError", message="fresh arrival"))
        await store.enforce_retention()  # too recent for the sweep: not indexed yet
        found = [_indexed(path)]
        found.append(_ids(await store.list_reports(10, filters=ReportFilter(text="fresh"))))
        found.append(_ids(await store.list_reports(10, filters=ReportFilter(text="number"))))
        return found

    assert _with_store(path, retention, recent) == [
        ["r0", "r4", "r5"],
        ["n1"],  # the search indexed it first
        ["r5", "r4", "r0"],
    ]
    assert _indexed(path) == ["n1", "r0", "r4", "r5"]


def test_a_report_stored_after_the_newest_indexed_one_was_deleted_is_found(
    tmp_path: Path,
) -> None:
    async def replace(store: Store) -> list[list[str]]:
        await store.add_report(_report("a", message="alpha"))
        found = [_ids(await store.list_reports(10, filters=ReportFilter(text="alpha")))]
        await store.delete_report("a")  # the newest report, and indexed: its rowid is free
        await store.add_report(_report("b", "KeyError", message="beta"))
        for word in ("alpha", "beta"):
            found.append(_ids(await store.list_reports(10, filters=ReportFilter(text=word))))
        return found

    path = tmp_path / "db.sqlite3"
    assert _with_store(path, None, replace) == [["a"], [], ["b"]]
    assert _indexed(path) == ["b"]


def test_a_file_of_schema_version_4_opens_with_its_reports_found(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    shutil.copy(_FIXTURE, path)
    _with_store(path, None, lambda store: store.count_reports())
    # What the version-4 broker left: every report indexed as it was stored, a plain trigger.
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TABLE search_state")
        connection.execute("DROP TRIGGER reports_fts_delete")
        connection.execute(
            "CREATE TRIGGER reports_fts_delete AFTER DELETE ON reports BEGIN "
            "DELETE FROM reports_fts WHERE rowid = old.rowid; END"
        )
        connection.execute("PRAGMA user_version = 4")

    async def search(store: Store) -> list[list[str]]:
        found = [_ids(await store.list_reports(10, filters=ReportFilter(text="KeyError")))]
        await store.delete_report("r006")
        await store.add_report(_report("new", "KeyError", message="KeyError number 8"))
        found.append(_ids(await store.list_reports(10, filters=ReportFilter(text="KeyError"))))
        return found

    found = _with_store(path, None, search)
    assert [sorted(ids) for ids in found] == [["r005", "r006", "r007"], ["new", "r005", "r007"]]
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert _indexed(path) == sorted(_ids_of_all(path))


def _ids_of_all(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM reports")]


def test_the_sweep_leaves_at_most_max_pending_reports_to_a_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "MAX_PENDING", 2)
    path = tmp_path / "db.sqlite3"

    async def swept(store: Store) -> list[str]:
        for i in range(5):  # all just stored: too recent for the sweep's delay
            await store.add_report(_report(f"r{i}", f"Error{i}", created=time.time() + i))
        await store.enforce_retention()
        return []

    _with_store(path, Retention(**_NO_LIMITS), swept)
    assert _indexed(path) == ["r0", "r1", "r2"]  # the 2 newest wait for a search
