"""One app process for the memory benchmark: raise N errors with a 1 MB local, print RSS.

``python memory_worker.py ours|werkzeug COUNT`` (the agent reads ``DEBUGBROKER_URL`` and
``DEBUGBROKER_SECRET``). Each error is a real WSGI call through the middleware; the output
is one JSON line: RSS before the first error, the peak while running, and RSS at the end.
"""

from __future__ import annotations

import gc
import io
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WARM_UP = 20


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def failing_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    blob = b"x" * 1_000_000  # noqa: F841 - the 1 MB local each error keeps alive if held
    raise RuntimeError(f"error {environ['n']} with a 1 MB local")


def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
    assert status.startswith("500"), status


def main() -> None:
    which, count = sys.argv[1], int(sys.argv[2])
    if which == "ours":
        from debugbroker import DebuggedApplication
        from debugbroker.agent.process import get_transport

        app: Any = DebuggedApplication(failing_app)
        if not get_transport(app.options).wait_connected(20):
            raise SystemExit("the agent did not connect to the broker")
    else:
        from werkzeug.debug import DebuggedApplication as WerkzeugDebugger

        app = WerkzeugDebugger(failing_app, evalex=True, pin_security=False)

    def one(n: int) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/fail",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_ACCEPT": "text/html",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": io.StringIO(),
            "n": n,
        }
        b"".join(app(environ, start_response))

    gc.collect()
    before = peak = rss()  # the app and its agent started, no error yet
    for n in range(WARM_UP):  # imports and caches the first errors fill
        one(n)
    started = time.monotonic()
    for n in range(count):
        one(n)
        if n % 100 == 0:
            peak = max(peak, rss())
    elapsed = time.monotonic() - started
    gc.collect()
    after = rss()
    result = {"before": before, "peak": max(peak, after), "after": after, "seconds": elapsed}
    if which == "ours":
        transport = get_transport(app.options)
        deadline = time.monotonic() + 60
        while transport.queued_reports and time.monotonic() < deadline:
            time.sleep(0.05)  # let the queue drain before the process says what it sent
        result["held_frames"] = len(transport.registry)
        result["dropped_reports"] = transport.dropped_reports
        result["queued_reports"] = transport.queued_reports
    else:
        result["held_frames"] = len(app.frames)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
