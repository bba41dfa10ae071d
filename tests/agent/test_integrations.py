"""The capture API and the logging handler without a broker: bad input, panels, one report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import debugbroker
from debugbroker.agent.capture.exceptions import capture_seconds
from debugbroker.agent.capture.panels import MAX_PANEL_TEXT, make_panel
from debugbroker.agent.integrations.capture import agent_transport
from debugbroker.agent.integrations.log_handler import LoggingHandler, install_logging
from debugbroker.agent.integrations.rq_jobs import (
    DEFAULT_HOLD_SECONDS,
    _seconds_left_before_kill,
    hold_seconds,
)
from debugbroker.agent.middleware import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import current_transport, get_transport
from debugbroker.agent.transport.transport import Transport
from tests.conftest import free_port


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[Transport]:
    """This process's agent, pointed at a port where no broker answers; closed after."""
    while (leftover := current_transport()) is not None:  # another test's agent
        leftover.close()
    monkeypatch.setenv("DEBUGBROKER_URL", f"tcp://127.0.0.1:{free_port()}")
    made = agent_transport()
    yield made
    made.close()


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_nothing_to_report_is_said_on_stderr_and_returns_none(
    transport: Transport, capsys: pytest.CaptureFixture[str]
) -> None:
    assert debugbroker.capture_exception() is None
    assert "no exception being handled" in capsys.readouterr().err
    assert debugbroker.capture_exception("boom") is None  # type: ignore[arg-type]
    assert "expects an exception, got str" in capsys.readouterr().err
    assert transport.queued_reports == 0


def test_a_capture_without_a_broker_is_queued_and_returns_none(transport: Transport) -> None:
    empty: dict[str, int] = {}
    budget = capture_seconds(transport.options)
    try:
        empty["missing"]
    except KeyError:
        started = time.monotonic()
        # The fresh agent's first connection is waited for, within one capture's time.
        assert debugbroker.capture_exception(huge="x" * 100_000, odd=Hostile()) is None
        first = time.monotonic() - started
        started = time.monotonic()
        # The agent is older now: no wait.
        assert debugbroker.capture_exception(ValueError("another")) is None
        second = time.monotonic() - started
    assert first < budget + 1.0, first  # its own work plus the wait, bounded
    assert second < budget, second
    assert transport.queued_reports == 2
    report = transport.mailbox.next_report()  # what the broker would get
    assert report is not None
    assert report.type_name == "KeyError"
    (panel,) = report.panels
    items = dict(panel.items)
    assert panel.title == "Context"
    assert len(items["huge"]) < MAX_PANEL_TEXT + 30 and items["huge"].endswith("more)")
    assert items["odd"].startswith("<broken repr")
    # The frames are held, so a console can open on them once the broker is there.
    assert any(frame.frame_id in transport.registry for frame in report.exceptions[0].frames)


def test_an_exception_given_outside_its_except_block_is_reported(transport: Transport) -> None:
    try:
        raise ValueError("kept for later")
    except ValueError as error:
        kept = error
    debugbroker.capture_exception(kept)
    assert transport.queued_reports == 1


def test_panels_never_fail_on_a_broken_iterable() -> None:
    def rows() -> Iterator[tuple[str, object]]:
        yield "first", 1
        raise OSError("gone")

    panel = make_panel("Task", rows(), Options())
    assert panel.items[0] == ("first", "1")
    assert panel.items[1][1].startswith("<could not read the values: OSError")


def test_records_without_an_exception_or_under_the_level_are_not_reported(
    transport: Transport,
) -> None:
    logger = logging.getLogger("tests.integrations.quiet")
    handler = install_logging(logger=logger)
    try:
        assert install_logging(logger="tests.integrations.quiet") is handler  # idempotent
        logger.error("no exception here")
        logger.error("asked for one, none active", exc_info=True)
        try:
            int("x")
        except ValueError:
            logger.warning("only a warning", exc_info=True)
        assert transport.queued_reports == 0
    finally:
        logger.removeHandler(handler)


def test_a_logged_error_that_reaches_the_middleware_is_one_report(transport: Transport) -> None:
    logger = logging.getLogger("tests.integrations.view")
    handler = LoggingHandler()
    logger.addHandler(handler)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            return [b"%d" % (1 / 0)]
        except ZeroDivisionError:
            logger.exception("dividing failed")
            raise

    wrapped = DebuggedApplication(app, options=transport.options)
    headers: dict[str, str] = {}

    def start_response(
        status: str, pairs: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        headers.update(pairs)
        return lambda chunk: None

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x", "SERVER_PORT": "80"}
    try:
        body = b"".join(wrapped(environ, start_response))
    finally:
        logger.removeHandler(handler)
    assert b"ZeroDivisionError" in body
    assert transport.queued_reports == 1
    report = transport.mailbox.next_report()
    assert report is not None
    assert report.panels[0].title == "Log record"
    assert headers["X-Debugbroker-Report"].endswith(f"/#/reports/{report.id}")
    assert get_transport(transport.options) is transport


def test_install_asyncio_needs_a_loop_chains_the_previous_handler_once(
    transport: Transport, capsys: pytest.CaptureFixture[str]
) -> None:
    debugbroker.install_asyncio()
    assert "needs a running loop" in capsys.readouterr().err
    heard: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _, context: heard.append(context["message"]))
        debugbroker.install_asyncio(loop)
        installed = loop.get_exception_handler()
        debugbroker.install_asyncio(loop)  # idempotent
        assert loop.get_exception_handler() is installed
        loop.call_exception_handler({"message": "no exception here"})
        assert transport.queued_reports == 0
        try:
            raise OSError("lost")
        except OSError as error:
            loop.call_exception_handler({"message": "Task exception", "exception": error})
        assert heard == ["no exception here", "Task exception"]
        assert transport.queued_reports == 1
    finally:
        loop.close()


HOLDS = [(None, DEFAULT_HOLD_SECONDS), ("0", 0.0), ("2.5", 2.5), ("-1", 60.0), ("soon", 60.0)]
HOLDS += [("nan", 60.0), ("inf", 60.0)]


@pytest.mark.parametrize(("value", "expected"), HOLDS)
def test_rq_hold_seconds_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str | None,
    expected: float,
) -> None:
    if value is None:
        monkeypatch.delenv("DEBUGBROKER_RQ_HOLD", raising=False)
    else:
        monkeypatch.setenv("DEBUGBROKER_RQ_HOLD", value)
    assert hold_seconds() == expected
    ignored = f"ignoring DEBUGBROKER_RQ_HOLD={value!r}" in capsys.readouterr().err
    assert ignored is (value in ("-1", "soon", "nan", "inf"))


class FinishedJob:
    """The two attributes of an ``rq.job.Job`` the hold reads (a real Job needs Redis)."""

    def __init__(self, timeout: object, started_at: object) -> None:
        self.timeout = timeout
        self.started_at = started_at


def test_a_holding_horse_stops_before_rq_would_kill_it() -> None:
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    left = _seconds_left_before_kill(FinishedJob(10, started))
    assert left is not None and 60 < left < 65  # 10 s timeout + 60 s grace - 5 s run - margin
    naive = started.replace(tzinfo=None)  # older rq versions store naive UTC times
    left_naive = _seconds_left_before_kill(FinishedJob(10, naive))
    assert left_naive is not None and abs(left_naive - left) < 1
    assert _seconds_left_before_kill(FinishedJob(-1, started)) is None  # rq's "no timeout"
    default = _seconds_left_before_kill(FinishedJob(None, None))  # rq's default of 180 s
    assert default is not None and 230 < default < 240
