"""9. Idle breakpoint: what one breakpoint set in another function costs a request that never
reaches it.

A small WSGI view that makes a few dozen Python calls (as a view rendering a page does) is
called directly in a tight loop, as in the happy path (1): bare, wrapped in debugbroker's
``DebuggedApplication`` with no breakpoint, the same with one breakpoint armed in a function
the request never calls, and wrapped in Werkzeug's. The breakpoint is armed as the broker's
list would arm it (``agent/breakpoints.py``): on Python 3.12+ with ``sys.monitoring`` LINE
events on that function's code object alone, so the target is no change; on 3.10 and 3.11
with a ``sys.settrace`` call hook on the request's thread, which every call of the request
pays (reported, not judged).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.debug import DebuggedApplication as WerkzeugDebugger

from debugbroker import DebuggedApplication
from debugbroker.agent.breakpoints import USES_MONITORING, Breakpoints, trace_this_thread
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport
from debugbroker.protocol import BreakpointSpec, SetBreakpoints

from .common import Row, Settings, best_per_call, free_port, gc_paused

__all__ = ["run"]

# On 3.12+ an idle breakpoint must not show: at most this much more than no breakpoint per
# request (the noise of a shared machine: the larger of a time and a share of the bare time).
NOISE_NS = 50.0
NOISE_SHARE = 0.05
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def elsewhere(value: int) -> int:
    """The function that holds the breakpoint; no request calls it."""
    doubled = value * 2
    return doubled


def _item(number: int) -> str:
    return f"<li>{number}</li>"


def _render(count: int) -> bytes:
    return "".join([_item(number) for number in range(count)]).encode()


def view_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/html")])
    return [_render(20)]


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
    return None


def _driver(app: WSGIApp) -> Callable[[int], float]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
    }

    def drive(loops: int) -> float:
        clock = time.perf_counter
        started = clock()
        for _ in range(loops):
            body = app(environ, _start_response)
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
    """Rows: overhead per request over bare, without and with an idle breakpoint."""
    loops, repeats = (2_000, 2) if settings.quick else (50_000, 5)
    options = Options(broker_url=f"tcp://127.0.0.1:{free_port()}", secret="bench")
    armed = Breakpoints(evalex=True, started=time.time(), pause=lambda frame, origin: None)
    try:
        return _rows(settings, options, armed, loops, repeats)
    finally:
        armed.clear()
        trace_this_thread()  # 3.10/3.11: unhook this thread
        get_transport(options).close()


def _rows(
    settings: Settings, options: Options, armed: Breakpoints, loops: int, repeats: int
) -> list[Row]:
    ours_app = DebuggedApplication(view_app, options=options)
    werkzeug_app = WerkzeugDebugger(view_app, evalex=True)
    line = elsewhere.__code__.co_firstlineno + 2
    spec = BreakpointSpec(id="idle", file=elsewhere.__code__.co_filename, line=line)
    bare = ours = idle = werkzeug = float("inf")
    for _ in range(1 if settings.quick else 3):  # interleaved: drift hits all alike
        bare = min(bare, _measure(view_app, loops, repeats))
        ours = min(ours, _measure(ours_app, loops, repeats))
        armed.apply(SetBreakpoints(breakpoints=(spec,)))
        assert armed.states()[0].status == "armed", armed.states()
        idle = min(idle, _measure(ours_app, loops, repeats))
        armed.apply(SetBreakpoints())
        trace_this_thread()
        werkzeug = min(werkzeug, _measure(werkzeug_app, loops, repeats))
    how = "sys.monitoring" if USES_MONITORING else "sys.settrace call hook"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    judged = None if settings.quick or not USES_MONITORING else idle - ours <= _noise(bare)
    return [
        Row(
            "9 idle breakpoint",
            f"overhead per request, no breakpoint (bare {bare:.0f} ns, Python {version})",
            ours - bare,
            werkzeug - bare,
            "ns",
            "",
            None,
        ),
        Row(
            "9 idle breakpoint",
            f"overhead per request, one breakpoint in another function ({how})",
            idle - bare,
            werkzeug - bare,
            "ns",
            "no change on 3.12+" if USES_MONITORING else "reported (3.10/3.11)",
            judged,
            note=f"{idle - ours:+.0f} ns over no breakpoint",
        ),
    ]


def _noise(bare: float) -> float:
    return max(NOISE_NS, NOISE_SHARE * bare)
