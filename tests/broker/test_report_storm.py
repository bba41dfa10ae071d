"""A burst of reports into a real broker process: batched, yet each one stored and announced.

A raw zmq DEALER says hello and sends reports back to back, as an agent does in an error
storm. The broker writes them in batches (``Store.queue_report``); every report must still
be announced on the WebSocket exactly once, in the order sent, only once it is stored, and
a ``Released`` sent right behind a report must win over the report's own "frames held".
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import msgpack

from debugbroker import protocol
from debugbroker.protocol import (
    ExceptionInfo,
    FrameInfo,
    Released,
    Report,
    ReportMessage,
    Welcome,
)
from tests.broker.test_security_agents import RawAgent, status
from tests.conftest import Broker, wait_for

REPORTS = 1_500
DEADLINE = 90.0


def _report(agent_id: str, number: int, frame_id: str | None = None) -> Report:
    frame = FrameInfo(
        index=0,
        frame_id=frame_id,
        filename="app.py",
        lineno=3,
        function="view",
        module="app",
        context_start=1,
        context=("def view():", "    x = 1", "    raise ValueError(x)"),
        locals=(),
    )
    return Report(
        id=f"storm-{number:05d}",
        agent_id=agent_id,
        created=time.time(),
        type_name="ValueError",
        message=f"error {number}",
        text="Traceback...\nValueError: 1\n",
        exceptions=(
            ExceptionInfo(type_name="ValueError", module="builtins", message="1", frames=(frame,)),
        ),
        pid=1,
        host="raw",
        app="raw",
    )


def _send_storm(agent: RawAgent, agent_id: str) -> None:
    agent.send_message(ReportMessage(report=_report(agent_id, 0, frame_id="held-0")))
    agent.send_message(Released(report_ids=("storm-00000",)))  # right behind its report
    for number in range(1, REPORTS):
        agent.send_message(ReportMessage(report=_report(agent_id, number)))


async def _storm(broker: Broker, agent: RawAgent, agent_id: str) -> list[str]:
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(broker.url + "/api/ws", headers=broker.auth()) as ws:
            sending = asyncio.create_task(asyncio.to_thread(_send_storm, agent, agent_id))
            deadline = time.monotonic() + DEADLINE
            while len(seen) < REPORTS and time.monotonic() < deadline:
                try:
                    message = await ws.receive(timeout=max(deadline - time.monotonic(), 0.1))
                except asyncio.TimeoutError:
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event: dict[str, Any] = json.loads(message.data)
                if event.get("type") == "report":
                    report_id = event["report"]["id"]
                    seen.append(report_id)
                    if len(seen) in (1, REPORTS):  # announced only once it is stored
                        stored = await session.get(
                            f"{broker.url}/api/reports/{report_id}", headers=broker.auth()
                        )
                        assert stored.status == 200, report_id
            await sending
    return seen


def test_a_burst_of_reports_is_stored_and_announced_once_each_in_order(broker: Broker) -> None:
    agent = RawAgent(broker.zmq_url)
    try:
        agent_id = agent.identity.decode()
        assert isinstance(agent.hello(broker.secret), Welcome)
        seen = asyncio.run(_storm(broker, agent, agent_id))
    finally:
        agent.close()
    assert seen == [f"storm-{number:05d}" for number in range(REPORTS)]
    first = broker.report("storm-00000")
    assert first["frames_held"] is False  # the Released behind it was not overtaken
    assert first["exceptions"][0]["frames"][0]["frame_id"] == "held-0"
    assert broker.report(f"storm-{REPORTS - 1:05d}")["message"] == f"error {REPORTS - 1}"


def test_malformed_reports_in_a_burst_are_counted_and_the_rest_stored(broker: Broker) -> None:
    agent = RawAgent(broker.zmq_url)
    try:
        agent_id = agent.identity.decode()
        assert isinstance(agent.hello(broker.secret), Welcome)
        before = status(broker)["relay"]["malformed"]
        for number in range(1, 41):
            wire = protocol.to_wire(ReportMessage(report=_report(agent_id, number)))
            if number % 2 == 0:  # every other one is malformed: a string for a number
                wire["report"]["created"] = "yesterday"
            agent.send(msgpack.packb(wire, use_bin_type=True))
        wait_for(lambda: broker.get("/api/reports/storm-00039").status == 200, DEADLINE)
        for number in range(1, 41):
            answer = broker.get(f"/api/reports/storm-{number:05d}")
            assert answer.status == (200 if number % 2 else 404), number
        assert status(broker)["relay"]["malformed"] == before + 20
    finally:
        agent.close()
