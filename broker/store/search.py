"""Full-text search over reports: an SQLite FTS5 index of each stored report's message,
traceback text, locals' text and request URL.

The index (``reports_fts``) holds one row per stored report under the report row's rowid,
written in the report's own transaction, and a trigger drops it with the report (retention,
deletes). A query is the user's words, each matched as a word or a word's beginning (so
``Val`` finds ``ValueError``), all of them somewhere in the report; FTS5 operators in the
text are taken literally. Plain functions of a connection (blocking: the store's thread).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["create_search_index", "index_reports", "match_query", "search_text"]

_MAX_LOCALS_TEXT = 20_000  # characters of a report's locals that are indexed
_MAX_WORDS = 32

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
    for rowid, body in rows:
        try:
            report = json.loads(body)
        except ValueError:
            continue
        if isinstance(report, dict):
            connection.execute(
                "INSERT INTO reports_fts (rowid, message, traceback, locals, url) "
                "VALUES (?, ?, ?, ?, ?)",
                (rowid, *search_text(report)),
            )
    connection.commit()


def index_reports(
    connection: sqlite3.Connection, reports: Iterable[tuple[int, dict[str, Any]]]
) -> None:
    """Index reports just inserted, as ``(rowid, report)`` (in the caller's transaction)."""
    connection.executemany(
        "INSERT INTO reports_fts (rowid, message, traceback, locals, url) VALUES (?, ?, ?, ?, ?)",
        [(rowid, *search_text(report)) for rowid, report in reports],
    )


def search_text(report: dict[str, Any]) -> tuple[str, str, str, str]:
    """(message, traceback, locals, url) of a report's wire dict, as indexed."""
    request = report.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    return (
        str(report.get("message", "")),
        str(report.get("text", "")),
        _locals_text(report.get("exceptions")),
        url if isinstance(url, str) else "",
    )


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
    """An FTS5 query for the user's words: each as a quoted prefix, all required."""
    words = [word for word in _words(text)][:_MAX_WORDS]
    return " AND ".join('"' + word.replace('"', '""') + '"*' for word in words)


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
