"""The storm policy in the agent: per failing path a token bucket of full reports, the rest
counted exactly against the last full report, and the counts sent to a real broker."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from debugbroker import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.repeats import RepeatBudget, repeat_key
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import RepeatCount
from tests.conftest import Broker, wait_for


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def raised(kind: type[Exception] = ValueError, line: int = 0) -> Exception:
    try:
        if line == 0:
            raise kind("same path")
        raise kind("another line")
    except Exception as error:
        return error


def chained() -> Exception:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as error:
        return error


def test_the_key_is_the_failing_path_not_the_message() -> None:
    assert repeat_key(raised())[0] == repeat_key(raised())[0]
    assert repeat_key(raised(ValueError))[0] != repeat_key(raised(TypeError))[0]
    assert repeat_key(raised(line=0))[0] != repeat_key(raised(line=1))[0]  # another line
    assert repeat_key(chained())[0] == repeat_key(chained())[0]
    assert repeat_key(chained())[0] != repeat_key(raised())[0]
    key, kept = repeat_key(chained())
    assert KeyError in kept and ValueError in kept  # the ids stay valid with the entry


def test_a_burst_is_captured_then_repeats_are_counted_against_the_last_report() -> None:
    budget = RepeatBudget(3, 0.0, clock=Clock(), wall_clock=Clock(7200.5))
    for number in range(3):
        key, repeat_of = budget.take(raised())
        assert key is not None and repeat_of is None  # captured in full
        budget.represent(key, f"report-{number}")
    decisions = [budget.take(raised())[1] for _ in range(5)]
    assert decisions == ["report-2"] * 5
    assert budget.counted == 5 and budget.pending == 5
    assert budget.take_counts() == [
        RepeatCount(report_id="report-2", count=5, first=7200.5, last=7200.5)
    ]
    assert budget.pending == 0 and budget.take_counts() == []
    assert budget.take(raised(TypeError))[1] is None  # another path has its own budget


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    clock = Clock()
    budget = RepeatBudget(2, 2.0, clock=clock)
    key = None
    for _ in range(2):
        key, repeat_of = budget.take(raised())
        assert repeat_of is None
    budget.represent(key, "r1")
    assert budget.take(raised())[1] == "r1"
    clock.now += 0.5  # one token back
    assert budget.take(raised())[1] is None
    assert budget.take(raised())[1] == "r1"
    clock.now += 100.0  # never more than the burst
    assert [budget.take(raised())[1] for _ in range(3)] == [None, None, "r1"]
    assert budget.counted == 3


def test_an_error_without_a_queued_report_yet_is_captured_and_zero_turns_it_off() -> None:
    budget = RepeatBudget(1, 0.0, clock=Clock())
    assert budget.take(raised())[1] is None
    assert budget.take(raised())[1] is None  # no representative yet: captured
    off = RepeatBudget(0, 2.0)
    assert not off.enabled and off.take(raised()) == (None, None)


def test_counts_are_split_by_hour_and_restored_exactly() -> None:
    wall = Clock(3600.0 * 5 - 1)
    budget = RepeatBudget(1, 0.0, clock=Clock(), wall_clock=wall)
    key, _ = budget.take(raised())
    budget.represent(key, "r")
    budget.take(raised())
    wall.now += 2  # the next hour
    budget.take(raised())
    budget.take(raised())
    counts = budget.take_counts()
    assert [(c.count, int(c.first // 3600)) for c in counts] == [(1, 4), (2, 5)]
    budget.take(raised())
    budget.restore(counts)  # not sent: back, merged with what came meanwhile
    again = budget.take_counts()
    assert sum(c.count for c in again) == 4 == budget.counted
    assert [(c.count, int(c.first // 3600)) for c in again] == [(3, 5), (1, 4)]


def test_the_option_comes_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUGBROKER_REPEAT_BURST", "0")
    monkeypatch.setenv("DEBUGBROKER_REPEAT_RATE", "5")
    options = Options.from_environment()
    assert options.repeat_burst == 0 and options.repeat_per_second == 5.0
    monkeypatch.setenv("DEBUGBROKER_REPEAT_BURST", "-3")  # refused: the default
    assert Options.from_environment().repeat_burst == 20
    app = DebuggedApplication(failing, options=Options(), repeat_burst=7)
    assert app.options.repeat_burst == 7


def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise RuntimeError(f"error {environ['n']}")


def call(app: DebuggedApplication, n: int, accept: str = "application/json") -> tuple[str, bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "n": n, "HTTP_ACCEPT": accept}
    environ["wsgi.errors"] = io.StringIO()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return statuses[-1], body


def group_totals(broker: Broker) -> list[tuple[int, int]]:
    return [(g["count"], g["kept"]) for g in broker.get("/api/groups").json()["groups"]]


def repeats_app(broker: Broker, name: str, burst: int) -> DebuggedApplication:
    """The failing app with a budget of ``burst`` full reports that (almost) never refills."""
    options = Options(
        broker_url=broker.zmq_url,
        secret=broker.secret,
        app_name=name,
        repeat_burst=burst,
        repeat_per_second=0.001,
    )
    return DebuggedApplication(failing, options=options)


def test_repeats_reach_the_group_exactly_and_are_flushed_at_exit(broker: Broker) -> None:
    app = repeats_app(broker, "repeats", 5)
    transport = app.transport
    assert transport.wait_connected(20)
    try:
        answers = [call(app, n) for n in range(40)]
        assert all(status.startswith("500") for status, _ in answers)
        assert b'"repeated": true' not in answers[4][1] and b'"repeated": true' in answers[5][1]
        status, page = call(app, 40, "text/html")
        assert b"counted, not captured" in page
        assert transport.counted_repeats == 36
        wait_for(lambda: group_totals(broker) == [(41, 5)], what="41 seen, 5 kept")
        for n in range(10):  # counted, then sent only with the bye
            call(app, 100 + n)
        assert transport.pending_repeats == 10
        transport.say_bye()
        wait_for(lambda: group_totals(broker) == [(51, 5)], what="the last 10 flushed at exit")
        assert transport.pending_repeats == 0
    finally:
        transport.close()
    status = broker.get("/api/status").json()
    assert status["relay"]["repeats_counted"] == 46 and status["relay"]["repeats_unknown"] == 0


def test_repeats_of_a_report_the_broker_never_got_are_counted_on_the_agent(
    broker: Broker,
) -> None:
    transport = repeats_app(broker, "unknown", 1).transport
    assert transport.wait_connected(20)
    try:
        transport.repeats.represent(transport.repeats.take(raised())[0], "never-sent")
        for _ in range(3):
            assert transport.repeats.take(raised())[1] == "never-sent"
        wait_for(
            lambda: (
                [a["repeats_unknown"] for a in broker.live_agents() if a["pid"] == os.getpid()]
                == [3]
            ),
            what="3 repeats of an unknown report",
        )
    finally:
        transport.close()
    assert broker.get("/api/status").json()["relay"]["repeats_unknown"] == 3


def test_counts_against_another_agents_report_stay_on_the_sender(broker: Broker) -> None:
    def options(name: str) -> Options:
        return Options(
            broker_url=broker.zmq_url,
            secret=broker.secret,
            app_name=name,
            repeat_burst=1,
            repeat_per_second=0.001,
        )

    owner = DebuggedApplication(failing, options=options("owner"))
    assert owner.transport.wait_connected(20)
    other = Transport(options("other"), eval_dispatcher)
    try:
        assert other.wait_connected(20)
        call(owner, 1)
        wait_for(lambda: group_totals(broker) == [(1, 1)], what="the owner's report")
        [report] = broker.reports()
        key, _ = other.repeats.take(raised())
        other.repeats.represent(key, report["id"])  # another agent's report id
        assert other.repeats.take(raised())[1] == report["id"]
        wait_for(
            lambda: broker.get("/api/status").json()["relay"]["repeats_unknown"] == 1,
            what="the count kept as unknown",
        )
        assert group_totals(broker) == [(1, 1)]
        by_agent = {a["agent_id"]: a["repeats_unknown"] for a in broker.live_agents()}
        assert by_agent[other.agent_id] == 1 and by_agent[owner.transport.agent_id] == 0
    finally:
        other.close()
        owner.transport.close()
