"""2. Error in the request thread: from the exception to the finished 500 response.

The app recurses until the traceback has 31 frames, each with large locals (a 1,000-item
list, a 100-key dict, a 10 KB string), and raises. Each request is timed on its own, from
the call into the middleware until the 500 body is joined; the time the app itself needs to
recurse and raise (measured the same way, unwrapped) is subtracted. debugbroker runs with a
real broker connected and its queue drained between requests (outside the timing), so the
agent's I/O thread works as it would in production; Werkzeug renders its debugger page.
The storm policy is off here (``repeat_burst=0``): every request repeats one error, and each
must be a full capture, which is what this benchmark measures (docs/limits.md).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.debug import DebuggedApplication as WerkzeugDebugger

from debugbroker import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport

from .common import Row, Settings, gc_paused, median, start_broker, wait_for

__all__ = ["run", "deep_app", "FRAMES"]

FRAMES = 31
# Distinct objects for every frame (made once, outside the timing), so nothing can be
# shared between frames: each frame's locals cost what they would in a real app.
LOCALS = [
    (
        list(range(depth, depth + 1_000)),
        {f"key{i}": i * depth for i in range(100)},
        chr(ord("a") + depth % 26) * 10_240,
    )
    for depth in range(FRAMES + 1)
]


def _recurse(depth: int) -> int:
    items, table, text = LOCALS[depth]  # the large locals every frame shows
    if depth <= 1:
        raise ValueError(f"failed at the bottom of {FRAMES} frames")
    return _recurse(depth - 1) + 1


def deep_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Fails with a traceback of ``FRAMES`` frames under the middleware (this one included)."""
    items, table, text = LOCALS[FRAMES]  # noqa: F841
    _recurse(FRAMES - 2)  # + this frame + the middleware's frame = FRAMES
    return [b"unreachable"]


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/deep",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
    if not status.startswith("500"):
        raise AssertionError(f"expected a 500, got {status}")


def _one_request(app: Callable[..., Iterable[bytes]]) -> tuple[float, float, int]:
    """Seconds until the 500's body is in the server's hands, until the request is done
    (the body iterated and closed, as a server does), and the body's size."""
    environ = _environ()
    environ["wsgi.errors"] = io.StringIO()
    started = time.perf_counter()
    answer = app(environ, _start_response)
    chunks = iter(answer)
    first = next(chunks)
    answered = time.perf_counter()
    body = first + b"".join(chunks)
    close = getattr(answer, "close", None)
    if close is not None:
        close()
    return answered - started, time.perf_counter() - started, len(body)


def _bare_raise() -> float:
    started = time.perf_counter()
    try:
        deep_app(_environ(), _start_response)
    except ValueError:
        pass
    return time.perf_counter() - started


def run(settings: Settings) -> list[Row]:
    """Rows: median exception-to-500 time, ours and Werkzeug's, and our page size."""
    requests = 5 if settings.quick else 200
    broker = start_broker(settings, "error-path")
    try:
        options = Options(
            broker_url=broker.zmq_url, secret=broker.secret, app_name="bench", repeat_burst=0
        )  # every request a full capture: the storm policy off
        ours = DebuggedApplication(deep_app, options=options)
        transport = get_transport(options)
        if not transport.wait_connected(20):
            raise RuntimeError("the agent did not connect to the broker")
        werkzeug = WerkzeugDebugger(deep_app, evalex=True, pin_security=False)
        ours_times: list[float] = []
        werkzeug_times: list[float] = []
        ours_done: list[float] = []
        werkzeug_done: list[float] = []
        bare_times: list[float] = []
        ours_size = werkzeug_size = 0
        for _ in range(2):  # warm up: imports, linecache, the first report's hello
            _one_request(ours)
            _one_request(werkzeug)
        for _ in range(requests):
            with gc_paused():
                bare_times.append(_bare_raise())
                answered, done, ours_size = _one_request(ours)
                ours_times.append(answered)
                ours_done.append(done)
                answered, done, werkzeug_size = _one_request(werkzeug)
                werkzeug_times.append(answered)
                werkzeug_done.append(done)
            wait_for(lambda: transport.queued_reports == 0, 20, "the report queue to drain")
        reports = broker.reports()
        if not reports or reports[0]["type_name"] != "ValueError":
            raise RuntimeError("the broker did not store the error's report")
        report = broker.report(reports[0]["id"])
        frames = len(report["exceptions"][-1]["frames"])
        if frames != FRAMES:
            raise RuntimeError(f"the report has {frames} frames, expected {FRAMES}")
        werkzeug.frames.clear()  # Werkzeug keeps every frame of every request; let them go
    finally:
        get_transport(options).close()
        broker.stop()
    bare = median(bare_times)
    ours_ms = (median(ours_times) - bare) * 1e3
    werkzeug_ms = (median(werkzeug_times) - bare) * 1e3
    ours_done_ms = (median(ours_done) - bare) * 1e3
    werkzeug_done_ms = (median(werkzeug_done) - bare) * 1e3
    met = None if settings.quick else ours_ms <= werkzeug_ms / 6
    return [
        Row(
            "2 error -> 500",
            f"median to the 500, {FRAMES} frames with large locals",
            ours_ms,
            werkzeug_ms,
            "ms",
            "<= 1/6 of Werkzeug",
            met,
            f"the answer is in the server's hands (the body handed over); raising alone "
            f"{bare * 1e3:.2f} ms, subtracted; 500 page: ours {ours_size} B, "
            f"Werkzeug {werkzeug_size} B",
        ),
        Row(
            "2 error -> 500",
            "median whole request, capture included",
            ours_done_ms,
            werkzeug_done_ms,
            "ms",
            "<= 1/6 of Werkzeug",
            None if settings.quick else ours_done_ms <= werkzeug_done_ms / 6,  # issue 20
            "until the server has iterated and closed the body: debugbroker captures the "
            "report (all locals, held frames) after handing over the 500; the worker is "
            "busy this long",
        ),
    ]
