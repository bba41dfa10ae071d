"""Console evals answered by a hostile agent: a raw zmq DEALER that plays the agent.

The relay takes eval results as checked wire dicts (``codec.WireResult``), never built into
dataclasses; these tests make sure that a malformed answer is still dropped and counted, an
answer of the wrong kind under the eval's request id fails the eval (502) instead of being
passed on, and a good answer comes back exactly as the agent sent it, with its transcript
entry, its audit row (and outcome) and its WebSocket event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from debugbroker import protocol
from debugbroker.broker.store.audit import AUDIT_COLUMNS
from debugbroker.broker.store.journal import journal_files
from debugbroker.protocol import (
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExceptionInfo,
    FrameInfo,
    Heartbeat,
    OutputChunk,
    ReportMessage,
    ReprNode,
    Welcome,
)
from tests.broker.test_console import EventListener, transcript
from tests.broker.test_security_agents import RawAgent, a_report, status
from tests.conftest import DEADLINE, Broker, HttpAnswer, wait_for


class Hostile:
    """An admitted raw agent with one report whose frame 0 it claims to hold."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.raw = RawAgent(broker.zmq_url)
        assert isinstance(self.raw.hello(broker.secret), Welcome)
        frame = FrameInfo(
            index=0,
            frame_id="held-frame",
            filename="app.py",
            lineno=1,
            function="view",
            module="app",
            context_start=1,
            context=("raise ValueError()",),
            locals=(),
        )
        info = ExceptionInfo(
            type_name="ValueError", module="builtins", message="x", frames=(frame,)
        )
        report = a_report(self.raw.identity.decode())
        self.report_id = report.id
        self.raw.send_message(ReportMessage(report=dataclasses.replace(report, exceptions=(info,))))
        wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="report")
        self.path = f"/api/reports/{report.id}/frames/0"
        self.pool = ThreadPoolExecutor(1)

    def start_eval(
        self, code: str, interactive: bool = False
    ) -> tuple[Future[HttpAnswer], EvalRequest]:
        """POST an eval in the background; the request the broker sent for it."""
        body = {"code": code, "interactive": interactive}
        answer = self.pool.submit(self.broker.post, f"{self.path}/eval", body)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            message = self.raw.receive(timeout=0.5)
            if isinstance(message, EvalRequest):
                assert message.code == code and message.frame_id == "held-frame"
                return answer, message
            self.raw.send_message(Heartbeat(held_frames=1))  # stay alive meanwhile
        raise AssertionError("the broker did not send the eval")

    def close(self) -> None:
        self.pool.shutdown()
        self.raw.close()


@pytest.fixture
def hostile(broker: Broker) -> Iterator[Hostile]:
    agent = Hostile(broker)
    yield agent
    agent.close()


def evals_in_audit(broker: Broker) -> list[dict[str, Any]]:
    entries = broker.get("/api/audit").json()["entries"]
    return [entry for entry in entries if entry["action"] == "eval"]


def test_malformed_and_wrong_kind_answers_never_reach_the_console(
    broker: Broker, hostile: Hostile
) -> None:
    before = status(broker)["relay"]["malformed"]
    answer, request = hostile.start_eval("secret()")
    rid = request.request_id
    for bad in (  # malformed eval results under the right request id: dropped and counted
        {"kind": "eval_result", "request_id": rid, "ok": "yes"},
        {"kind": "eval_result", "request_id": rid, "ok": True, "result": {"kind": "int"}},
        {"kind": "eval_result", "request_id": rid, "ok": True, "chunks": [{"text": 1}]},
        {"kind": "eval_result", "request_id": rid, "ok": True, "output": b"bytes"},
    ):
        hostile.raw.send(msgpack.packb(bad, use_bin_type=True))
    wait_for(lambda: status(broker)["relay"]["malformed"] == before + 4, what="the count")
    assert not answer.done()  # none of them answered the eval
    # A well-formed answer of another kind under the eval's id fails the eval.
    hostile.raw.send_message(CompleteResult(request_id=rid, ok=True, matches=("evil",)))
    failed = answer.result(DEADLINE)
    assert failed.status == 502, failed.text
    assert "wrong kind" in failed.json()["error"]
    [entry] = transcript(broker, hostile.path)
    assert (entry["code"], entry["state"]) == ("secret()", "failed")
    assert "wrong kind" in entry["failure"] and entry["result"] is None
    [row] = evals_in_audit(broker)
    assert (row["code"], row["outcome"]) == ("secret()", "failed")
    assert row["detail"].startswith("HTTP 502: ")
    assert broker.process is not None and broker.process.alive()


