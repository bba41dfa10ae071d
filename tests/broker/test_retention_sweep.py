"""The store-wide retention runs on its own while no report comes in (a real broker).

Retention used to run only with a batch of new reports, so a stack gone quiet kept reports
past ``--retain-days``, and the reports a group kept only because their frames were held
stayed after the agent let them go. The broker now sweeps every ``--sweep-seconds`` (a
hidden option; 300 s by default) when no report brought a sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from debugbroker.protocol import Released, ReportMessage, Welcome
from tests.broker.test_report_storm import _report
from tests.broker.test_security_agents import RawAgent
from tests.conftest import Broker, wait_for


@pytest.fixture
def agent_of() -> Iterator[list[RawAgent]]:
    agents: list[RawAgent] = []
    yield agents
    for raw in agents:
        raw.close()


def _agent(broker: Broker, agents: list[RawAgent]) -> tuple[RawAgent, str]:
    raw = RawAgent(broker.zmq_url)
    agents.append(raw)
    assert isinstance(raw.hello(broker.secret), Welcome)
    return raw, raw.identity.decode()


def _group(broker: Broker) -> dict[str, tuple[int, int]]:
    answer = broker.get("/api/groups")
    assert answer.status == 200, answer.text
    return {g["fingerprint"]: (g["count"], g["kept"]) for g in answer.json()["groups"]}


async def _release_and_watch(broker: Broker, raw: RawAgent, ids: list[str]) -> dict[str, Any]:
    """Release the reports' frames with a WebSocket open; the retention event it brings."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(broker.url + "/api/ws", headers=broker.auth()) as ws:
            raw.send_message(Released(report_ids=tuple(ids)))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = await ws.receive(timeout=max(deadline - time.monotonic(), 0.1))
                event: dict[str, Any] = json.loads(message.data)
                if event.get("type") == "triage":
                    return event
    raise AssertionError("no retention event within 30 s of the release")


def test_released_frames_let_a_quiet_group_shrink_to_its_window(
    tmp_path: Path, agent_of: list[RawAgent]
) -> None:
    broker = Broker(
        tmp_path, "--keep-first", "1", "--keep-latest", "1", "--sweep-seconds", "0.3"
    ).start()
    try:
        raw, agent_id = _agent(broker, agent_of)
        ids = []
        for number in range(5):
            report = dataclasses.replace(
                _report(agent_id, number, frame_id=f"held-{number}"), created=time.time()
            )
            raw.send_message(ReportMessage(report=report))
            ids.append(report.id)
        wait_for(lambda: len(broker.reports()) == 5, what="five reports stored")
        assert list(_group(broker).values()) == [(5, 5)]  # every one holds frames: kept
        event = asyncio.run(_release_and_watch(broker, raw, ids))  # nothing more comes in
        assert event == {"type": "triage", "action": "retention", "deleted": 3}
        assert list(_group(broker).values()) == [(5, 2)]  # counted, trimmed to its window
        kept = {report["id"] for report in broker.reports()}
        assert kept == {ids[0], ids[-1]}
    finally:
        broker.stop()


def test_reports_past_their_age_go_while_no_report_comes_in(
    tmp_path: Path, agent_of: list[RawAgent]
) -> None:
    days = 2.0 / 86_400  # two seconds
    broker = Broker(tmp_path, "--retain-days", repr(days), "--sweep-seconds", "0.3").start()
    try:
        raw, agent_id = _agent(broker, agent_of)
        report = dataclasses.replace(_report(agent_id, 0), created=time.time())
        raw.send_message(ReportMessage(report=report))
        wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="stored")
        wait_for(
            lambda: broker.get(f"/api/reports/{report.id}").status == 404,
            what="the report deleted at its age, with no other report to bring a sweep",
        )
        wait_for(lambda: _group(broker) == {}, what="its group gone with it")
    finally:
        broker.stop()
