"""End to end: breakpoints set through the broker's API in a Flask app under gunicorn -w 2
(tests/e2e/apps/breakpoints_flask.py, copied per test so that a test may edit it on disk)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    AppServer,
    Broker,
    HttpAnswer,
    frame_index,
    http,
    line_of,
    node_text,
    wait_for,
)

APP = Path(__file__).parent / "apps" / "breakpoints_flask.py"
APP_NAME = "breakpoints-e2e"


def call(broker: Broker, method: str, path: str, body: object = None) -> HttpAnswer:
    return http(method, broker.url + path, headers=broker.auth(), json_body=body)


def set_breakpoint(broker: Broker, file: Path, line: int, **extra: Any) -> dict[str, Any]:
    body = {"app": APP_NAME, "file": str(file), "line": line, **extra}
    answer = call(broker, "POST", "/api/breakpoints", body)
    assert answer.status == 201, answer.text
    made: dict[str, Any] = answer.json()["breakpoint"]
    return made


def states(broker: Broker, breakpoint_id: str) -> dict[str, dict[str, Any]]:
    for found in call(broker, "GET", "/api/breakpoints").json()["breakpoints"]:
        if found["id"] == breakpoint_id:
            result: dict[str, dict[str, Any]] = found["states"]
            return result
    return {}


def in_every_worker(broker: Broker, breakpoint_id: str, status: str) -> dict[str, dict[str, Any]]:
    """Wait until the agent of every live worker says ``status``; their states."""
    found: dict[str, dict[str, Any]] = wait_for(
        lambda: (
            (found := states(broker, breakpoint_id))
            and set(found) == {a["agent_id"] for a in broker.live_agents() if a["app"] == APP_NAME}
            and all(state["status"] == status for state in found.values())
            and found
        ),
        what=f"every worker to say {status}",
    )
    return found


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    copy = tmp_path / "app" / "breakpoints_flask.py"
    copy.parent.mkdir()
    shutil.copy(APP, copy)
    old = time.time() - 60  # written before the workers started
    os.utime(copy, (old, old))
    return copy


@pytest.fixture
def start_app(
    broker: Broker, start_server: Callable[..., AppServer], app_file: Path
) -> Callable[..., AppServer]:
    def start(workers: int | None = 2, **env: str) -> AppServer:
        """Start gunicorn -w 2; wait for ``workers`` agents (None: do not wait)."""
        environment = broker.agent_env(**env)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(app_file.parent), environment["PYTHONPATH"]]
        )
        command = ["gunicorn", "-w", "2", "--timeout", "120", "{bind}", "breakpoints_flask:app"]
        server = start_server(command, environment, name="gunicorn")
        if workers is None:
            return server
        wait_for(
            lambda: len([a for a in broker.live_agents() if a["app"] == APP_NAME]) == workers,
            what="both workers' agents",
        )
        return server

    return start


def paused_reports(broker: Broker) -> list[dict[str, Any]]:
    return [r for r in broker.reports() if r["type_name"] == "Paused"]


def test_a_breakpoint_pauses_each_worker_steps_and_continue_answers_right(
    broker: Broker, start_app: Callable[..., AppServer], app_file: Path
) -> None:
    server = start_app()
    line = line_of(APP, "total = with_discount(subtotal)")
    made = set_breakpoint(broker, app_file, line)
    in_every_worker(broker, made["id"], "armed")

    # A worker started later (gunicorn's TTIN adds one) gets it with its welcome.
    master = server.process.popen
    assert master is not None
    os.kill(master.pid, signal.SIGTTIN)
    wait_for(
        lambda: len([a for a in broker.live_agents() if a["app"] == APP_NAME]) == 3,
        what="the third worker's agent",
    )
    assert len(in_every_worker(broker, made["id"], "armed")) == 3

    # The first request pauses in one worker; a second one, meanwhile, in another.
    first, first_answers = server.get_in_background("/price?n=3", timeout=90)
    wait_for(lambda: len(paused_reports(broker)) == 1, what="the first pause")
    second, second_answers = server.get_in_background("/price?n=5", timeout=90)
    wait_for(lambda: len(paused_reports(broker)) == 2, what="the pause in another worker")
    pauses = [broker.report(summary["id"]) for summary in paused_reports(broker)]
    assert len({report["agent_id"] for report in pauses}) == 2  # two workers
    for report in pauses:
        assert report["paused"] and report["resumable"]
        assert f"breakpoint at breakpoints_flask.py:{line}" in report["message"]
        frame = report["exceptions"][-1]["frames"][-1]
        assert (frame["function"], frame["lineno"]) == ("price", line)
        answer = broker.evaluate(report["id"], frame_index(report, "price"), "subtotal")
        assert node_text(answer.json()["result"]) in ("300", "500")

    # A pause at a breakpoint steps like one at breakpoint(): over, to the next line.
    stepped_from = pauses[0]
    answer = broker.post(f"/api/reports/{stepped_from['id']}/step", {"action": "over"})
    assert answer.status == 200, answer.text
    following = wait_for(
        lambda: broker.report(stepped_from["id"])["next_pause"], what="the pause after the step"
    )
    after = broker.report(following)
    frame = after["exceptions"][-1]["frames"][-1]
    assert (frame["function"], frame["lineno"]) == ("price", line + 1)
    answer = broker.evaluate(after["id"], frame_index(after, "price"), "total")
    assert node_text(answer.json()["result"]) in ("270", "450")
    for report in (after, pauses[1]):
        assert broker.post(f"/api/reports/{report['id']}/continue", {}).status == 200
    first.join(30)
    second.join(30)
    assert first_answers[0].text.startswith("3 items: 270")
    assert second_answers[0].text.startswith("5 items: 450")
    wait_for(  # hit counts alone come within a second
        lambda: sorted(state["hits"] for state in states(broker, made["id"]).values()) == [0, 1, 1],
        what="a hit in each of two workers",
    )

    # Disabled, it no longer pauses; removed, neither.
    assert call(broker, "PATCH", f"/api/breakpoints/{made['id']}", {"enabled": False}).status == 200
    in_every_worker(broker, made["id"], "disabled")
    assert server.get("/price?n=1").text.startswith("1 items: 90")
    assert call(broker, "DELETE", f"/api/breakpoints/{made['id']}").status == 200
    assert server.get("/price?n=2").text.startswith("2 items: 180")
    assert len(paused_reports(broker)) == 3


def test_hostile_breakpoints_are_bounded_and_say_why(
    broker: Broker, start_app: Callable[..., AppServer], app_file: Path
) -> None:
    server = start_app()
    helper_line = line_of(APP, "return amount - discount")
    raising = set_breakpoint(broker, app_file, helper_line, condition="1 / 0")
    looping = set_breakpoint(
        broker,
        app_file,
        line_of(APP, "discount = amount // 10"),
        condition="all(True for _ in iter(int, 1))",
    )
    blank = set_breakpoint(broker, app_file, line_of(APP, "def with_discount") - 1)
    in_every_worker(broker, raising["id"], "armed")
    in_every_worker(broker, looping["id"], "armed")
    for state in in_every_worker(broker, blank["id"], "refused").values():
        assert state["reason"] == f"no code on line {line_of(APP, 'def with_discount') - 1}"

    # Each request answers right, in bounded time; the conditions' failures are in the states.
    for count in (1, 2, 3, 4):
        started = time.monotonic()
        assert server.get(f"/price?n={count}", timeout=30).text.startswith(f"{count} items")
        assert time.monotonic() - started < 10
    wait_for(
        lambda: any(s["status"] == "error" for s in states(broker, raising["id"]).values()),
        what="the raising condition's error",
    )
    for state in states(broker, raising["id"]).values():
        if state["status"] == "error":
            assert "ZeroDivisionError" in state["reason"]
    wait_for(
        lambda: any(s["status"] == "refused" for s in states(broker, looping["id"]).values()),
        what="the looping condition switched off",
    )
    for state in states(broker, looping["id"]).values():
        if state["status"] == "refused":
            assert "ran over" in state["reason"]
    assert paused_reports(broker) == []

    # The file changed on disk after the workers loaded it: armed, with a warning.
    app_file.write_text("# a new first line\n" + APP.read_text(encoding="utf-8"), encoding="utf-8")
    moved = set_breakpoint(broker, app_file, line_of(APP, "subtotal = count * 100"))
    for state in in_every_worker(broker, moved["id"], "armed").values():
        assert "changed on disk" in state["warning"]


def test_an_agent_with_evalex_false_refuses_breakpoints(
    broker: Broker, start_app: Callable[..., AppServer], app_file: Path
) -> None:
    # Without evals there is no console either: an agent starts with its worker's first request.
    server = start_app(workers=None, BREAKPOINTS_EVALEX="0")
    assert server.get("/price?n=1").status == 200
    wait_for(lambda: any(a["app"] == APP_NAME for a in broker.live_agents()), what="an agent")
    made = set_breakpoint(broker, app_file, line_of(APP, "total = with_discount(subtotal)"))
    for state in in_every_worker(broker, made["id"], "refused").values():
        assert "evalex=False" in state["reason"]
    assert server.get("/price?n=2").text.startswith("2 items: 180")
    assert paused_reports(broker) == []


def test_a_breakpoint_in_an_async_helper_pauses_under_uvicorn(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    source = Path(__file__).parent / "apps" / "breakpoints_asgi.py"
    command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "breakpoints_asgi:app"]
    server = start_server(command, broker.agent_env(), name="uvicorn")
    agent = wait_for(
        lambda: next((a for a in broker.live_agents() if a["app"] == "breakpoints-asgi"), None),
        what="the uvicorn agent",
    )
    lines = source.read_text(encoding="utf-8").splitlines()
    line = next(number for number, text in enumerate(lines, 1) if "doubled = n * 2" in text)
    body = {"app": "breakpoints-asgi", "file": str(source), "line": line, "condition": "n > 2"}
    made = call(broker, "POST", "/api/breakpoints", body).json()["breakpoint"]
    wait_for(
        lambda: states(broker, made["id"]).get(agent["agent_id"], {}).get("status") == "armed",
        what="armed in the uvicorn worker",
    )
    assert server.get("/double?n=2").text == "2 doubled: 4"  # the condition does not hold
    request, answers = server.get_in_background("/double?n=21", timeout=90)
    paused = wait_for(lambda: next(iter(paused_reports(broker)), None), what="the pause")
    report = broker.report(paused["id"])
    frame = report["exceptions"][-1]["frames"][-1]
    assert (frame["function"], frame["lineno"]) == ("compute", line)
    answer = broker.evaluate(report["id"], frame_index(report, "compute"), "n")
    assert node_text(answer.json()["result"]) == "21"
    assert broker.post(f"/api/reports/{report['id']}/continue", {}).status == 200
    request.join(30)
    assert answers and answers[0].text == "21 doubled: 42"
