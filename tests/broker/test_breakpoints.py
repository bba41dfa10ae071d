"""Breakpoints over the HTTP API, against a real broker and a real agent in this process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from debugbroker.agent.breakpoints import armed_code, trace_this_thread
from debugbroker.agent.options import Options
from debugbroker.agent.process import breakpoint_handler, eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Hello, SetBreakpoints, Welcome, keys
from tests.broker.test_security_agents import RawAgent
from tests.conftest import Broker, http, wait_for

VIEW_TOKEN = "view-token-123456"


def checkout(total: int) -> int:
    discount = total // 10
    return total - discount  # the breakpoint's line: LINE + 1


LINE = checkout.__code__.co_firstlineno + 1


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    started = Broker(tmp_path, "--view-token", VIEW_TOKEN).start()
    yield started
    started.stop()


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = Transport(
        Options(
            broker_url=broker.zmq_url,
            secret=broker.secret,
            app_name="shop",
            heartbeat_seconds=0.2,
        ),
        eval_dispatcher,
        breakpoint_handler,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()
    trace_this_thread()


def call(broker: Broker, method: str, path: str, body: object = None, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token or broker.token}"}
    return http(method, broker.url + path, headers=headers, json_body=body)


def listed(broker: Broker) -> list[dict[str, Any]]:
    answer = broker.get("/api/breakpoints")
    assert answer.status == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["breakpoints"]
    return found


def state_in(broker: Broker, agent: Transport, breakpoint_id: str) -> str:
    for breakpoint in listed(broker):
        if breakpoint["id"] == breakpoint_id:
            return str(breakpoint["states"].get(agent.agent_id, {}).get("status", ""))
    return "removed"


def test_a_breakpoint_is_armed_hit_listed_changed_and_removed(
    broker: Broker, agent: Transport
) -> None:
    answer = call(
        broker, "POST", "/api/breakpoints", {"app": "shop", "file": __file__, "line": LINE}
    )
    assert answer.status == 201, answer.text
    breakpoint = answer.json()["breakpoint"]
    assert breakpoint["app"] == "shop" and breakpoint["agent_id"] == ""
    wait_for(lambda: state_in(broker, agent, breakpoint["id"]) == "armed", what="armed")
    assert checkout.__code__ in armed_code()

    # A hit: a paused report, as breakpoint() makes; Continue lets the thread finish.
    results: list[int] = []

    def request_thread() -> None:
        trace_this_thread()  # what the middleware does per request on 3.10/3.11
        results.append(checkout(200))

    thread = threading.Thread(target=request_thread)
    thread.start()
    wait_for(lambda: any(r["type_name"] == "Paused" for r in broker.reports()), what="pause")
    paused = next(r for r in broker.reports() if r["type_name"] == "Paused")
    report = broker.report(paused["id"])
    assert report["paused"] and report["resumable"]
    assert f"breakpoint at test_breakpoints.py:{LINE}" in report["message"]
    frame = report["exceptions"][0]["frames"][-1]
    assert frame["function"] == "checkout" and frame["lineno"] == LINE
    assert broker.post(f"/api/reports/{paused['id']}/continue", {}).status == 200
    thread.join(20)
    assert results == [180]
    wait_for(
        lambda: listed(broker)[0]["states"][agent.agent_id]["hits"] == 1, what="the hit counted"
    )

    changed = call(broker, "PATCH", f"/api/breakpoints/{breakpoint['id']}", {"enabled": False})
    assert changed.status == 200 and changed.json()["breakpoint"]["enabled"] is False
    wait_for(lambda: state_in(broker, agent, breakpoint["id"]) == "disabled", what="disabled")
    assert checkout(100) == 90

    removed = call(broker, "DELETE", f"/api/breakpoints/{breakpoint['id']}")
    assert removed.status == 200
    assert listed(broker) == []
    wait_for(lambda: checkout.__code__ not in armed_code(), what="disarmed in the agent")
    audit = broker.get("/api/audit?limit=50").json()["entries"]
    actions = [entry["action"] for entry in audit if entry["action"].startswith("breakpoint_")]
    assert sorted(actions) == ["breakpoint_changed", "breakpoint_removed", "breakpoint_set"]


def test_refusals_come_back_as_states_with_their_reasons(broker: Broker, agent: Transport) -> None:
    blank = LINE + 2  # the blank line after checkout
    for line, condition in ((blank, ""), (LINE, ""), (LINE - 1, "total ==")):
        body = {"agent_id": agent.agent_id, "file": __file__, "line": line}
        if condition:
            body["condition"] = condition
        assert call(broker, "POST", "/api/breakpoints", body).status == 201
    wait_for(lambda: len([b for b in listed(broker) if b["states"]]) == 3, what="states")
    states = {b["line"]: b["states"][agent.agent_id] for b in listed(broker)}
    assert states[blank]["status"] == "refused"
    assert states[blank]["reason"] == f"no code on line {blank}"
    assert states[LINE]["status"] == "armed"
    assert states[LINE - 1]["status"] == "refused"
    assert states[LINE - 1]["reason"].startswith("the condition is not an expression")
    assert all(b["app"] == "shop" and b["agent_id"] == agent.agent_id for b in listed(broker))


def test_an_agent_of_an_unnamed_app_gets_its_own_breakpoint(broker: Broker) -> None:
    """capture_exception or logging in a process without DEBUGBROKER_APP: no app to name, so
    only a breakpoint for that one agent; it is armed there."""
    options = Options(broker_url=broker.zmq_url, secret=broker.secret, heartbeat_seconds=0.2)
    transport = Transport(options, eval_dispatcher, breakpoint_handler)
    try:
        assert transport.wait_connected(20), "the agent was not welcomed"
        body = {"agent_id": transport.agent_id, "file": __file__, "line": LINE}
        answer = call(broker, "POST", "/api/breakpoints", body)
        assert answer.status == 201, answer.text
        assert answer.json()["breakpoint"]["app"] == ""
        made = answer.json()["breakpoint"]["id"]
        wait_for(lambda: state_in(broker, transport, made) == "armed", what="armed")
    finally:
        transport.close()
        trace_this_thread()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"app": "shop", "file": "x.py", "line": 0}, "line must be"),
        ({"app": "shop", "file": "", "line": 3}, "file must be"),
        ({"file": "x.py", "line": 3}, "which app"),
        ({"app": "shop", "file": "x.py", "line": 3, "hit_count": -1}, "hit_count"),
        ({"app": "shop", "file": "x.py", "line": 3, "enabled": "yes"}, "enabled"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_breakpoints_are_refused_with_the_reason(
    broker: Broker, body: object, why: str
) -> None:
    answer = call(broker, "POST", "/api/breakpoints", body)
    assert answer.status == 400 and why in answer.json()["error"], answer.text


def test_an_unknown_agent_is_not_found(broker: Broker) -> None:
    body = {"agent_id": "nobody", "file": "x.py", "line": 3}
    answer = call(broker, "POST", "/api/breakpoints", body)
    assert answer.status == 404 and "no agent" in answer.json()["error"]


def test_a_view_only_token_cannot_set_change_or_remove_breakpoints(broker: Broker) -> None:
    body = {"app": "shop", "file": "x.py", "line": 3}
    made = call(broker, "POST", "/api/breakpoints", body).json()["breakpoint"]
    assert call(broker, "GET", "/api/breakpoints", token=VIEW_TOKEN).status == 200
    assert call(broker, "POST", "/api/breakpoints", body, token=VIEW_TOKEN).status == 403
    path = f"/api/breakpoints/{made['id']}"
    assert call(broker, "PATCH", path, {"enabled": False}, token=VIEW_TOKEN).status == 403
    assert call(broker, "DELETE", path, token=VIEW_TOKEN).status == 403
    assert [b["enabled"] for b in listed(broker)] == [True]
    audit = broker.get("/api/audit?limit=50").json()["entries"]
    refused = [e["action"] for e in audit if e["outcome"] == "refused"]
    assert sorted(refused) == ["breakpoint_changed", "breakpoint_removed", "breakpoint_set"]


def test_breakpoints_survive_a_broker_restart_and_reach_the_reconnected_agent(
    broker: Broker, agent: Transport
) -> None:
    body = {"app": "shop", "file": __file__, "line": LINE, "condition": "total > 5"}
    made = call(broker, "POST", "/api/breakpoints", body).json()["breakpoint"]
    wait_for(lambda: state_in(broker, agent, made["id"]) == "armed", what="armed")
    broker.stop()
    broker.start()  # the same data dir and ports
    assert [b["id"] for b in listed(broker)] == [made["id"]]
    assert listed(broker)[0]["condition"] == "total > 5"
    wait_for(lambda: state_in(broker, agent, made["id"]) == "armed", what="armed again")
    assert checkout.__code__ in armed_code()


def raw_hello(raw: RawAgent, secret: str, breakpoints: int) -> None:
    agent_id = raw.identity.decode()
    nonce = uuid.uuid4().hex
    raw.send_message(
        Hello(
            agent_id=agent_id,
            nonce=nonce,
            proof=keys.hello_proof(secret, agent_id, nonce),
            pid=1,
            host="raw",
            app="raw",
            python="3",
            started=time.time(),
            evalex=True,
            breakpoints=breakpoints,
        )
    )
    assert isinstance(raw.receive(), Welcome)


def test_the_list_follows_each_welcome_and_each_change(broker: Broker) -> None:
    fresh = RawAgent(broker.zmq_url)
    stale = RawAgent(broker.zmq_url)
    try:
        raw_hello(fresh, broker.secret, breakpoints=0)
        assert fresh.receive(timeout=0.5) is None  # nothing to arm, nothing armed: no list
        body = {"app": "raw", "file": "/srv/raw.py", "line": 7, "condition": "x"}
        made = call(broker, "POST", "/api/breakpoints", body).json()["breakpoint"]
        sent = fresh.receive()
        assert isinstance(sent, SetBreakpoints)
        assert [(b.id, b.file, b.line, b.condition) for b in sent.breakpoints] == [
            (made["id"], "/srv/raw.py", 7, "x")
        ]
        assert call(broker, "DELETE", f"/api/breakpoints/{made['id']}").status == 200
        assert fresh.receive() == SetBreakpoints()
        # An agent that still holds breakpoints the broker no longer has: an empty list.
        raw_hello(stale, broker.secret, breakpoints=2)
        assert stale.receive() == SetBreakpoints()
    finally:
        fresh.close()
        stale.close()
