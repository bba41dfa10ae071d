"""Full-text search over reports: an SQLite FTS5 index of each stored report's message,
traceback text, locals' text and request URL.

The index (``reports_fts``) holds one row per stored report under the report row's rowid,
and a trigger drops it with the report (retention, deletes). A report is not indexed when
it is stored but later (``index_pending``): every report with a rowid up to
``search_state.indexed_through`` is indexed, the ones above it not yet. In a storm of many
errors each report sits in its group's latest window for a few seconds and is deleted
unread; indexing it and deleting it from the index again was most of what storing it cost.
So the store's sweep indexes the reports stored more than ``INDEX_DELAY_SECONDS`` ago that
are still there (and the oldest beyond the newest ``MAX_PENDING``, which bounds what a
search may have to index), and a search first indexes every report not yet indexed (the
tail since the last sweep: the search always sees every stored report). New reports get rowids above
``indexed_through`` (``next_rowid``), also when the newest reports were deleted, or the
rowid of a report leaving its group's window that was not indexed yet (``groups.window_plan``:
so rowids are not in order of time).

A query is the user's words, each matched as a word or a word's beginning (so ``Val``
finds ``ValueError``), all of them somewhere in the report; FTS5 operators in the text are
taken literally. Chinese, Japanese and Korean text has no spaces between words, so the
unicode61 tokenizer would make a whole run of it one word, found only from its start
(``見つかりません`` not in ``ユーザーが見つかりません``): each of those characters is indexed
as a word of its own, and a query's run of them is a phrase of those characters, found
anywhere. Plain functions of a connection (blocking: the store's thread).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "INDEX_DELAY_SECONDS",
    "MAX_PENDING",
    "create_search_index",
    "defer_search_index",
    "index_pending",
    "indexed_through",
    "match_query",
    "next_rowid",
    "reindex_unspaced_scripts",
    "search_text",
]

log = logging.getLogger("debugbroker")

# The sweep indexes the reports stored at least this long ago (still stored: not deleted by
# their group's window), and the oldest beyond the newest ``MAX_PENDING``; a search indexes
# the rest first. A storm of 1,000 errors at 1,000 reports/s keeps each report 10 s.
INDEX_DELAY_SECONDS = 60.0
MAX_PENDING = 20_000
_MAX_LOCALS_TEXT = 20_000  # characters of a report's locals that are indexed
_MAX_WORDS = 32
_REINDEX_CHUNK = 500  # reports read at once by a migration that indexes some again
# Scripts written without spaces between words (CJK ideographs and their extensions,
# compatibility ideographs, kana, half-width kana, bopomofo, Hangul syllables): each of their
# characters is indexed and searched as a word of its own.
_UNSPACED_RANGES = (
    (0x3040, 0x30FF),
    (0x3100, 0x312F),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
    (0x20000, 0x3134F),
)
_UNSPACED = re.compile(
    "([" + "".join(f"{chr(first)}-{chr(last)}" for first, last in _UNSPACED_RANGES) + "])"
)

# A report's row of the index: (rowid, *search_text), see ``_texts``.
_INSERT = "INSERT INTO reports_fts (rowid, message, traceback, locals, url) VALUES (?, ?, ?, ?, ?)"
_INDEX = """
CREATE VIRTUAL TABLE IF NOT EXISTS reports_fts USING fts5(
    message, traceback, locals, url, tokenize = 'unicode61'
);
CREATE TRIGGER IF NOT EXISTS reports_fts_delete AFTER DELETE ON reports BEGIN
    DELETE FROM reports_fts WHERE rowid = old.rowid;