def audit_codes_on_disk(broker: Broker) -> list[str]:
    """The code of every audit row on disk, read from the files, not through the broker:
    the journal first, then the table (a row leaves the journal only once committed)."""
    store = broker.data_dir / "debugbroker.sqlite3"
    codes = []
    for path in journal_files(store):
        for line in path.read_bytes().splitlines():
            codes.append(json.loads(line)[AUDIT_COLUMNS.split(", ").index("code")])
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as connection:
        codes += [code for (code,) in connection.execute("SELECT code FROM audit")]
    return codes


def test_good_answers_are_passed_on_exactly_with_entry_audit_and_events(
    broker: Broker, hostile: Hostile
) -> None:
    listener = EventListener(broker)
    try:
        node = ReprNode(kind="str", type_name="str", text="'é <b>'", more="h1")
        chunks = (
            OutputChunk(stream="stdout", text="out\n"),
            OutputChunk(stream="result", value=node),
        )
        answer, request = hostile.start_eval("x")
        # Audited before it runs: the row is on disk before the agent got the request, in
        # the audit journal or (once the store's batch committed it) in the table.
        assert "x" in audit_codes_on_disk(broker)
        [row] = evals_in_audit(broker)
        assert (row["code"], row["outcome"], row["detail"]) == ("x", "running", "")
        sent = EvalResult(
            request_id=request.request_id, ok=True, output="out\n", result=node, chunks=chunks
        )
        hostile.raw.send_message(sent)
        done = answer.result(DEADLINE)
        assert done.status == 200, done.text
        expected = {
            k: v for k, v in protocol.to_wire(sent).items() if k not in ("kind", "request_id")
        }
        body = done.json()
        assert body == expected | {"entry": body["entry"]}
        assert list(body) == [*expected, "entry"]  # the documented order
        # An exception in the code: answered (200), audited as "raised" with its error.
        answer, request = hostile.start_eval("1/0")
        raised = EvalResult(request_id=request.request_id, ok=False, error="ZeroDivisionError")
        hostile.raw.send_message(raised)
        assert answer.result(DEADLINE).json()["error"] == "ZeroDivisionError"
        # A released frame (the reason field says so, not the prose): 409, the entry failed.
        answer, request = hostile.start_eval("y")
        gone = EvalResult(
            request_id=request.request_id,
            ok=False,
            error="frame released: gone",
            reason=protocol.RELEASED,
        )
        hostile.raw.send_message(gone)
        refused = answer.result(DEADLINE)
        assert refused.status == 409
        assert refused.json() == {"error": "frame released: gone", "reason": "released"}
        # A reason outside the closed set is the agent's fault: 502 bad_answer.
        answer, request = hostile.start_eval("z")
        odd = EvalResult(request_id=request.request_id, ok=False, error="?", reason="tired")
        hostile.raw.send_message(odd)
        bad = answer.result(DEADLINE)
        assert (bad.status, bad.json()["reason"]) == (502, "bad_answer"), bad.text
        # The agent's busy refusal (all its eval slots taken): 503 busy.
        answer, request = hostile.start_eval("w")
        full = EvalResult(request_id=request.request_id, ok=False, error="4", reason="busy")
        hostile.raw.send_message(full)
        busy = answer.result(DEADLINE)
        assert (busy.status, busy.json()) == (503, {"error": "4", "reason": "busy"})
        entries = transcript(broker, hostile.path)
        assert [(e["code"], e["state"]) for e in entries] == [
            ("x", "done"),
            ("1/0", "done"),
            ("y", "failed"),
            ("z", "failed"),
            ("w", "failed"),
        ]
        assert entries[0]["result"] == expected and entries[0]["failure"] is None
        assert entries[2]["failure"] == "frame released: gone"
        rows = evals_in_audit(broker)[::-1]
        assert [(r["code"], r["outcome"]) for r in rows] == [
            ("x", "ok"),
            ("1/0", "raised"),
            ("y", "failed"),
            ("z", "failed"),
            ("w", "failed"),
        ]
        assert rows[1]["detail"] == "ZeroDivisionError"
        assert rows[2]["detail"] == "HTTP 409: frame released: gone"
        wait_for(lambda: len(listener.events) == 10, what="the console events")
        assert [(e["code"], e["state"]) for e in listener.events[:2]] == [
            ("x", "running"),
            ("x", "done"),
        ]
        assert listener.events[1]["result"] == expected
    finally:
        listener.close()


