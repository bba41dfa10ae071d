"""End to end: ``debugbroker run MODULE:APP`` as a real process, with and without a broker."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    APPS,
    Broker,
    HttpAnswer,
    Process,
    base_env,
    frame_index,
    free_port,
    http,
    node_text,
    wait_for,
)


def start_run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[Process, str]:
    port = free_port()
    command = [sys.executable, "-m", "debugbroker", "run", *args, "--port", str(port)]
    process = Process("run", command, tmp_path / "run.log", env)
    process.start()
    url = f"http://127.0.0.1:{port}"
    process.wait_until(lambda: http("GET", url + "/pid").status == 200, "the app")
    return process, url


def linked_error(url: str, dashboard: str) -> HttpAnswer:
    def linked() -> HttpAnswer | None:
        answer = http("GET", url + "/boom", headers={"Accept": "application/json"})
        assert answer.status == 500, answer.text
        report = answer.json()["report"]
        return answer if report and report.startswith(dashboard) else None

    found: HttpAnswer = wait_for(linked, what="a 500 linking the dashboard")
    return found


def test_run_serves_a_plain_wsgi_app_with_the_agent_attached(tmp_path: Path) -> None:
    # Agents count as gone only after 60 silent seconds here: only a bye marks one sooner.
    broker = Broker(tmp_path, "--agent-timeout", "60").start()
    process, url = start_run(tmp_path, broker.agent_env(), "failing_wsgi:raw_app")
    try:
        assert http("GET", url + "/pid").text == str(process.pid)
        answer = linked_error(url, broker.url)
        report_id = answer.json()["report"].rsplit("/", 1)[1]
        report = wait_for(
            lambda: (
                any(r["id"] == report_id for r in broker.reports()) and broker.report(report_id)
            ),
            what="the report",
        )
        result = broker.evaluate(report_id, frame_index(report, "raw_app"), "worker_pid")
        assert node_text(result.json()["result"]) == str(process.pid)
        agent_id = report["agent_id"]
        process.stop(signal.SIGTERM)
        assert process.popen is not None and process.popen.returncode == 0

        def said_bye() -> bool:
            agents = broker.get("/api/agents").json()["agents"]
            return any(a["agent_id"] == agent_id and not a["alive"] for a in agents)

        wait_for(said_bye, what="the agent to say bye as the process exited")
    finally:
        process.stop()
        broker.stop()


def test_run_with_broker_is_one_command_for_an_app_and_its_dashboard(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # its ports, token and secret; the run command starts it
    args = ["failing_wsgi:raw_app", "--with-broker", "--http", f"127.0.0.1:{broker.http_port}"]
    args += ["--zmq", broker.zmq_url, "--data", str(broker.data_dir), "--token", broker.token]
    process, url = start_run(tmp_path, base_env(), *args)
    try:
        answer = linked_error(url, broker.url)
        report_id = answer.json()["report"].rsplit("/", 1)[1]
        report = wait_for(lambda: broker.report(report_id), what="the report")
        result = broker.evaluate(report_id, frame_index(report, "compute_ratio"), "total, count")
        assert node_text(result.json()["result"]) == "(10, 0)"
    finally:
        process.stop()


def test_an_app_that_already_has_the_middleware_is_not_wrapped_twice(
    broker: Broker, tmp_path: Path
) -> None:
    process, url = start_run(tmp_path, broker.agent_env(), "failing_wsgi:app")
    try:
        answer = linked_error(url, broker.url)
        report_id = answer.json()["report"].rsplit("/", 1)[1]
        report = wait_for(lambda: broker.report(report_id), what="the report")
        functions = [f["function"] for info in report["exceptions"] for f in info["frames"]]
        assert functions.count("__call__") <= 1 and functions.count("_run") <= 1
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("failing_wsgi:nothing", "module 'failing_wsgi' has no attribute 'nothing'"),
        ("failing_wsgi:__doc__", "is a str, not a WSGI application"),
        ("not a module", "expected MODULE:APP"),
    ],
)
def test_bad_targets_get_a_clear_error(target: str, message: str) -> None:
    command = [sys.executable, "-m", "debugbroker", "run", target, "--port", str(free_port())]
    done = subprocess.run(
        command, capture_output=True, text=True, env=base_env(), cwd=APPS, timeout=30
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
