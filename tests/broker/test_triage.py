"""Triage over HTTP against a real broker: states, regression, mutes, deletes, clear-all.

A raw agent (a real zmq DEALER speaking the protocol) sends reports; the broker keeps each
group's first and latest reports (``--keep-first 1 --keep-latest 2``) and counts the rest.
Every triage request needs the full token, is audited, and is announced on the WebSocket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from debugbroker.protocol import ReportMessage, Welcome
from tests.broker.test_security_agents import RawAgent, a_report
from tests.conftest import Broker, http, wait_for

VIEW_TOKEN = "view-token-123456"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(
        tmp_path, "--view-token", VIEW_TOKEN, "--keep-first", "1", "--keep-latest", "2"
    ).start()
    yield broker
    broker.stop()


@pytest.fixture
def agent(started: Broker) -> Iterator[RawAgent]:
    raw = RawAgent(started.zmq_url)
    assert isinstance(raw.hello(started.secret), Welcome)
    yield raw
    raw.close()


def send(broker: Broker, agent: RawAgent, type_name: str = "ValueError") -> str:
    """One report (grouped by its type: it has no frames); returns once it is stored."""
    report = dataclasses.replace(
        a_report(agent.identity.decode()), id=uuid.uuid4().hex, type_name=type_name
    )
    agent.send_message(ReportMessage(report=report))
    wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="the report")
    return report.id


def groups(broker: Broker) -> dict[str, dict[str, Any]]:
    answer = broker.get("/api/groups")
    assert answer.status == 200, answer.text
    return {group["latest"]["type_name"]: group for group in answer.json()["groups"]}


def as_viewer(broker: Broker, method: str, path: str, body: object = None) -> int:
    headers = {"Authorization": f"Bearer {VIEW_TOKEN}"}
    return http(method, broker.url + path, headers=headers, json_body=body).status


def test_a_storm_is_counted_exactly_and_kept_first_and_latest(
    started: Broker, agent: RawAgent
) -> None:
    sent = [send(started, agent) for _ in range(8)]
    group = groups(started)["ValueError"]
    assert (group["count"], group["kept"]) == (8, 3)
    assert group["state"] == "open" and sum(group["hourly"]) == 8
    kept = {report["id"] for report in started.reports()}
    assert kept == {sent[0], sent[-2], sent[-1]}


def test_resolve_regresses_and_a_mute_ends_after_n_more(started: Broker, agent: RawAgent) -> None:
    send(started, agent)
    send(started, agent, "KeyError")
    key = groups(started)["ValueError"]["fingerprint"]
    other = groups(started)["KeyError"]["fingerprint"]
    resolved = started.post(f"/api/groups/{key}/state", {"state": "resolved"})
    assert resolved.status == 200, resolved.text
    assert groups(started)["ValueError"]["state"] == "resolved"
    send(started, agent)
    assert groups(started)["ValueError"]["state"] == "regressed"

    muted = started.post(f"/api/groups/{other}/state", {"state": "muted", "occurrences": 2})
    assert muted.status == 200, muted.text
    send(started, agent, "KeyError")
    group = groups(started)["KeyError"]
    assert (group["state"], group["mute_remaining"]) == ("muted", 1)
    send(started, agent, "KeyError")
    assert groups(started)["KeyError"]["state"] == "open"
    for_a_while = started.post(f"/api/groups/{other}/state", {"state": "muted", "minutes": 5})
    assert for_a_while.status == 200
    group = groups(started)["KeyError"]
    assert group["state"] == "muted" and group["mute_until"] > time.time() + 200
    assert started.post(f"/api/groups/{other}/state", {"state": "ignored"}).status == 200
    send(started, agent, "KeyError")
    assert groups(started)["KeyError"]["state"] == "ignored"


@pytest.mark.parametrize(
    "body",
    [
        {"state": "bogus"},
        {"state": "muted"},
        {"state": "muted", "minutes": 5, "occurrences": 3},
        {"state": "muted", "minutes": -1},
        {"state": "muted", "occurrences": True},
        {"state": "resolved", "minutes": 5},
        ["resolved"],
    ],
)
def test_bad_triage_bodies_are_refused_clearly(
    started: Broker, agent: RawAgent, body: object
) -> None:
    send(started, agent)
    key = groups(started)["ValueError"]["fingerprint"]
    answer = started.post(f"/api/groups/{key}/state", body)
    assert answer.status == 400 and answer.json()["error"]
    assert started.post("/api/groups/0123456789abcdef/state", {"state": "open"}).status == 404
    assert started.post("/api/groups/not-hex!/state", {"state": "open"}).status == 404


def test_the_view_token_gets_403_and_every_attempt_is_audited(
    started: Broker, agent: RawAgent
) -> None:
    report_id = send(started, agent)
    key = groups(started)["ValueError"]["fingerprint"]
    attempts = [
        ("POST", f"/api/groups/{key}/state", {"state": "resolved"}),
        ("DELETE", f"/api/groups/{key}", None),
        ("DELETE", f"/api/reports/{report_id}", None),
        ("POST", "/api/clear", {"confirm": "delete everything"}),
    ]
    assert [as_viewer(started, *attempt) for attempt in attempts] == [403] * 4
    assert groups(started)["ValueError"]["state"] == "open" and started.reports()
    entries = started.get("/api/audit").json()["entries"]
    refused = {(e["action"], e["role"], e["outcome"]) for e in entries if e["role"] == "view"}
    assert refused == {
        ("group_state", "view", "refused"),
        ("group_deleted", "view", "refused"),
        ("report_deleted", "view", "refused"),
        ("store_cleared", "view", "refused"),
    }


async def _events(broker: Broker, actions: list[tuple[str, str, object]]) -> list[dict[str, Any]]:
    """Do ``actions`` (method, path, body) with a WebSocket open; the triage events seen."""
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(broker.url + "/api/ws", headers=broker.auth()) as ws:
            for method, path, body in actions:
                answer = await asyncio.to_thread(
                    http, method, broker.url + path, headers=broker.auth(), json_body=body
                )
                assert answer.status == 200, answer.text
            deadline = time.monotonic() + 30
            while len(seen) < len(actions) and time.monotonic() < deadline:
                message = await ws.receive(timeout=max(deadline - time.monotonic(), 0.1))
                event = json.loads(message.data)
                if event.get("type") == "triage":
                    seen.append(event)
    return seen


def test_deletes_and_clear_all_are_announced_and_counted(started: Broker, agent: RawAgent) -> None:
    values = [send(started, agent) for _ in range(3)]
    keys = [send(started, agent, "KeyError") for _ in range(2)]
    key = groups(started)["KeyError"]["fingerprint"]
    unconfirmed = started.post("/api/clear", {"confirm": "yes"})
    assert unconfirmed.status == 400 and "delete everything" in unconfirmed.json()["error"]
    events = asyncio.run(
        _events(
            started,
            [
                ("DELETE", f"/api/reports/{values[0]}", None),
                ("DELETE", f"/api/groups/{key}", None),
            ],
        )
    )
    assert [(e["action"], e.get("report_id"), e.get("fingerprint")) for e in events] == [
        ("report_deleted", values[0], None),
        ("group_deleted", None, key),
    ]
    assert started.get(f"/api/reports/{keys[0]}").status == 404
    group = groups(started)["ValueError"]
    assert (group["count"], group["kept"]) == (3, 2)  # seen stays seen
    again = http("DELETE", f"{started.url}/api/reports/{values[0]}", headers=started.auth())
    assert again.status == 404
    cleared = started.post("/api/clear", {"confirm": "delete everything"})
    assert cleared.status == 200 and cleared.json()["deleted"] == 2
    assert started.get("/api/groups").json()["groups"] == [] and started.reports() == []
    actions = [e["action"] for e in started.get("/api/audit").json()["entries"]]
    assert {"report_deleted", "group_deleted", "store_cleared"} <= set(actions)


def test_groups_filter_by_state_and_page_with_a_total(started: Broker, agent: RawAgent) -> None:
    names = [f"Error{n}" for n in range(7)]
    for name in names:
        send(started, agent, name)
    keys = {name: group["fingerprint"] for name, group in groups(started).items()}
    for name, state in (("Error0", "resolved"), ("Error1", "resolved"), ("Error2", "ignored")):
        assert started.post(f"/api/groups/{keys[name]}/state", {"state": state}).status == 200
    send(started, agent, "Error1")  # resolved, then back: regressed

    def page(**query: str) -> dict[str, Any]:
        answer = started.get("/api/groups?" + urllib.parse.urlencode(query))
        assert answer.status == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def names_of(found: dict[str, Any]) -> list[str]:
        return [group["latest"]["type_name"] for group in found["groups"]]

    assert (names_of(page(state="resolved")), page(state="resolved")["total"]) == (["Error0"], 1)
    assert names_of(page(state="regressed")) == ["Error1"]
    assert names_of(page(state="ignored")) == ["Error2"]
    attention = page(state="attention")
    assert attention["total"] == 5 and set(names_of(attention)) == {"Error1", *names[3:]}
    assert page(state="muted") == {"groups": [], "total": 0}
    # Pages of 3, newest first: a group seen again after its page was read moves to the top
    # (the live stream counts it in there), never onto a later page a second time.
    seen: list[str] = []
    query = {"limit": "3"}
    while True:
        found = page(**query)
        assert found["total"] >= 7
        seen += names_of(found)
        if len(found["groups"]) < 3:
            break
        last = found["groups"][-1]
        query = {"limit": "3", "before": repr(last["last_seen"]), "before_key": last["fingerprint"]}
        if len(seen) == 3:
            send(started, agent, seen[1])
    assert sorted(seen) == sorted(names) and len(seen) == 7
    for bad in ("state=bogus", "before=soon", "before=nan", "limit=0", "before_key=" + "k" * 200):
        answer = started.get(f"/api/groups?{bad}")
        assert answer.status == 400 and answer.json()["error"], bad
