"""The HTTP API against a real broker process, fed by a real agent transport in this process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report
from tests.conftest import Broker, http, node_text, wait_for


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = Transport(
        Options(
            broker_url=broker.zmq_url,
            secret=broker.secret,
            app_name="api-tests",
            heartbeat_seconds=0.2,
        ),
        eval_dispatcher,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def fail_with(message: str, **values: Any) -> BaseException:
    def inner(payload: dict[str, Any]) -> None:
        secret_sauce = sorted(payload)  # noqa: F841 - a local for the report
        raise KeyError(message)

    try:
        inner(values)
    except KeyError as error:
        return error
    raise AssertionError("unreachable")


@pytest.fixture
def submit(broker: Broker, agent: Transport) -> Callable[..., Report]:
    def send(message: str = "missing", **values: Any) -> Report:
        report = build_report(
            fail_with(message, **values),
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
        agent.submit_report(report)
        wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="report")
        return report

    return send


def test_reports_list_newest_first_with_paging(
    broker: Broker, submit: Callable[..., Report]
) -> None:
    sent = [submit(f"key {number}") for number in range(5)]
    listed = broker.reports()
    assert [r["id"] for r in listed] == [r.id for r in reversed(sent)]
    first = listed[0]
    assert first["type_name"] == "KeyError" and first["message"] == "'key 4'"
    assert first["app"] == "api-tests" and first["url"] is None
    page = broker.get(f"/api/reports?limit=2&before={listed[1]['created']}").json()["reports"]
    assert [r["id"] for r in page] == [sent[2].id, sent[1].id]
    for bad in ("limit=0", "limit=5000", "limit=x", "before=yesterday"):
        answer = broker.get(f"/api/reports?{bad}")
        assert answer.status == 400 and "limit" in answer.json()["error"]


def test_report_frames_have_index_and_highlighting(
    broker: Broker, submit: Callable[..., Report]
) -> None:
    sent = submit("k", a=1)
    report = broker.report(sent.id)
    assert report["id"] == sent.id and report["agent_alive"] is True
    frames = [frame for info in report["exceptions"] for frame in info["frames"]]
    # 3.10 code objects have no co_qualname: the plain name, as 3.10's tracebacks show it.
    inner = "fail_with.<locals>.inner" if sys.version_info >= (3, 11) else "inner"
    assert [f["function"] for f in frames][-1] == inner
    assert sorted(f["index"] for f in frames) == list(range(len(frames)))
    for frame in frames:
        assert frame["filename"].endswith("test_api.py") and frame["lineno"] > 0
        assert len(frame["highlight"]) == len(frame["context"])
        for line, pairs in zip(frame["context"], frame["highlight"], strict=True):
            assert "".join(text for _, text in pairs) == line
    assert any(css == "k" for line in frames[-1]["highlight"] for css, _ in line)  # keywords


def test_text_is_what_traceback_printed(broker: Broker, submit: Callable[..., Report]) -> None:
    sent = submit("k")
    answer = broker.get(f"/api/reports/{sent.id}/text")
    assert answer.status == 200 and answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text == sent.text and answer.text.endswith("KeyError: 'k'\n")


def test_eval_errors_are_clear(broker: Broker, submit: Callable[..., Report]) -> None:
    sent = submit("k", b=2)
    index = max(f.index for info in sent.exceptions for f in info.frames)
    ok = broker.evaluate(sent.id, index, "payload['b'] * 21")
    assert ok.status == 200 and node_text(ok.json()["result"]) == "42"
    raised = broker.evaluate(sent.id, index, "1/0").json()
    assert raised["ok"] is False and "ZeroDivisionError" in raised["error"]
    cases: list[tuple[str, object, int, str]] = [
        (f"/api/reports/{sent.id}/frames/{index}/eval", {"code": 1}, 400, "code"),
        (f"/api/reports/{sent.id}/frames/{index}/eval", ["x"], 400, "code"),
        (f"/api/reports/{sent.id}/frames/99/eval", {"code": "1"}, 404, "no frame 99"),
        (f"/api/reports/{sent.id}/frames/x/eval", {"code": "1"}, 400, "integer"),
        ("/api/reports/nope/frames/0/eval", {"code": "1"}, 404, "no report"),
        (f"/api/reports/{sent.id}/frames/{index}/eval", {"code": "x" * 100_001}, 413, "limited"),
    ]
    for path, body, status, words in cases:
        answer = broker.post(path, body)
        assert answer.status == status, (path, answer.text)
        assert words in answer.json()["error"]
    garbage = http(
        "POST",
        broker.url + f"/api/reports/{sent.id}/frames/{index}/eval",
        headers=broker.auth({"Content-Type": "application/json"}),
        body=b"{not json",
    )
    assert garbage.status == 400 and "JSON" in garbage.json()["error"]


def test_released_frame_answers_409_and_report_stays_readable(
    broker: Broker, agent: Transport, submit: Callable[..., Report]
) -> None:
    sent = submit("k")
    agent.registry.release_report(sent.id)
    index = sent.exceptions[-1].frames[-1].index
    answer = broker.evaluate(sent.id, index, "1")
    assert answer.status == 409 and "frame released" in answer.json()["error"]
    assert answer.json()["reason"] == "released"  # the agent's reason chose the status
    assert broker.get(f"/api/reports/{sent.id}").status == 200


def test_unknown_report_is_404_and_unauthenticated_is_401(broker: Broker) -> None:
    assert broker.get("/api/reports/nope").status == 404
    assert broker.get("/api/reports/nope/text").status == 404
    for path in ("/api/reports", "/api/agents", "/api/reports/x", "/api/reports/x/text"):
        answer = http("GET", broker.url + path)
        assert answer.status == 401 and "log in" in answer.json()["error"]


def test_agents_are_listed_with_their_details(broker: Broker, agent: Transport) -> None:
    agents = broker.live_agents()
    assert [a["agent_id"] for a in agents] == [agent.agent_id]
    listed = agents[0]
    assert listed["app"] == "api-tests" and listed["evalex"] is True
    assert listed["pid"] == agent.pid and listed["python"] == ".".join(
        str(part) for part in sys.version_info[:3]
    )
    agent.close()
    wait_for(lambda: not broker.live_agents(), what="the closed agent to count as gone")
    assert broker.get("/api/agents").json()["agents"][0]["alive"] is False


def test_reports_survive_a_broker_restart(broker: Broker, submit: Callable[..., Report]) -> None:
    sent = [submit(f"k{n}") for n in range(3)]
    broker.kill()
    broker.start()
    assert {r["id"] for r in broker.reports()} == {r.id for r in sent}
    assert broker.get(f"/api/reports/{sent[0].id}/text").text == sent[0].text


def test_command_without_the_broker_extra_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "from debugbroker._cli import main\n"
        "sys.exit(main(['serve']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'debugbroker[broker]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_busy_port_clearly(broker: Broker, tmp_path: Any) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "debugbroker",
            "serve",
            "--http",
            f"127.0.0.1:{broker.http_port}",
            "--zmq",
            "tcp://127.0.0.1:0",
            "--data",
            str(tmp_path / "d"),
            "--token",
            "t",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "cannot start" in done.stderr
    assert "Traceback" not in done.stderr
