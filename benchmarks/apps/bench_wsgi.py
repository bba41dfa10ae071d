"""The benchmark app: ``/`` answers, ``/boom`` fails with a few locals, ``/pid`` tells the worker.

``app`` is wrapped in debugbroker's middleware (gunicorn serves it); ``raw_app`` is what
``werkzeug_server.py`` wraps in Werkzeug's debugger. ``/stats`` tells this worker's agent
counters (the storm benchmark reads them from every worker).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.error_path import deep_app
from debugbroker import DebuggedApplication


def compute(total: int, count: int) -> float:
    label = f"ratio of {total}"
    numbers = list(range(20))
    return total / count + len(label) + len(numbers)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/boom":
        worker_pid = os.getpid()  # noqa: F841 - a local the console reads
        compute(10, 0)
    if path == "/deep":  # the 31-frame error with large locals of benchmark 2
        return deep_app(environ, start_response)
    if path == "/stats":
        body = json.dumps(_stats()).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


def _stats() -> dict[str, Any]:
    transport = app.transport
    return {
        "pid": os.getpid(),
        "rss": _rss(),
        "dropped_reports": transport.dropped_reports,
        "queued_reports": transport.queued_reports,
        "counted_repeats": transport.counted_repeats,  # the storm policy: counted, not captured
        "pending_repeats": transport.pending_repeats,  # of which not yet sent
        "held_frames": len(transport.registry),
        "held_reports": transport.registry.report_count,
        "held_bytes": transport.registry.held_bytes,
        "connected": transport.connected,
    }


app = DebuggedApplication(raw_app, evalex=True)
