"""GET /api/reports/{id}: a big report's JSON comes gzipped to clients that accept it.

A real broker process, fed by a real agent transport in this process.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator

import pytest

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from tests.conftest import Broker, wait_for

DEPTH = 30


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = Transport(
        Options(broker_url=broker.zmq_url, secret=broker.secret, app_name="compression-tests"),
        eval_dispatcher,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def _recurse(depth: int) -> None:
    items = list(range(depth, depth + 1_000))  # noqa: F841 - large locals for the report
    table = {f"key{i}": i * depth for i in range(100)}  # noqa: F841
    if depth <= 0:
        raise ValueError("at the bottom")
    _recurse(depth - 1)


def _submit(broker: Broker, agent: Transport, depth: int) -> str:
    try:
        _recurse(depth)
    except ValueError as error:
        report = build_report(
            error,
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
    agent.submit_report(report)
    wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="the report")
    return report.id


def test_big_report_is_gzipped_when_accepted(broker: Broker, agent: Transport) -> None:
    report_id = _submit(broker, agent, DEPTH)
    plain = broker.get(f"/api/reports/{report_id}")
    assert plain.status == 200
    assert "content-encoding" not in plain.headers
    assert len(plain.body) > 32_768, "the report should be big enough to be compressed"

    packed = broker.get(f"/api/reports/{report_id}", headers={"Accept-Encoding": "gzip"})
    assert packed.status == 200
    assert packed.headers["content-encoding"] == "gzip"
    assert len(packed.body) < len(plain.body) / 5
    assert json.loads(gzip.decompress(packed.body)) == plain.json()


def test_small_report_is_sent_as_is(broker: Broker, agent: Transport) -> None:
    report_id = _submit(broker, agent, 0)
    answer = broker.get(f"/api/reports/{report_id}", headers={"Accept-Encoding": "gzip"})
    assert answer.status == 200
    assert "content-encoding" not in answer.headers
    assert answer.json()["id"] == report_id
