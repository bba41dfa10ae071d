"""7. Handled and logged errors: ``logger.exception`` through ``LoggingHandler`` in one process.

A view-like function 10 frames deep catches an error and logs it. The cost of one logged
capture (the handler's report, frames held, queued) is timed per call, with the same
raise-catch-log through a ``NullHandler`` subtracted, and set against the middleware's
capture of the same error (``DebuggedApplication`` around an app raising at the same depth,
the whole request, with the bare raise subtracted). Then the process logs errors on a
schedule of 1,000 per second for a few seconds, with a real broker connected and again with no
broker reachable. A call slower than 1 ms makes the loop fall behind its schedule (it then runs
back to back), so the rate really offered is measured from the wall clock and has its own
verdict. Whether a caller waits on the broker is read from the agent itself
(``Transport.backlog_waits``: the only place an app thread waits, at most 5 ms, while a
connected broker drains a half-full queue), beside the per-call p99 and max; and the reports
stored + shed + queued must equal those logged.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from debugbroker import DebuggedApplication, LoggingHandler
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.transport.transport import Transport

from .common import Row, Settings, gc_paused, median, percentile, start_broker, stored_reports
from .common import wait_for as wait_until

__all__ = ["run"]

DEPTH = 10
RATE = 1_000  # logged errors per second


def _fail(depth: int) -> int:
    order = {"id": depth, "items": list(range(20))}
    if depth <= 1:
        raise KeyError(f"missing price for item {len(order['items'])}")
    return _fail(depth - 1) + 1


def _handled(logger: logging.Logger) -> None:
    try:
        _fail(DEPTH - 2)  # + this frame + its caller = DEPTH
    except KeyError:
        logger.exception("pricing failed")


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    _fail(DEPTH - 3)  # + this frame + the middleware's + its caller = DEPTH
    return [b"unreachable"]


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/price",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
    pass


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _request(app: DebuggedApplication) -> None:
    answer = app(_environ(), _start_response)
    b"".join(answer)
    close = getattr(answer, "close", None)
    if close is not None:
        close()


def _bare_request() -> None:
    try:
        _app(_environ(), _start_response)
    except KeyError:
        pass


def _paced(logger: logging.Logger, seconds: float) -> tuple[list[float], float]:
    """Log errors on a schedule of ``RATE`` per second for ``seconds``: each call's duration,
    and the wall-clock seconds all of them took (longer than ``seconds`` when calls are slower
    than the schedule)."""
    count = int(RATE * seconds)
    durations: list[float] = []
    start = time.perf_counter()
    for index in range(count):
        slot = start + index / RATE
        delay = slot - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing, not synchronisation
        durations.append(_timed(lambda: _handled(logger)))
    return durations, time.perf_counter() - start


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"benchmarks.handled.{name}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    return logger


def run(settings: Settings) -> list[Row]:
    """Rows: cost per logged capture against the middleware's; paced 1,000/s, up and down."""
    calls = 20 if settings.quick else 500
    seconds = 0.2 if settings.quick else 5.0
    broker = start_broker(settings, "handled-errors")
    # The middleware's side repeats one error: each must be a full capture (the storm
    # policy off; ``LoggingHandler`` captures every logged error anyway).
    options = Options(
        broker_url=broker.zmq_url, secret=broker.secret, app_name="bench", repeat_burst=0
    )
    transport: Transport = get_transport(options)
    try:
        if not transport.wait_connected(20):
            raise RuntimeError("the agent did not connect to the broker")
        if current_transport() is not transport:  # the handler reports through the first
            raise RuntimeError("an earlier benchmark left its agent running in this process")
        reporting = _logger("reporting", LoggingHandler())
        bare = _logger("bare", logging.NullHandler())
        middleware = DebuggedApplication(_app, options=options)
        for _ in range(3):  # warm up: linecache, the first report
            _handled(reporting)
            _request(middleware)
        logged: list[float] = []
        bare_logged: list[float] = []
        requests: list[float] = []
        bare_requests: list[float] = []
        for _ in range(calls):
            with gc_paused():
                bare_logged.append(_timed(lambda: _handled(bare)))
                logged.append(_timed(lambda: _handled(reporting)))
                bare_requests.append(_timed(_bare_request))
                requests.append(_timed(lambda: _request(middleware)))
            wait_until(lambda: transport.queued_reports == 0, 20, "the report queue to drain")
        capture_us = (median(logged) - median(bare_logged)) * 1e6
        middleware_us = (median(requests) - median(bare_requests)) * 1e6

        before = stored_reports(broker)
        dropped_before = transport.dropped_reports
        waits_before, waited_before = transport.backlog_waits
        up, wall_up = _paced(reporting, seconds)
        waits_up = transport.backlog_waits[0] - waits_before
        waited_up = transport.backlog_waits[1] - waited_before
        wait_until(lambda: transport.queued_reports == 0, 120, "the report queue to drain")
        stored = wait_until(
            lambda: (lambda n: n if n >= before + len(up) - transport.dropped_reports else 0)(
                stored_reports(broker)
            ),
            120,  # a loaded machine (CI, several test workers) stores slower
            "the paced reports to be stored",
        )
        shed = transport.dropped_reports - dropped_before
        accounted = (stored - before) + shed + transport.queued_reports == len(up)
        rate_up = len(up) / max(sum(up), 1e-9)
    finally:
        transport.close()
        broker.stop()

    # The broker gone: a new agent for the same options finds nobody at its address.
    down_transport = get_transport(options)
    try:
        down, wall_down = _paced(_logger("down", LoggingHandler()), seconds)
        waits_down = down_transport.backlog_waits[0]
        queued_down = down_transport.queued_reports + down_transport.dropped_reports
    finally:
        down_transport.close()
    offered_up = len(up) / wall_up
    offered_down = len(down) / wall_down
    return [
        Row(
            "7 handled errors",
            f"logged capture, {DEPTH} frames (middleware's capture: {middleware_us:.0f} µs)",
            capture_us,
            None,
            "µs",
            "-",
            None,
            f"median over {calls}; raise-catch-log through a NullHandler subtracted; the "
            f"middleware's whole request with the same error, bare raise subtracted, "
            f"{middleware_us:.0f} µs (ratio {capture_us / max(middleware_us, 1e-9):.2f})",
        ),
        Row(
            "7 handled errors",
            f"logged errors/s offered, scheduled at {RATE:,}/s, broker up",
            offered_up,
            None,
            "/s",
            f">= {RATE:,}/s",
            None if settings.quick else offered_up >= RATE * 0.99,
            f"{len(up)} calls in {wall_up:.2f} s of wall clock (scheduled: {seconds:g} s); "
            f"the calls alone could do {rate_up:,.0f}/s; with no broker: {offered_down:,.0f}/s "
            f"({len(down)} calls in {wall_down:.2f} s)",
        ),
        Row(
            "7 handled errors",
            f"{RATE:,}/s scheduled for {seconds:g} s, broker up: per call p99",
            percentile(up, 0.99) * 1e6,
            None,
            "µs",
            "stored+shed+queued = logged",
            None if settings.quick else accounted,
            f"max {max(up) * 1e6:.0f} µs; {len(up)} logged, {stored - before} stored, "
            f"{shed} shed; {waits_up} calls waited for the I/O thread (queue over half "
            f"full, at most 5 ms each), {waited_up * 1e3:.1f} ms in all",
        ),
        Row(
            "7 handled errors",
            f"{RATE:,}/s scheduled for {seconds:g} s, no broker: per call p99",
            percentile(down, 0.99) * 1e6,
            None,
            "µs",
            "caller never waits on the broker",
            None if settings.quick else waits_down == 0,
            f"max {max(down) * 1e6:.0f} µs; {waits_down} calls waited; the reports wait in "
            f"the bounded queue ({queued_down} queued or shed)",
        ),
    ]
