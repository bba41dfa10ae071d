"""End to end: stepping a thread paused at ``breakpoint()`` through the broker's HTTP API,
in a real gunicorn worker (tests/e2e/apps/stepping_wsgi.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AppServer, Broker, frame_index, line_of, node_text, wait_for

APP = Path(__file__).parent / "apps" / "stepping_wsgi.py"
VIEW_TOKEN = "view-token-stepping"


def first_pause(broker: Broker) -> dict[str, Any]:
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "Paused"), None),
        what="the paused report",
    )
    return broker.report(summary["id"])


def step(broker: Broker, report: dict[str, Any], action: str, **extra: Any) -> dict[str, Any]:
    """Take a step from ``report``; the next paused report, linked to it by ``step_of``."""
    answer = broker.post(f"/api/reports/{report['id']}/step", {"action": action, **extra})
    assert answer.status == 200, answer.text
    following = wait_for(
        lambda: broker.report(report["id"])["next_pause"], what=f"the pause after step {action}"
    )
    return broker.report(following)


def where(report: dict[str, Any]) -> tuple[str, int]:
    """The function and line the paused thread stands at (the innermost frame)."""
    frame = report["exceptions"][-1]["frames"][-1]
    return frame["function"], frame["lineno"]


@pytest.fixture
def stepping_server(
    broker: Broker, start_server: Callable[..., AppServer]
) -> Callable[[], AppServer]:
    def start() -> AppServer:
        env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
        command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4", "{bind}"]
        return start_server([*command, "stepping_wsgi:app"], env, name="gunicorn")

    return start


def test_step_over_into_out_and_continue_through_a_real_worker(
    broker: Broker, stepping_server: Callable[[], AppServer]
) -> None:
    server = stepping_server()
    request, answers = server.get_in_background("/checkout", timeout=90)
    paused = first_pause(broker)
    assert where(paused) == ("checkout", line_of(APP, "breakpoint()  #"))

    # Step over twice: each stop is a new paused report, held, linked to the one before.
    first = step(broker, paused, "over")
    assert where(first) == ("checkout", line_of(APP, "count = len(basket)"))
    assert first["step_of"] == paused["id"] and first["step"] == "over"
    assert first["resumable"] is True and first["stepped_by"] is not None
    wait_for(lambda: broker.report(paused["id"])["resumable"] is False, what="old pause ended")
    second = step(broker, first, "over")
    assert where(second) == ("checkout", line_of(APP, "subtotal = sum("))
    answer = broker.evaluate(second["id"], frame_index(second, "checkout"), "count")
    assert answer.status == 200, answer.text
    assert node_text(answer.json()["result"]) == "2"

    # Over the subtotal line, then into the helper, a step in it, and out to the caller.
    third = step(broker, second, "over")
    assert where(third) == ("checkout", line_of(APP, "total = with_tax("))
    inside = step(broker, third, "into")
    assert where(inside) == ("with_tax", line_of(APP, "tax = amount // 10"))
    answer = broker.evaluate(inside["id"], frame_index(inside, "with_tax"), "amount")
    assert node_text(answer.json()["result"]) == "70"
    out = step(broker, inside, "out")
    assert where(out) == ("checkout", line_of(APP, "summary = f"))
    answer = broker.evaluate(out["id"], frame_index(out, "checkout"), "total")
    assert node_text(answer.json()["result"]) == "77"

    # Continue: the request completes with the right answer; nothing pauses again.
    assert broker.post(f"/api/reports/{out['id']}/step", {"action": "continue"}).status == 200
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
    wait_for(lambda: broker.report(out["id"])["resumable"] is False, what="not resumable")
    assert len([r for r in broker.reports() if r["type_name"] == "Paused"]) == 6

    # Each step and the continue are in the audit log, with who took them.
    entries = broker.get("/api/audit").json()["entries"]
    actions = [e["action"] for e in entries if e["action"].startswith("step")]
    assert sorted(actions) == sorted(
        ["step_over", "step_over", "step_over", "step_into", "step_out", "step_continue"]
    )
    assert all(e["outcome"] == "ok" for e in entries if e["action"].startswith("step"))


def test_run_to_a_line_then_the_worker_still_serves_other_requests(
    broker: Broker, stepping_server: Callable[[], AppServer]
) -> None:
    server = stepping_server()
    request, answers = server.get_in_background("/checkout", timeout=90)
    paused = first_pause(broker)
    target = line_of(APP, "summary = f")
    there = step(broker, paused, "until", line=target)
    assert where(there) == ("checkout", target) and there["step"] == "until"
    assert server.get("/").text == "ok"  # only the stepped thread waits
    assert broker.post(f"/api/reports/{there['id']}/continue", {}).status == 200
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"


def test_bad_steps_are_refused_with_a_clear_error(
    broker: Broker, stepping_server: Callable[[], AppServer]
) -> None:
    server = stepping_server()
    request, answers = server.get_in_background("/checkout", timeout=90)
    paused = first_pause(broker)
    path = f"/api/reports/{paused['id']}/step"
    bad = broker.post(path, {"action": "sideways"})
    assert bad.status == 400 and "action" in bad.json()["error"]
    assert broker.post(path, {"action": "until"}).status == 400  # no line
    assert broker.post(path, {"action": "until", "line": "3"}).status == 400
    assert broker.post(path, ["over"]).status == 400
    assert broker.post("/api/reports/nope/step", {"action": "over"}).status == 404
    # Nothing moved: the same pause still waits, and one good step moves it.
    assert broker.report(paused["id"])["resumable"] is True
    assert broker.post(path, {"action": "continue"}).status == 200
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
    again = broker.post(path, {"action": "over"})
    assert again.status == 409 and "not paused" in again.json()["error"]


def test_a_view_only_token_cannot_step_and_is_audited(
    tmp_path: Path, start_server: Callable[..., AppServer]
) -> None:
    broker = Broker(tmp_path, "--view-token", VIEW_TOKEN).start()
    try:
        env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
        command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4", "{bind}"]
        server = start_server([*command, "stepping_wsgi:app"], env, name="gunicorn")
        request, answers = server.get_in_background("/checkout", timeout=90)
        paused = first_pause(broker)
        viewer = {"Authorization": f"Bearer {VIEW_TOKEN}"}
        path = f"/api/reports/{paused['id']}/step"
        refused = broker.post(path, {"action": "over"}, headers=viewer)
        assert refused.status == 403
        entries = broker.get("/api/audit").json()["entries"]
        assert [e["outcome"] for e in entries if e["action"].startswith("step")] == ["refused"]
        assert broker.report(paused["id"])["resumable"] is True
        assert broker.post(path, {"action": "continue"}).status == 200
        request.join(30)
        assert answers and answers[0].text == "2 items, total 77"
    finally:
        broker.stop()


def test_an_agent_with_evalex_off_refuses_steps_but_continues(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace", STEPPING_EVALEX="0")
    command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4", "{bind}"]
    server = start_server([*command, "stepping_wsgi:app"], env, name="gunicorn")
    request, answers = server.get_in_background("/checkout", timeout=90)
    paused = first_pause(broker)
    path = f"/api/reports/{paused['id']}/step"
    refused = broker.post(path, {"action": "into"})
    assert refused.status == 403 and "evalex=False" in refused.json()["error"]
    assert broker.report(paused["id"])["resumable"] is True
    assert broker.post(path, {"action": "continue"}).status == 200
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"


def test_a_broker_that_disappears_lets_a_stepped_thread_go_on(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(
        PYTHONBREAKPOINT="debugbroker.set_trace", DEBUGBROKER_PAUSE_NO_BROKER="1"
    )
    command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4", "{bind}"]
    server = start_server([*command, "stepping_wsgi:app"], env, name="gunicorn")
    request, answers = server.get_in_background("/checkout", timeout=90)
    first = step(broker, first_pause(broker), "over")
    assert where(first) == ("checkout", line_of(APP, "count = len(basket)"))
    broker.kill()  # gone for good: the paused thread must not wait 300 s for it
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
    assert "no broker for 1s, continuing" in server.process.output()
