"""End to end: worker processes that come and go, and a broker that is down or late.

The broker here counts an agent as gone only after 60 silent seconds, so an agent marked
gone within the test's deadline was marked by its own bye, sent as its process exited.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AppServer, Broker, frame_index, node_text, wait_for

SLOW_TIMEOUT = ("--agent-timeout", "60")


def agent_of(broker: Broker, pid: int) -> dict[str, Any]:
    """The broker's record of the agent in process ``pid`` (raises until there is one)."""
    agents = broker.get("/api/agents").json()["agents"]
    found: dict[str, Any] = next(agent for agent in agents if agent["pid"] == pid)
    return found


def report_from(server: AppServer, broker: Broker) -> dict[str, Any]:
    """Raise an error once the worker's agent is welcomed; its report as the broker has it."""

    def linked() -> str | None:
        answer = server.get("/boom", headers={"Accept": "application/json"})
        assert answer.status == 500, answer.text
        report = answer.json()["report"]
        return str(report) if report and report.startswith(broker.url) else None

    report_id = wait_for(linked, what="a linked report").rsplit("/", 1)[1]
    found: dict[str, Any] = wait_for(
        lambda: any(r["id"] == report_id for r in broker.reports()) and broker.report(report_id),
        what="the report at the broker",
    )
    return found


@pytest.fixture
def patient_broker(tmp_path: Path) -> Any:
    started = Broker(tmp_path, *SLOW_TIMEOUT).start()
    yield started
    started.stop()


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_a_recycled_gunicorn_worker_is_gone_at_once_and_its_reports_stay_readable(
    patient_broker: Broker, start_server: Callable[..., AppServer], worker_class: str, preload: bool
) -> None:
    broker = patient_broker
    command = ["gunicorn", "-w", "1", "-k", worker_class, "--max-requests", "30"]
    command += ["--max-requests-jitter", "0", "{bind}", "lifecycle_wsgi:app"]
    if preload:
        command.insert(1, "--preload")
    server = start_server(command, broker.agent_env(), name="gunicorn")
    report = report_from(server, broker)
    pid = report["pid"]
    index = frame_index(report, "checkout")
    answer = broker.evaluate(report["id"], index, "import os\ncart, discount, os.getpid()")
    assert node_text(answer.json()["result"]) == f"([1, 2, 3], 0, {pid})"

    # --max-requests recycles the worker; its replacement answers with another pid.
    wait_for(lambda: int(server.get("/").text) != pid, what="the worker to be recycled")
    wait_for(lambda: agent_of(broker, pid)["alive"] is False, what="the old agent to be gone")
    answer = broker.evaluate(report["id"], index, "1")
    assert answer.status == 410 and answer.json()["reason"] == "gone"
    assert "process gone" in answer.json()["error"] and f"pid {pid}" in answer.json()["error"]
    assert broker.report(report["id"])["agent_alive"] is False
    text = broker.get(f"/api/reports/{report['id']}/text").text
    assert text.endswith("ZeroDivisionError: division by zero\n")
    # The new worker is an agent of its own, and evals reach it.
    fresh = report_from(server, broker)
    assert fresh["pid"] != pid
    answer = broker.evaluate(fresh["id"], frame_index(fresh, "raw_app"), "worker_pid")
    assert node_text(answer.json()["result"]) == str(fresh["pid"])


def test_multiprocessing_workers_are_one_agent_each_and_say_bye_when_they_exit(
    patient_broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    broker = patient_broker
    command = [sys.executable, "tests/e2e/apps/mp_server.py", "{port}", "2"]
    server = start_server(command, broker.agent_env(), name="mp-server")
    by_pid: dict[int, dict[str, Any]] = {}

    def both_workers() -> bool:
        report = report_from(server, broker)
        by_pid.setdefault(report["pid"], report)
        return len(by_pid) == 2

    wait_for(both_workers, what="reports from both workers")
    assert len({report["agent_id"] for report in by_pid.values()}) == 2
    for pid, report in by_pid.items():
        answer = broker.evaluate(report["id"], frame_index(report, "raw_app"), "worker_pid")
        assert node_text(answer.json()["result"]) == str(pid)

    words = server.get("/exit").text.split()  # whichever worker takes it exits
    assert words[0] == "bye"
    exited = int(words[1])
    wait_for(lambda: agent_of(broker, exited)["alive"] is False, what="the exited worker gone")
    answer = broker.evaluate(by_pid[exited]["id"], frame_index(by_pid[exited], "raw_app"), "1")
    assert answer.status == 410 and "process gone" in answer.json()["error"]
    survivor = next(pid for pid in by_pid if pid != exited)
    assert agent_of(broker, survivor)["alive"] is True


def test_with_no_broker_the_app_serves_errors_get_the_fallback_page_and_memory_stays_bounded(
    start_server: Callable[..., AppServer], tmp_path: Path
) -> None:
    nobody = Broker(tmp_path)  # never started: nothing listens on its ports
    env = nobody.agent_env(APP_QUEUE_SIZE="3", APP_HELD_REPORTS="2")
    server = start_server(["gunicorn", "-w", "1", "{bind}", "lifecycle_wsgi:app"], env)
    for _ in range(10):
        assert server.get("/", timeout=5).status == 200
        page = server.get("/boom", headers={"Accept": "text/html"}, timeout=5)
        assert page.status == 500
        assert "x-debugbroker-report" in page.headers  # the link works once a broker is up
        assert "not reachable at " + nobody.zmq_url in page.text
        assert "Traceback (most recent call last):" in page.text
        assert "ZeroDivisionError: division by zero" in page.text
    plain = server.get("/boom", headers={"Accept": "text/plain"}, timeout=5)
    assert "return sum(cart) / discount" in plain.text
    stats = server.get("/stats").json()
    assert stats["connected"] is False
    assert stats["queued_reports"] == 3 and stats["dropped_reports"] == 8
    assert stats["held_reports"] <= 2
    assert "Traceback (most recent call last):" in server.process.output()


def test_reports_raised_while_the_broker_is_down_arrive_when_it_starts_and_overflow_is_counted(
    start_server: Callable[..., AppServer], tmp_path: Path
) -> None:
    broker = Broker(tmp_path)
    env = broker.agent_env(APP_QUEUE_SIZE="3")
    server = start_server(["gunicorn", "-w", "1", "{bind}", "lifecycle_wsgi:app"], env)
    for _ in range(8):
        assert server.get("/boom", headers={"Accept": "application/json"}).status == 500
    assert server.get("/stats").json()["dropped_reports"] == 5
    broker.start()
    try:
        wait_for(lambda: len(broker.reports()) == 3, what="the three buffered reports")
        wait_for(
            lambda: [a["dropped_reports"] for a in broker.live_agents()] == [5],
            what="the overflow count in /api/agents",
        )
        assert len(broker.reports()) == 3
    finally:
        broker.stop()
