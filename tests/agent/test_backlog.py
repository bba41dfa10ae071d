"""Errors raised back to back in pure Python: every report reaches a real broker.

Such a loop holds the GIL for 5 ms at a time, so the agent's I/O thread used to send one
report per turn and the queue shed most of them; the request thread now waits (at most a
few ms, GIL released) while the queue is over half full and the broker is there.
"""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from typing import Any

from debugbroker import DebuggedApplication
from debugbroker.agent.options import Options
from tests.conftest import Broker, wait_for

ERRORS = 1_500  # several times the agent's queue (256)


def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise RuntimeError(f"error {environ['n']}")


def stored(broker: Broker) -> int:
    path = broker.data_dir / "debugbroker.sqlite3"
    with (
        closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as connection,
        connection,
    ):
        # Every report counted in its group (retention keeps fewer full reports).
        (count,) = connection.execute("SELECT COALESCE(SUM(total), 0) FROM groups").fetchone()
    return int(count)


def test_errors_back_to_back_are_all_stored_none_shed(broker: Broker) -> None:
    options = Options(  # every error a full report: the storm policy off (test_repeats.py)
        broker_url=broker.zmq_url, secret=broker.secret, app_name="backlog", repeat_burst=0
    )
    app = DebuggedApplication(failing, options=options)
    assert app.transport.wait_connected(20)
    try:
        for n in range(ERRORS):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "n": n}
            environ["wsgi.errors"] = io.StringIO()
            b"".join(app(environ, lambda *args: lambda data: None))
        wait_for(lambda: stored(broker) == ERRORS, what=f"all {ERRORS} reports stored")
        assert app.transport.dropped_reports == 0
    finally:
        app.transport.close()
