"""A WSGI app for lifecycle tests: errors, the agent's own counters, and a way to exit.

``APP_QUEUE_SIZE`` and ``APP_HELD_REPORTS`` shrink the agent's caps so tests can overflow them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from debugbroker import DebuggedApplication, Options

options = Options.from_environment(
    app_name="lifecycle",
    queue_size=int(os.environ.get("APP_QUEUE_SIZE", "256")),
    held_reports=int(os.environ.get("APP_HELD_REPORTS", "64")),
)


def checkout(cart: list[int], coupon: str) -> float:
    """Fails for every coupon: a division by zero with locals to read."""
    discount = 0
    return sum(cart) / discount


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/boom":
        worker_pid = os.getpid()  # noqa: F841 - a local the console reads
        checkout([1, 2, 3], "HALF")
    if path == "/stats":
        transport = app.transport
        stats = {
            "pid": os.getpid(),
            "connected": transport.connected,
            "queued_reports": transport.queued_reports,
            "dropped_reports": transport.dropped_reports,
            "held_reports": len(transport.registry.held_reports()),
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(stats).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


app = DebuggedApplication(raw_app, options=options)
