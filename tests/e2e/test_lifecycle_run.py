"""End to end: ``debugbroker run MODULE:APP`` as a real process, with and without a broker."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def first_error(url: str, path: str = "/boom", method: str = "GET") -> tuple[int, str]:
    """The status and report link of the very first error: no retry."""
    answer = http(method, url + path, headers={"Accept": "application/json"}, body=b"")
    return answer.status, answer.json()["report"] or ""


def arrived(broker: Broker, link: str) -> dict[str, Any]:
    path = f"/api/reports/{link.rsplit('/', 1)[1]}"
    wait_for(lambda: broker.get(path).status == 200, what=f"the report at {link}")
    found: dict[str, Any] = broker.get(path).json()
    return found


def test_run_an_unmodified_flask_app_factory(broker: Broker, tmp_path: Path) -> None:
    """``MODULE:FACTORY(ARGS)`` as ``flask --app``; errors propagate to the agent (a report,
    not Flask's own 500 page), a missing form key is trapped (a report, not a bare 400), the
    app's name is Flask's, and the first error links to this broker's dashboard."""
    process, url = start_run(tmp_path, broker.agent_env(), 'plain_flask:create_app("shop")')
    try:
        status, link = first_error(url)
        assert status == 500 and link.startswith(broker.url + "/#/reports/"), link
        report = arrived(broker, link)
        assert report["type_name"] == "KeyError" and report["app"] == "shop"
        functions = [f["function"] for info in report["exceptions"] for f in info["frames"]]
        assert "create_app.<locals>.boom" in functions or "boom" in functions
        status, link = first_error(url, "/form", "POST")
        assert status == 500 and link.startswith(broker.url), link
        assert arrived(broker, link)["type_name"] == "BadRequestKeyError"
    finally:
        process.stop()


def test_the_first_error_links_to_debugbroker_public_url(tmp_path: Path) -> None:
    """No broker up yet: the link comes from DEBUGBROKER_PUBLIC_URL, from the first error."""
    dashboard = f"http://127.0.0.1:{free_port()}"
    env = base_env(
        DEBUGBROKER_URL=f"tcp://127.0.0.1:{free_port()}",
        DEBUGBROKER_SECRET="s" * 32,
        DEBUGBROKER_PUBLIC_URL=dashboard,
    )
    process, url = start_run(tmp_path, env, "plain_flask")  # finds create_app() by itself
    try:
        status, link = first_error(url)
        assert status == 500 and link.startswith(dashboard + "/#/reports/"), link
    finally:
        process.stop()


def test_the_serve_banner_exports_are_all_an_agent_needs(tmp_path: Path) -> None:
    """``serve --data DIR`` on its own ports, no secret given: an app started with exactly
    the banner's ``export`` lines reports there, and links to that dashboard."""
    broker = Broker(tmp_path)
    command = [sys.executable, "-m", "debugbroker", "serve", "--data", str(broker.data_dir)]
    command += ["--http", f"127.0.0.1:{broker.http_port}", "--zmq", broker.zmq_url]
    process = Process("broker", command, tmp_path / "broker.log", base_env())
    process.start()
    try:
        process.wait_until(lambda: "data:" in process.output(), "the broker's banner")
        exports = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in process.output().splitlines()
            if line.strip().startswith("export ")
        )
        assert exports == {
            "DEBUGBROKER_URL": broker.zmq_url,
            "DEBUGBROKER_DATA": str(broker.data_dir),
            "DEBUGBROKER_PUBLIC_URL": broker.url,
        }
        broker.token = (broker.data_dir / "token").read_text().strip()
        app, url = start_run(tmp_path, base_env(**exports), "plain_flask")
        try:
            status, link = first_error(url)
            assert status == 500 and link.startswith(broker.url + "/#/reports/"), link
            assert arrived(broker, link)["type_name"] == "KeyError"
        finally:
            app.stop()
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("failing_wsgi:nothing", "module 'failing_wsgi' has no attribute 'nothing'"),
        ("failing_wsgi:__doc__", "is a str, not a WSGI application"),
        ("not a module", "expected MODULE:APP"),
        ("plain_flask:create_app(", "cannot parse 'create_app(' in"),
        ("plain_flask:create_app(name)", "must be literals"),
        ("plain_flask:nothing()", "module 'plain_flask' has no attribute 'nothing'"),
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