def test_an_unanswered_eval_times_out_and_a_vanished_agent_fails_it_at_once(
    tmp_path: Path,
) -> None:
    # The agents' timeout is long here: only the eval's own probe can see the agent go.
    broker = Broker(tmp_path, "--eval-timeout", "1", "--agent-timeout", "60").start()
    hostile = Hostile(broker)
    try:
        answer, _ = hostile.start_eval("never answered")
        late = answer.result(DEADLINE)
        assert late.status == 504, late.text
        assert "did not answer within 1 seconds" in late.json()["error"]
        assert late.json()["reason"] == "timeout"
        answer, _ = hostile.start_eval("the agent vanishes")
        hostile.raw.close()  # its connection closes: the next probe fails
        gone = answer.result(DEADLINE)
        assert gone.status == 410, gone.text
        assert "process gone" in gone.json()["error"]
        assert gone.json()["reason"] == "gone"
        assert broker.live_agents() == []
        entries = transcript(broker, hostile.path)
        assert [(e["code"], e["state"]) for e in entries] == [
            ("never answered", "failed"),
            ("the agent vanishes", "failed"),
        ]
        outcomes = [(r["outcome"], r["detail"][:8]) for r in evals_in_audit(broker)[::-1]]
        assert outcomes == [("failed", "HTTP 504"), ("failed", "HTTP 410")]
    finally:
        hostile.pool.shutdown()
        broker.stop()


def test_a_websocket_eval_is_journaled_before_it_runs_and_its_row_survives_a_kill(
    broker: Broker, hostile: Hostile
) -> None:
    """Over the dashboard's WebSocket the answer does not wait for a commit: the audit row
    is on disk (the journal) when the agent gets the request, and a broker killed right
    after the answer has the row after its restart (outcome ``running`` or ``ok``)."""
    console = hostile.path.removeprefix("/api/")

    async def run() -> tuple[list[str], dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(broker.url + "/api/ws", headers=broker.auth()) as socket,
        ):
            command = {"type": "eval", "id": 1, "console": console, "code": "from_ws()"}
            await socket.send_str(json.dumps(command | {"interactive": False, "name": "Ada"}))
            request = await asyncio.to_thread(_the_eval_request, hostile)
            on_disk = audit_codes_on_disk(broker)  # read while the agent holds the request
            result = EvalResult(request_id=request.request_id, ok=True, output="")
            hostile.raw.send_message(result)
            while True:
                answer = json.loads(await socket.receive_str(timeout=DEADLINE))
                if answer.get("type") == "answer":
                    return on_disk, answer

    on_disk, answer = asyncio.run(run())
    assert "from_ws()" in on_disk
    assert answer["status"] == 200 and answer["body"]["ok"] is True
    broker.kill()  # SIGKILL, as soon as the answer is in
    broker.start()
    [row] = [row for row in evals_in_audit(broker) if row["code"] == "from_ws()"]
    assert row["outcome"] in ("running", "ok") and row["name"] == "Ada"


def _the_eval_request(hostile: Hostile) -> EvalRequest:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        message = hostile.raw.receive(timeout=0.5)
        if isinstance(message, EvalRequest):
            return message
        hostile.raw.send_message(Heartbeat(held_frames=1))
    raise AssertionError("the broker did not send the eval")


@pytest.mark.parametrize(
    "code", ["-" * 90_000 + "1", "+".join(["1"] * 40_000)], ids=["unary", "sum"]
)
def test_input_too_deep_to_parse_goes_to_the_agent_not_to_a_500(
    broker: Broker, hostile: Hostile, code: str
) -> None:
    # The broker asks whether an interactive input is unfinished; Python's parser gives up
    # on these with MemoryError or RecursionError, which once made the broker answer 500.
    answer, request = hostile.start_eval(code, interactive=True)
    error = "MemoryError: the input is too deeply nested"
    hostile.raw.send_message(EvalResult(request_id=request.request_id, ok=False, error=error))
    done = answer.result(DEADLINE)
    assert done.status == 200, done.text
    assert done.json()["error"] == error


def test_an_eval_waiting_when_the_broker_stops_is_answered_503_stopping_at_once(
    tmp_path: Path,
) -> None:
    """SIGTERM while an eval waits for its agent: it is answered ``stopping``, not held
    until the server's shutdown timeout cuts its connection."""
    broker = Broker(tmp_path, "--eval-timeout", "60").start()
    hostile = Hostile(broker)
    try:
        answer, _ = hostile.start_eval("never answered")
        process = broker.process
        assert process is not None
        os.killpg(process.pid, signal.SIGTERM)
        stopped = answer.result(DEADLINE)
        assert stopped.status == 503, stopped.text
        assert stopped.json()["reason"] == "stopping"
        assert "shutting down" in stopped.json()["error"]
        assert process.popen is not None and process.popen.wait(DEADLINE) == 0
    finally:
        hostile.close()
        broker.stop()
