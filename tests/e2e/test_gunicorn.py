"""End to end: a real broker, gunicorn with several workers, real errors and evals."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AppServer, Broker, frame_index, node_text, wait_for


def raise_until_pids(server: AppServer, broker: Broker, want: int) -> dict[int, dict[str, Any]]:
    """Hit ``/boom`` until reports from ``want`` different worker pids arrived."""
    by_pid: dict[int, dict[str, Any]] = {}

    def enough() -> bool:
        answer = server.get("/boom", headers={"Accept": "text/html"})
        assert answer.status == 500, answer.text
        for report in broker.reports():
            by_pid.setdefault(report["pid"], report)
        return len(by_pid) >= want

    wait_for(enough, what=f"reports from {want} workers")
    return by_pid


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
def test_each_worker_is_an_agent_and_evals_reach_the_worker_that_raised(
    broker: Broker, start_server: Callable[..., AppServer], preload: bool
) -> None:
    command = ["gunicorn", "-w", "3", "{bind}", "failing_wsgi:app"]
    if preload:
        command.insert(1, "--preload")
    server = start_server(command, broker.agent_env(), name="gunicorn")
    # Agents start with their worker's first request; gunicorn spreads requests unevenly,
    # so keep asking until every worker has answered once.
    seen_pids: set[int] = set()

    def three_agents() -> bool:
        seen_pids.add(int(server.get("/pid").text))
        return len(broker.live_agents()) == 3 and len(seen_pids) == 3

    wait_for(three_agents, what="three live agents")
    agents = broker.live_agents()
    assert {agent["pid"] for agent in agents} == seen_pids
    assert len({agent["agent_id"] for agent in agents}) == 3
    assert all(agent["evalex"] and agent["python"] for agent in agents)

    reports = raise_until_pids(server, broker, 2)
    for pid, summary in reports.items():
        report = broker.report(summary["id"])
        assert report["type_name"] == "ZeroDivisionError"
        assert report["agent_alive"] is True
        index = frame_index(report, "raw_app")
        answer = broker.evaluate(summary["id"], index, "import os\n(os.getpid(), worker_pid)")
        assert answer.status == 200, answer.text
        result = answer.json()
        assert result["ok"], result
        assert node_text(result["result"]) == f"({pid}, {pid})"
        # Locals persist per frame, and `_` is the last result.
        assert broker.evaluate(summary["id"], index, "mine = _[0] * 2").json()["ok"]
        again = broker.evaluate(summary["id"], index, "mine").json()
        assert node_text(again["result"]) == str(pid * 2)


def test_the_500_page_links_the_report_in_the_dashboard(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = start_server(["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], broker.agent_env())
    wait_for(lambda: broker.live_agents(), what="an agent")

    def reported() -> Any:
        answer = server.get("/boom", headers={"Accept": "text/html"})
        link = answer.headers.get("x-debugbroker-report", "")
        # A worker that has not been welcomed yet still answers, without the broker's URL.
        return answer if link.startswith(broker.url + "/#/reports/") else None

    answer = wait_for(reported, what="a 500 linking the dashboard")
    assert answer.status == 500
    assert "ZeroDivisionError" in answer.text and "division by zero" in answer.text
    report_id = answer.headers["x-debugbroker-report"].rsplit("/", 1)[1]
    assert f'href="{broker.url}/#/reports/{report_id}"' in answer.text
    wait_for(lambda: any(r["id"] == report_id for r in broker.reports()), what="the report")
    text = broker.get(f"/api/reports/{report_id}/text")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.startswith("Traceback (most recent call last):\n")
    assert text.text.endswith("ZeroDivisionError: division by zero\n")

    plain = server.get("/boom", headers={"Accept": "*/*"})
    assert plain.status == 500 and plain.headers["content-type"].startswith("text/plain")
    api = server.get("/boom", headers={"Accept": "application/json"})
    assert api.json()["error"] == "ZeroDivisionError: division by zero"


def test_a_streamed_body_that_fails_is_reported_and_answered_as_far_as_it_can_be(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = start_server(["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], broker.agent_env())
    # Before the first chunk nothing went out: gunicorn lets the 500 replace the 200.
    early = server.get("/stream-early", headers={"Accept": "application/json"})
    assert early.status == 500, early.text
    assert early.json()["error"] == "ZeroDivisionError: division by zero"
    # After it, the 200 and its first chunk are gone: the response ends there, and the
    # error is reported and logged all the same.
    late = server.get("/stream-late")
    assert late.status == 200 and late.text == "partial "
    wait_for(lambda: len(broker.reports()) >= 2, what="both reports")
    assert all(r["type_name"] == "ZeroDivisionError" for r in broker.reports())
    wait_for(
        lambda: "the response was cut short" in server.process.output(),
        what="the cut-short note in gunicorn's log",
    )


def test_broker_killed_and_restarted_keeps_reports_and_evals_work_again(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = start_server(["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], broker.agent_env())
    wait_for(lambda: broker.live_agents(), what="an agent")
    summary = next(iter(raise_until_pids(server, broker, 1).values()))
    index = frame_index(broker.report(summary["id"]), "compute_ratio")

    broker.kill()
    # While the broker is down the app keeps answering, and errors still get their page.
    down = server.get("/boom", headers={"Accept": "text/plain"})
    assert down.status == 500 and "ZeroDivisionError" in down.text
    broker.start()

    assert any(r["id"] == summary["id"] for r in broker.reports())
    # The agent notices, says hello again, and its held frames answer evals again.
    wait_for(
        lambda: summary["agent_id"] in {a["agent_id"] for a in broker.live_agents()},
        what="the agent to re-register",
    )
    answer = broker.evaluate(summary["id"], index, "total, count")
    assert answer.status == 200, answer.text
    assert node_text(answer.json()["result"]) == "(10, 0)"
    # The report raised while the broker was down was queued and arrives now.
    wait_for(lambda: len(broker.reports()) >= 2, what="the queued report")


def test_eval_on_a_dead_worker_fails_fast_with_a_clear_error(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = start_server(["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], broker.agent_env())
    wait_for(lambda: broker.live_agents(), what="an agent")
    summary = next(iter(raise_until_pids(server, broker, 1).values()))
    index = frame_index(broker.report(summary["id"]), "compute_ratio")

    os.kill(summary["pid"], signal.SIGKILL)
    started = time.monotonic()
    answer = wait_for(
        lambda: (a := broker.evaluate(summary["id"], index, "1")).status == 410 and a,
        timeout=10,
        what="the eval to fail with 410",
    )
    assert time.monotonic() - started < 10
    assert "process gone" in answer.json()["error"]
    assert answer.json()["reason"] == "gone"  # the killed worker's reason reaches the answer
    assert f"pid {summary['pid']}" in answer.json()["error"]
    # The report stays readable, marked as coming from a gone process.
    wait_for(lambda: broker.report(summary["id"])["agent_alive"] is False, what="agent gone")
    assert broker.get(f"/api/reports/{summary['id']}/text").status == 200


def test_a_killed_worker_is_gone_at_once_not_after_the_heartbeat_timeout(
    tmp_path: Path, start_server: Callable[..., AppServer]
) -> None:
    # A heartbeat timeout far beyond the wait below: only the closed connection can tell.
    workdir = tmp_path / "slow-heartbeats"
    workdir.mkdir()
    broker = Broker(workdir, "--agent-timeout", "300").start()
    try:
        server = start_server(
            ["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], broker.agent_env()
        )
        pids: set[int] = set()

        def both() -> bool:
            pids.add(int(server.get("/pid").text))
            return len(pids) == 2 and {a["pid"] for a in broker.live_agents()} >= pids

        wait_for(both, what="both workers' agents")
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in {a["pid"] for a in broker.live_agents()},
            timeout=30,
            what="the killed worker's agent marked gone",
        )
        assert broker.process is not None
        assert "its connection closed" in broker.process.output()
        (other,) = pids - {victim}  # the other worker is untouched
        assert other in {a["pid"] for a in broker.live_agents()}
    finally:
        broker.stop()
