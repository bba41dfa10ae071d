"""1. Happy path: what the middleware adds to a request that does not fail.

A trivial WSGI app is called directly, its body iterated and closed, as a server would, in
a tight loop: bare, wrapped in debugbroker's ``DebuggedApplication`` and wrapped in
Werkzeug's. The per-request time is the best of several repeats (the least disturbed run on
a shared machine); the overhead is the wrapped time minus the bare time. Two bodies: a list
(what most small apps and many frameworks' error-free paths return) and a generator (a
streamed body, which the middleware must wrap to catch errors while it is iterated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.debug import DebuggedApplication as WerkzeugDebugger

from debugbroker import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport

from .common import Row, Settings, best_per_call, free_port, gc_paused

__all__ = ["run"]

TARGET_NS = 300.0
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def list_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def generator_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _body()


def _body() -> Iterator[bytes]:
    yield b"ok"


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
    return None


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
    }


def _driver(app: WSGIApp) -> Callable[[int], float]:
    environ = _environ()

    def drive(loops: int) -> float:
        start_response = _start_response
        clock = time.perf_counter
        started = clock()
        for _ in range(loops):
            body = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - started

    return drive


def _measure(app: WSGIApp, loops: int, repeats: int) -> float:
    drive = _driver(app)
    drive(min(loops, 2_000))  # warm up (starts our agent on its first request)
    with gc_paused():
        return best_per_call(drive, loops, repeats) * 1e9


def run(settings: Settings) -> list[Row]:
    """Rows: overhead per request over bare, ours and Werkzeug's, for both body kinds."""
    loops, repeats = (2_000, 2) if settings.quick else (100_000, 5)
    options = Options(broker_url=f"tcp://127.0.0.1:{free_port()}", secret="bench")
    rows = []
    try:
        rows = _rows(settings, options, loops, repeats)
    finally:  # the agent started on the first request: later benchmarks must not report to it
        get_transport(options).close()
    return rows


def _rows(settings: Settings, options: Options, loops: int, repeats: int) -> list[Row]:
    rows = []
    for kind, app in (("list body", list_app), ("generator body", generator_app)):
        # Interleave the three so that drift on a shared machine hits them alike.
        ours_app = DebuggedApplication(app, options=options)
        werkzeug_app = WerkzeugDebugger(app, evalex=True)
        bare = ours = werkzeug = float("inf")
        for _ in range(1 if settings.quick else 2):
            bare = min(bare, _measure(app, loops, repeats))
            ours = min(ours, _measure(ours_app, loops, repeats))
            werkzeug = min(werkzeug, _measure(werkzeug_app, loops, repeats))
        rows.append(
            Row(
                "1 happy path",
                f"overhead per request, {kind} (bare {bare:.0f} ns)",
                ours - bare,
                werkzeug - bare,
                "ns",
                f"<= {TARGET_NS:.0f} ns",
                None if settings.quick else (ours - bare) <= TARGET_NS,
            )
        )
    return rows