END;
"""


def create_search_index(connection: sqlite3.Connection) -> None:
    """The index and its trigger, filled with the reports already stored (a migration)."""
    connection.executescript(_INDEX)
    indexed = connection.execute("SELECT COUNT(*) FROM reports_fts").fetchone()[0]
    if indexed:
        return
    rows = connection.execute("SELECT rowid, body FROM reports").fetchall()
    connection.executemany(
        _INSERT,
        _texts(rows),
    )
    connection.commit()


def defer_search_index(connection: sqlite3.Connection) -> None:
    """The index's mark (``search_state``: every report up to it is indexed, as all of a
    file's reports were until now) and a delete trigger that skips the reports above it."""
    connection.execute("CREATE TABLE IF NOT EXISTS search_state (indexed_through INTEGER NOT NULL)")
    if connection.execute("SELECT COUNT(*) FROM search_state").fetchone()[0] == 0:
        connection.execute(
            "INSERT INTO search_state (indexed_through) SELECT IFNULL(MAX(rowid), 0) FROM reports"
        )
    connection.execute("DROP TRIGGER IF EXISTS reports_fts_delete")
    connection.execute(
        "CREATE TRIGGER reports_fts_delete AFTER DELETE ON reports "
        "WHEN old.rowid <= (SELECT indexed_through FROM search_state) BEGIN "
        "DELETE FROM reports_fts WHERE rowid = old.rowid; END"
    )


def reindex_unspaced_scripts(connection: sqlite3.Connection) -> int:
    """Index again, as this code cuts their text, the indexed reports whose body holds a
    character of an unspaced script (``_UNSPACED``) or a JSON escape (an older body may
    hold such a character escaped): a migration. How many were indexed again."""
    found = connection.execute(  # read one by one: not every body in memory at once
        "SELECT rowid, body FROM reports WHERE rowid <= (SELECT indexed_through FROM search_state)"
    )
    # Python's regular expressions find them 15 times faster than SQLite's GLOB.
    rowids = [
        rowid
        for rowid, body in found
        if isinstance(body, str) and (_UNSPACED.search(body) or "\\u" in body)
    ]
    if rowids:
        log.info(
            "indexing %d reports again for search (Chinese, Japanese and Korean words), "
            "once after this upgrade",
            len(rowids),
        )
    for start in range(0, len(rowids), _REINDEX_CHUNK):
        chunk = rowids[start : start + _REINDEX_CHUNK]
        marks = ", ".join("?" * len(chunk))
        connection.execute(f"DELETE FROM reports_fts WHERE rowid IN ({marks})", chunk)
        rows = connection.execute(
            f"SELECT rowid, body FROM reports WHERE rowid IN ({marks})", chunk
        )
        connection.executemany(_INSERT, _texts(rows))
    return len(rowids)


def indexed_through(connection: sqlite3.Connection) -> int:
    """The index's mark: every report with a rowid up to it is indexed, none above it."""
    return int(connection.execute("SELECT indexed_through FROM search_state").fetchone()[0])


def next_rowid(connection: sqlite3.Connection) -> int:
    """The rowid for the next report: above every stored report's and the index's mark."""
    row = connection.execute(
        "SELECT MAX(IFNULL((SELECT MAX(rowid) FROM reports), 0), "
        "(SELECT indexed_through FROM search_state))"
    ).fetchone()
    return int(row[0]) + 1


def index_pending(connection: sqlite3.Connection, stored_before: float | None = None) -> int:
    """Index the stored reports not yet indexed: all of them (before a search), or (the
    sweep) those up to the highest rowid of the newest ``MAX_PENDING`` created before
    ``stored_before`` and those older than the newest ``MAX_PENDING``. In the caller's
    transaction; how many were indexed."""
    (indexed_through,) = connection.execute("SELECT indexed_through FROM search_state").fetchone()
    if stored_before is None:
        marks = [connection.execute("SELECT MAX(rowid) FROM reports").fetchone()]
    else:
        marks = [
            connection.execute(  # the created index alone: rowids are not in time order
                "SELECT MAX(rowid) FROM (SELECT rowid FROM reports INDEXED BY reports_created "
                "WHERE created < ? ORDER BY created DESC LIMIT ?)",
                (stored_before, MAX_PENDING),
            ).fetchone(),
            connection.execute(
                "SELECT rowid FROM reports ORDER BY created DESC LIMIT 1 OFFSET ?",
                (MAX_PENDING,),
            ).fetchone(),
        ]
    through = max((found[0] for found in marks if found and found[0] is not None), default=None)
    if through is None or through <= indexed_through:
        return 0
    rows = connection.execute(  # read as they are indexed: not all the bodies at once
        "SELECT rowid, body FROM reports WHERE rowid > ? AND rowid <= ?",
        (indexed_through, through),
    )
    indexed = connection.executemany(
        _INSERT,
        _texts(rows),
    ).rowcount
    connection.execute("UPDATE search_state SET indexed_through = ?", (through,))
    return indexed


