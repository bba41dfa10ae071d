"""The store's file: its tables, the pragmas it is opened with, and what opening repairs.

WAL mode keeps readers and the writer apart and makes a report durable once its commit
returns (``synchronous=NORMAL``: a killed broker loses no commit; a power cut may lose the
last ones), so a broker that is killed and restarted loses nothing it had acknowledged
(``protocol.Stored``). SQLite's automatic checkpoint is off: the store's thread checkpoints
instead (see ``thread.py``). Opening the file also migrates what older brokers stored
(fingerprints) and fails the evals a broker stop cut short.

The file's schema version is ``PRAGMA user_version``: ``SCHEMA_VERSION`` is the one this
broker writes, and ``_MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1`` (a new
table or column is a new migration and ``SCHEMA_VERSION`` one higher). A file of a newer
version, or one that is not a SQLite database, is refused with a ``StoreError`` that says
what to do, never opened half-way.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from debugbroker.broker.store.breakpoints import create_breakpoints_table
from debugbroker.broker.store.grouping import fingerprint
from debugbroker.broker.store.groups import create_group_tables
from debugbroker.broker.store.search import (
    create_search_index,
    defer_search_index,
    reindex_unspaced_scripts,
)

__all__ = ["SCHEMA_VERSION", "StoreError", "connect", "schema_version"]


class StoreError(Exception):
    """The store cannot be opened; the message says why and what to do (no traceback)."""


# The page cache (per connection; SQLite's default is 2 MB): a batch of reports in a storm
# changes a few pages per report (its row, its id's, time's and group's index entries), and
# a batch's changed pages spill to the WAL before the commit once they outgrow the cache.
_CACHE_KIB = 16 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    created REAL NOT NULL,
    type_name TEXT NOT NULL,
    message TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    url TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_created ON reports (created DESC);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    python TEXT NOT NULL,
    started REAL NOT NULL,
    evalex INTEGER NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    client TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    frame_index INTEGER,
    code TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    author TEXT NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_entries_target ON console_entries (target, id);
CREATE TABLE IF NOT EXISTS shares (
    share_id TEXT PRIMARY KEY,
    report_id TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database file; blocking, so only on the store's thread.

    ``StoreError`` when the data dir cannot be written, the file is not a SQLite database,
    or its schema is newer than this broker knows.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Reports hold the app's locals: only this user may read them (SQLite gives
        # its -wal and -shm files the mode of the database file).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as error:
        raise StoreError(unwritable_message(path.parent, error)) from None
    connection = sqlite3.connect(path, check_same_thread=False)
    try:
        _open(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def unwritable_message(data_dir: Path, error: OSError) -> str:
    """What to say when the data dir cannot be written."""
    reason = error.strerror or str(error)
    return (
        f"the data dir {data_dir} cannot be written ({reason}). Give this user write access "
        "to it, or pick another data dir with --data DIR."
    )


def _open(connection: sqlite3.Connection, path: Path) -> None:
    try:
        version = schema_version(connection)
        connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as error:
        raise StoreError(
            f"{path} is not a debugbroker database ({error}). Move it aside "
            f"(mv {path} {path}.broken) and start again for a new, empty store, "
            "or pick another data dir with --data DIR."
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer debugbroker (schema version {version}; this "
            f"broker knows versions up to {SCHEMA_VERSION}). Upgrade debugbroker, or move "
            f"the file aside (mv {path} {path}.newer) or pick another data dir with --data DIR."
        )
    try:
        connection.execute("PRAGMA synchronous=NORMAL")
        # Deleted reports' bytes are zeroed where that costs no extra write (Debian's SQLite
        # zeroes every freed page by default); freed pages go back to the file system
        # (``groups.give_space_back``).
        connection.execute("PRAGMA secure_delete=FAST")
        connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        connection.execute("PRAGMA wal_autocheckpoint=0")  # see StoreThread._checkpoint_if_grown
        connection.create_function("debugbroker_url_path", 1, _url_path, deterministic=True)
        for migrate in _MIGRATIONS[version:]:
            migrate(connection)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute(  # evals cut short by a broker stop never get their answer
            "UPDATE console_entries SET state = 'failed', body = ? WHERE state = 'running'",
            (json.dumps({"failure": "the broker stopped while this ran"}),),
        )
        connection.commit()
    except sqlite3.OperationalError as error:  # a full disk, a read-only file
        raise StoreError(
            f"{path} cannot be opened for writing ({error}). Free space on its disk or give "
            "this user write access, or pick another data dir with --data DIR."
        ) from None


def schema_version(connection: sqlite3.Connection) -> int:
    """The file's ``PRAGMA user_version`` (0: new, or written before versions existed)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _version_1(connection: sqlite3.Connection) -> None:
    """The tables, and fingerprints for reports stored before they existed."""
    connection.executescript(_SCHEMA)
    _add_fingerprints(connection)


def _version_2(connection: sqlite3.Connection) -> None:
    """Groups with their counts and states (see ``groups``), the search index (``search``),
    and a file that gives freed space back (``auto_vacuum=INCREMENTAL``)."""
    create_group_tables(connection)
    create_search_index(connection)  # after create_group_tables' VACUUM: rows by rowid


def _version_3(connection: sqlite3.Connection) -> None:
    """No index on the fingerprint alone: ``(fingerprint, created)`` serves its lookups,
    and each report stored or deleted updated both."""
    connection.execute("DROP INDEX IF EXISTS reports_fingerprint")


def _version_4(connection: sqlite3.Connection) -> None:
    """Breakpoints set from the dashboard (``breakpoints``), kept across broker restarts."""
    create_breakpoints_table(connection)


def _deferred_search_index(connection: sqlite3.Connection) -> None:
    """Reports are indexed for search after they are stored, not as they are (``search``):
    the index's mark, and a delete trigger that skips the reports not indexed yet."""
    defer_search_index(connection)


def _unspaced_scripts_indexed(connection: sqlite3.Connection) -> None:
    """Chinese, Japanese and Korean characters are indexed as words of their own
    (``search``): the indexed reports that have such text are indexed again."""
    reindex_unspaced_scripts(connection)


# _MIGRATIONS[n] takes a file from schema version n to n + 1; each must also be safe on a
# file that already has what it adds (version 0 covers files written before versions).
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _version_1,
    _version_2,
    _version_3,
    _version_4,
    _deferred_search_index,  # version 5
    _unspaced_scripts_indexed,  # version 6
]
SCHEMA_VERSION = len(_MIGRATIONS)


def _url_path(url: object) -> str:
    """``debugbroker_url_path(url)`` in SQL: the path of a request URL (the path filter)."""
    return urlsplit(url).path if isinstance(url, str) else ""


def _add_fingerprints(connection: sqlite3.Connection) -> None:
    """Give reports stored before fingerprints existed their column and value."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(reports)")}
    if "fingerprint" not in columns:
        connection.execute("ALTER TABLE reports ADD COLUMN fingerprint TEXT")
    connection.execute("CREATE INDEX IF NOT EXISTS reports_fingerprint ON reports (fingerprint)")
    rows = connection.execute("SELECT id, body FROM reports WHERE fingerprint IS NULL").fetchall()
    for report_id, body in rows:
        try:
            value = fingerprint(json.loads(body))
        except ValueError:
            value = ""
        connection.execute("UPDATE reports SET fingerprint = ? WHERE id = ?", (value, report_id))
