"""The store's file: its tables, the pragmas it is opened with, and what opening repairs.

WAL mode keeps readers and the writer apart and makes a report durable once its commit
returns, so a broker that is killed and restarted loses nothing it had acknowledged.
SQLite's automatic checkpoint is off: the store's thread checkpoints instead (see
``store_thread``). Opening the file also migrates what older brokers stored (fingerprints)
and fails the evals a broker stop cut short.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from debugbroker.broker.store.grouping import fingerprint

__all__ = ["connect"]

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
    """Open (creating if needed) the database file; blocking, so only on the store's thread."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Reports hold the app's locals: only this user may read them (SQLite gives
    # its -wal and -shm files the mode of the database file).
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")  # see StoreThread._checkpoint_if_grown
    connection.executescript(_SCHEMA)
    connection.create_function("debugbroker_url_path", 1, _url_path, deterministic=True)
    _add_fingerprints(connection)
    connection.execute(  # evals cut short by a broker stop never get their answer
        "UPDATE console_entries SET state = 'failed', body = ? WHERE state = 'running'",
        (json.dumps({"failure": "the broker stopped while this ran"}),),
    )
    connection.commit()
    return connection


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