def _texts(rows: Iterable[tuple[int, str]]) -> Iterator[tuple[Any, ...]]:
    """``(rowid, *search_text)`` of report rows (a body that is no report is not indexed)."""
    for rowid, body in rows:
        try:
            report = json.loads(body)
        except ValueError:
            continue
        if isinstance(report, dict):
            yield (rowid, *search_text(report))


def search_text(report: dict[str, Any]) -> tuple[str, str, str, str]:
    """(message, traceback, locals, url) of a report's wire dict, as indexed."""
    request = report.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    return (
        _spread(str(report.get("message", ""))),
        _spread(str(report.get("text", ""))),
        _spread(_locals_text(report.get("exceptions"))),
        _spread(url if isinstance(url, str) else ""),
    )


def _spread(text: str) -> str:
    """``text`` with each character of an unspaced script (``_UNSPACED``) a word of its own."""
    return text if text.isascii() else _UNSPACED.sub(r" \1 ", text)


def _locals_text(exceptions: object) -> str:
    """Every string of the locals (names, and their values' trees' texts), depth first, in
    order, joined by spaces: its first ``_MAX_LOCALS_TEXT`` characters."""
    pieces: list[str] = []
    size = 0
    stack: list[object] = []
    for variables in _frame_locals(exceptions):
        stack.extend(reversed(variables))
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                for key in ("name", "text"):
                    text = item.get(key)
                    if isinstance(text, str) and text:
                        pieces.append(text)
                        size += len(text) + 1
                children = item.get("children")
                if isinstance(children, (list, tuple)) and children:
                    stack.extend(reversed(children))
                value = item.get("value")
                if value is not None:
                    stack.append(value)
            elif isinstance(item, str):
                pieces.append(item)
                size += len(item) + 1
            elif isinstance(item, (list, tuple)):
                stack.extend(reversed(item))
            if size > _MAX_LOCALS_TEXT:
                return " ".join(pieces)[:_MAX_LOCALS_TEXT]
    return " ".join(pieces)


def _frame_locals(exceptions: object) -> Iterator[list[Any] | tuple[Any, ...]]:
    """Each frame's locals (a list of variable dicts), exception by exception."""
    if not isinstance(exceptions, (list, tuple)):
        return
    for info in exceptions:
        if not isinstance(info, dict):
            continue
        for frame in info.get("frames") or ():
            if isinstance(frame, dict):
                variables = frame.get("locals")
                if isinstance(variables, (list, tuple)):
                    yield variables
        yield from _frame_locals(info.get("exceptions"))


def match_query(text: str) -> str:
    """An FTS5 query for the user's words: each as a quoted prefix, all required (a word
    with characters of an unspaced script: the phrase of its pieces, as they are indexed)."""
    words = [word for word in _words(text)][:_MAX_WORDS]
    return " AND ".join('"' + " ".join(_spread(word).split()) + '"*' for word in words)


def _words(text: str) -> Iterator[str]:
    """The words of ``text`` as unicode61 cuts them (letters and digits; others separate)."""
    word: list[str] = []
    for character in text:
        if character.isalnum():
            word.append(character)
        elif word:
            yield "".join(word)
            word = []
    if word:
        yield "".join(word)
