"""End to end: errors outside requests (excepthooks) and ``breakpoint()`` pauses."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import AppServer, Broker, HttpAnswer, Process, frame_index, node_text, wait_for


def only_report(broker: Broker, type_name: str) -> dict[str, Any]:
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == type_name), None),
        what=f"a {type_name} report",
    )
    return broker.report(summary["id"])


def test_a_crashed_background_thread_reports_and_evals_read_its_last_state(
    broker: Broker, tmp_path: Path
) -> None:
    command = [sys.executable, "tests/e2e/apps/crashing_threads.py", "thread"]
    program = Process("threads", command, tmp_path / "threads.log", broker.agent_env())
    program.start()
    try:
        report = only_report(broker, "KeyError")
        assert report["message"] == "'missing'"
        index = frame_index(report, "sync_inventory")
        answer = broker.evaluate(report["id"], index, "batch, counted")
        assert answer.status == 200, answer.text
        assert node_text(answer.json()["result"]) == "(['pear'], {'pear': 4})"
        # The previous hook still printed the thread's traceback, and the program lives on.
        program.wait_until(lambda: "main thread still running" in program.output(), "output")
        assert "Exception in thread inventory" in program.output()
        assert program.alive()
    finally:
        program.stop()


def test_the_main_program_dying_of_an_error_still_delivers_its_report(
    broker: Broker, tmp_path: Path
) -> None:
    command = [sys.executable, "tests/e2e/apps/crashing_threads.py", "main"]
    program = Process("main", command, tmp_path / "main.log", broker.agent_env())
    program.start()
    assert program.popen is not None
    assert program.popen.wait(20) == 1
    assert "KeyError: 'missing'" in program.output()  # the usual traceback, printed as always
    report = only_report(broker, "KeyError")
    assert report["text"].endswith("KeyError: 'missing'\n")
    # Its process said bye as it exited: evals fail fast, the report stays readable.
    answer = broker.evaluate(report["id"], frame_index(report, "sync_inventory"), "batch")
    assert answer.status == 410


def pause_in_background(server: AppServer) -> tuple[threading.Thread, list[HttpAnswer]]:
    answers: list[HttpAnswer] = []
    request = threading.Thread(
        target=lambda: answers.append(server.get("/pause", timeout=60)), daemon=True
    )
    request.start()
    return request, answers


def test_breakpoint_pauses_the_thread_until_continue_and_evals_work_meanwhile(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4"]
    server = start_server([*command, "{bind}", "breakpoint_wsgi:app"], env, name="gunicorn")
    request, answers = pause_in_background(server)

    report = only_report(broker, "Paused")
    assert report["paused"] is True and report["resumable"] is True
    assert report["message"].startswith("breakpoint() in price_basket() at ")
    assert report["app"] == "breakpoint-test"
    index = frame_index(report, "price_basket")
    answer = broker.evaluate(report["id"], index, "basket, total")
    assert node_text(answer.json()["result"]) == "({'apple': 3, 'pear': 4}, 7)"
    # Only that thread waits: the worker answers other requests meanwhile.
    assert server.get("/").status == 200
    assert request.is_alive() and not answers

    answer = broker.post(f"/api/reports/{report['id']}/continue", {})
    assert answer.status == 200, answer.text
    request.join(20)
    assert answers and answers[0].text == "total 7"
    wait_for(lambda: broker.report(report["id"])["resumable"] is False, what="not resumable")
    again = broker.post(f"/api/reports/{report['id']}/continue", {})
    assert again.status == 409 and "not paused" in again.json()["error"]
    # The frames stay held after the thread went on: the console still answers.
    assert broker.evaluate(report["id"], index, "total").json()["ok"]


def test_continue_works_again_after_the_broker_was_killed_and_restarted(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4"]
    server = start_server([*command, "{bind}", "breakpoint_wsgi:app"], env, name="gunicorn")
    request, answers = pause_in_background(server)
    report = only_report(broker, "Paused")

    broker.kill()
    broker.start()
    # The agent says hello again and names its pauses; the new broker offers Continue again.
    wait_for(lambda: broker.report(report["id"])["resumable"], what="the pause known again")
    assert request.is_alive()
    answer = broker.post(f"/api/reports/{report['id']}/continue", {})
    assert answer.status == 200, answer.text
    request.join(20)
    assert answers and answers[0].text == "total 7"


def test_a_pause_nobody_continues_resumes_after_its_timeout(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace", DEBUGBROKER_PAUSE_TIMEOUT="1")
    command = ["gunicorn", "-w", "1", "-k", "gthread", "{bind}", "breakpoint_wsgi:app"]
    server = start_server(command, env, name="gunicorn")
    request, answers = pause_in_background(server)
    report = only_report(broker, "Paused")
    request.join(20)
    assert answers and answers[0].text == "total 7"
    wait_for(lambda: broker.report(report["id"])["resumable"] is False, what="not resumable")
    assert "timed out, continuing" in server.process.output()


def test_continue_on_an_error_report_or_an_unknown_one_is_refused(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    assert broker.post("/api/reports/nope/continue", {}).status == 404
    server = start_server(["gunicorn", "-w", "1", "{bind}", "failing_wsgi:app"], broker.agent_env())
    wait_for(lambda: broker.live_agents(), what="the agent")
    server.get("/boom")
    report = only_report(broker, "ZeroDivisionError")
    assert report["resumable"] is False
    assert broker.post(f"/api/reports/{report['id']}/continue", {}).status == 409


def test_breakpoint_without_a_broker_returns_at_once(
    start_server: Callable[..., AppServer], tmp_path: Path
) -> None:
    nobody = Broker(tmp_path)
    env = nobody.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    server = start_server(["gunicorn", "-w", "1", "{bind}", "breakpoint_wsgi:app"], env)
    assert server.get("/pause", timeout=15).text == "total 7"
    assert "ignored: no broker is reachable" in server.process.output()
