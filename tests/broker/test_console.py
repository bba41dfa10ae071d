"""The console API against a real broker process, fed by a real agent transport in this process.

Covers the shared transcript (stored, published on the WebSocket, kept across a broker
restart), REPL-style incomplete input, completion, interrupts with heartbeats going on, the
process console of ``console=True`` agents, and bad input.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report
from tests.conftest import DEADLINE, Broker, HttpAnswer, http, node_text, wait_for


def make_agent(broker: Broker, **options: Any) -> Transport:
    settings: dict[str, Any] = {"heartbeat_seconds": 0.2, "app_name": "console-tests"}
    transport = Transport(
        Options(broker_url=broker.zmq_url, secret=broker.secret, **(settings | options)),
        eval_dispatcher,
    )
    assert transport.wait_connected(DEADLINE), "the agent was not welcomed"
    return transport


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = make_agent(broker, eval_timeout_seconds=60.0)
    yield transport
    transport.close()


def checkout(cart: list[int]) -> None:
    total = sum(cart)  # noqa: F841 - a local the console reads
    raise ValueError("bad cart")


@pytest.fixture
def report(broker: Broker, agent: Transport) -> Report:
    try:
        checkout([1, 2, 3])
    except ValueError as error:
        sent = build_report(
            error,
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
    agent.submit_report(sent)
    wait_for(lambda: broker.get(f"/api/reports/{sent.id}").status == 200, what="the report")
    return sent


def frame_path(report: Report) -> str:
    index = report.exceptions[-1].frames[-1].index
    return f"/api/reports/{report.id}/frames/{index}"


def as_author(name: str) -> dict[str, str]:
    return {"X-Debugbroker-Name": quote(name)}


class EventListener:
    """A WebSocket client of the broker in a background thread, keeping console events."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.start()
        assert self.ready.wait(DEADLINE), "the WebSocket did not open"

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        headers = self.broker.auth()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.broker.url + "/api/ws", headers=headers) as ws:
                self.ready.set()
                stopping = asyncio.create_task(self._stop.wait())
                try:
                    await self._receive(ws, stopping)
                finally:
                    stopping.cancel()

    async def _receive(self, ws: Any, stopping: asyncio.Task[bool]) -> None:
        while True:
            receiving = asyncio.create_task(ws.receive())
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                receiving.cancel()
                return
            message = receiving.result()
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            event = json.loads(message.data)
            if event.get("type") == "console":
                self.events.append(event["entry"])

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE)
        self._loop.close()


@pytest.fixture
def listener(broker: Broker) -> Iterator[EventListener]:
    started = EventListener(broker)
    yield started
    started.close()


def transcript(broker: Broker, path: str) -> list[dict[str, Any]]:
    answer = broker.get(f"{path}/transcript")
    assert answer.status == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def test_an_eval_is_shared_live_and_kept_across_a_broker_restart(
    broker: Broker, report: Report, listener: EventListener
) -> None:
    path = frame_path(report)
    answer = broker.post(
        f"{path}/eval", {"code": "print('hi')\ntotal * 2"}, headers=as_author("Ada L. ✓")
    )
    assert answer.status == 200, answer.text
    result = answer.json()
    assert result["ok"] and result["output"] == "hi\n" and node_text(result["result"]) == "12"
    assert [c["stream"] for c in result["chunks"]] == ["stdout", "result"]
    entries = transcript(broker, path)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["id"] == result["entry"] and entry["author"] == "Ada L. ✓"
    assert entry["code"] == "print('hi')\ntotal * 2" and entry["state"] == "done"
    assert entry["target"] == f"reports/{report.id}/frames/{report.exceptions[-1].frames[-1].index}"
    assert node_text(entry["result"]["result"]) == "12" and entry["failure"] is None
    # Everyone on the WebSocket saw it start and finish.
    wait_for(lambda: len(listener.events) == 2, what="two console events")
    assert [e["state"] for e in listener.events] == ["running", "done"]
    assert {e["id"] for e in listener.events} == {entry["id"]}
    assert listener.events[1] == entry
    # Without a name the author is "anonymous"; errors are entries too.
    raised = broker.post(f"{path}/eval", {"code": "1/0"}).json()
    assert not raised["ok"] and "ZeroDivisionError" in raised["error"]
    broker.kill()
    broker.start()
    kept = transcript(broker, path)
    assert [(e["author"], e["state"]) for e in kept] == [
        ("Ada L. ✓", "done"),
        ("anonymous", "done"),
    ]
    assert "ZeroDivisionError" in kept[1]["result"]["error"]


def test_console_results_get_larger_limits_than_locals(broker: Broker, report: Report) -> None:
    """A value typed at the console shows about 100 items or 10,000 characters, not the 8
    items of a local; past that it is still cut, with "+" (an omitted count)."""
    path = frame_path(report)

    def result(code: str) -> dict[str, Any]:
        answer = broker.post(f"{path}/eval", {"code": code})
        assert answer.status == 200 and answer.json()["ok"], answer.text
        node: dict[str, Any] = answer.json()["result"]
        return node

    assert node_text(result("list(range(30))")) == repr(list(range(30)))
    assert node_text(result("{n: n for n in range(60)}")) == repr({n: n for n in range(60)})
    many = result("list(range(500))")
    assert len(many["children"]) == 100 and many["omitted"] == 400
    long_text = result("'ab' * 20_000")
    assert long_text["omitted"] == 30_000 and len(long_text["text"]) > 10_000
    # Locals keep their own limits: the frame's cart would show 8 items.
    assert node_text(result("cart")) == "[1, 2, 3]"


def test_interactive_input_waits_for_the_end_of_a_block(broker: Broker, report: Report) -> None:
    path = frame_path(report)
    for code in ("for i in cart:", "for i in cart:\n    i", "x = (1,"):
        answer = broker.post(f"{path}/eval", {"code": code, "interactive": True})
        assert answer.status == 200 and answer.json()["incomplete"] is True, code
        assert answer.json()["entry"] is None
    done = broker.post(f"{path}/eval", {"code": "for i in cart:\n    i\n", "interactive": True})
    assert [node_text(c["value"]) for c in done.json()["chunks"]] == ["1", "2", "3"]
    assert [e["code"] for e in transcript(broker, path)] == ["for i in cart:\n    i\n"]


def test_completion(broker: Broker, report: Report) -> None:
    path = frame_path(report)
    answer = broker.post(f"{path}/complete", {"text": "x = car"})
    assert answer.status == 200, answer.text
    assert answer.json() == {
        "ok": True,
        "matches": ["cart"],
        "replace": 3,
        "error": None,
        "reason": None,
    }
    methods = broker.post(f"{path}/complete", {"text": "cart.app"}).json()
    assert methods["matches"] == ["cart.append("] and methods["replace"] == len("cart.app")


def run_in_background(call: Callable[[], HttpAnswer]) -> tuple[threading.Thread, list[HttpAnswer]]:
    answers: list[HttpAnswer] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def test_interrupt_an_endless_loop_while_the_agent_stays_alive(
    broker: Broker, agent: Transport, report: Report
) -> None:
    path = frame_path(report)
    thread, answers = run_in_background(
        lambda: broker.post(f"{path}/eval", {"code": "n = 0\nwhile True:\n    n += 1"})
    )
    wait_for(
        lambda: [e["state"] for e in transcript(broker, path)] == ["running"],
        what="the loop to be running",
    )
    # Other evals in the same frame answer, and the agent keeps its heartbeats.
    assert broker.post(f"{path}/eval", {"code": "total"}).json()["ok"]
    seen = broker.live_agents()[0]["last_seen"]
    wait_for(lambda: broker.live_agents()[0]["last_seen"] > seen, what="a heartbeat")
    interrupted = wait_for(
        lambda: broker.post(f"{path}/interrupt", {}).json()["interrupted"],
        what="the interrupt to land",
    )
    assert interrupted == 1
    thread.join(DEADLINE)
    result = answers[0].json()
    assert answers[0].status == 200 and not result["ok"]
    assert (
        "KeyboardInterrupt" in result["error"]
        and "interrupted from the dashboard" in result["error"]
    )
    assert node_text(broker.post(f"{path}/eval", {"code": "n > 0"}).json()["result"]) == "True"
    assert transcript(broker, path)[0]["state"] == "done"
    assert broker.post(f"{path}/interrupt", {}).json() == {"interrupted": 0}


def test_the_agents_time_limit_answers_before_the_broker_gives_up(broker: Broker) -> None:
    agent = make_agent(broker, eval_timeout_seconds=0.5, console=True)
    try:
        answer = broker.post(f"/api/agents/{agent.agent_id}/eval", {"code": "while True: pass"})
        assert answer.status == 200, answer.text
        assert "stopped after the time limit of 0.5 seconds" in answer.json()["error"]
    finally:
        agent.close()


def test_process_console_of_an_agent(broker: Broker, agent: Transport) -> None:
    console = make_agent(broker, console=True)
    try:
        listed = {a["agent_id"]: a for a in broker.live_agents()}
        assert listed[console.agent_id]["console"] is True
        assert listed[agent.agent_id]["console"] is False
        path = f"/api/agents/{console.agent_id}"
        assert broker.post(f"{path}/eval", {"code": "x = 20"}, headers=as_author("Bo")).json()["ok"]
        answer = broker.post(f"{path}/eval", {"code": "import os\n(os.getpid(), x + 1)"}).json()
        assert node_text(answer["result"]) == f"({console.pid}, 21)"
        matches = broker.post(f"{path}/complete", {"text": "os.getpp"}).json()["matches"]
        assert matches == ["os.getppid()"]
        assert [e["author"] for e in transcript(broker, path)] == ["Bo", "anonymous"]
        refused = broker.post(f"/api/agents/{agent.agent_id}/eval", {"code": "1"})
        assert refused.status == 403 and "console=True" in refused.json()["error"]
        assert refused.json()["reason"] == "disabled"
        assert broker.post("/api/agents/nope/eval", {"code": "1"}).status == 404
    finally:
        console.close()


def test_bad_console_requests_get_clear_errors(broker: Broker, report: Report) -> None:
    path = frame_path(report)
    for route, body, status, words in (
        ("eval", {"code": "1", "interactive": "yes"}, 400, "interactive"),
        ("eval", {"code": None}, 400, '"code"'),
        ("eval", "1", 400, "JSON object"),
        ("complete", {"text": 3}, 400, '"text"'),
        ("complete", {"text": "x" * 10_001}, 413, "limited"),
    ):
        answer = broker.post(f"{path}/{route}", body)
        assert answer.status == status and words in answer.json()["error"], (route, answer.text)
    assert broker.get(f"{path}/transcript?limit=0").status == 400
    assert broker.get(f"{path}/transcript?limit=x").status == 400
    assert broker.get("/api/reports/nope/frames/0/transcript").status == 404
    assert broker.post("/api/reports/nope/frames/0/interrupt", {}).status == 404
    assert transcript(broker, path) == []


def test_readers_with_the_view_token_get_console_output_with_secrets_masked(
    tmp_path: Any,
) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-123456").start()
    agent = make_agent(broker, eval_timeout_seconds=60.0)
    reader = Broker(tmp_path, token="view-token-123456")  # the same broker, as a reader
    reader.http_port = broker.http_port
    listener = EventListener(reader)
    try:
        try:
            checkout([1, 2, 3])
        except ValueError as error:
            sent = build_report(
                error,
                report_id=uuid.uuid4().hex,
                agent_id=agent.agent_id,
                options=agent.options,
                registry=agent.registry,
            )
        agent.submit_report(sent)
        wait_for(lambda: broker.get(f"/api/reports/{sent.id}").status == 200, what="the report")
        path = frame_path(sent)
        code = (
            "print('password=hunter2 user=bob')\n"
            "print('postgres://app:s3cr3tpw@db/shop')\n"
            "{'api_key': 'k3yk3y', 'total': total}"
        )
        answer = broker.post(f"{path}/eval", {"code": code})
        assert answer.status == 200, answer.text
        # The full token (who ran it) sees it as it was.
        full = json.dumps(transcript(broker, path))
        assert "hunter2" in full and "s3cr3tpw" in full and "k3yk3y" in full
        # A reader gets the same entries with the secrets masked, by GET and live.
        entries = transcript(reader, path)
        wait_for(lambda: len(listener.events) == 2, what="the reader's console events")
        for seen in (json.dumps(entries), json.dumps(listener.events)):
            for secret in ("hunter2", "s3cr3tpw", "k3yk3y"):
                assert secret not in seen, seen
            assert "user=bob" in seen and "<masked>" in seen
        assert node_text(entries[0]["result"]["result"]).count("6") == 1  # the rest is kept
    finally:
        listener.close()
        agent.close()
        broker.stop()


# --- the console over the dashboard's WebSocket ------------------------------------------------


class ConsoleSocket:
    """A dashboard tab's WebSocket, driven from a test: send a message, read its answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self.number = 0

    async def read(self, kind: str, number: int | None = None) -> dict[str, Any]:
        """The next message of type ``kind`` (and command ``number``), events skipped."""
        while True:
            message = await asyncio.wait_for(self.ws.receive(), DEADLINE)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            data: dict[str, Any] = json.loads(message.data)
            if data.get("type") == kind and (number is None or data.get("id") == number):
                return data

    async def prove(self, key: str) -> dict[str, Any]:
        await self.ws.send_str(json.dumps({"type": "auth", "key": key}))
        return await self.read("auth")

    async def command(self, kind: str, console: str, **fields: Any) -> tuple[int, Any]:
        """(status, body) of an eval or completion sent as the dashboard sends it."""
        self.number += 1
        message = {"type": kind, "id": self.number, "console": console, **fields}
        await self.ws.send_str(json.dumps(message))
        answer = await self.read("answer", self.number)
        return answer["status"], answer["body"]


async def _with_socket(
    broker: Broker, headers: dict[str, str], run: Callable[[ConsoleSocket], Any]
) -> Any:
    async with aiohttp.ClientSession() as session:
        url = broker.url.replace("http", "ws") + "/api/ws"
        async with session.ws_connect(url, headers=headers) as ws:
            return await run(ConsoleSocket(ws))


def audit_rows(broker: Broker, action: str) -> list[dict[str, Any]]:
    answer = broker.get("/api/audit?limit=1000")
    assert answer.status == 200, answer.text
    return [row for row in answer.json()["entries"] if row["action"] == action]


def test_a_cookie_socket_runs_nothing_until_it_proves_the_session_key(
    broker: Broker, report: Report
) -> None:
    console = frame_path(report).removeprefix("/api/")
    tab = broker.log_in()

    async def run(socket: ConsoleSocket) -> None:
        # Before any key, and with a wrong one: refused, nothing sent to the agent.
        status, body = await socket.command("eval", console, code="total + 1")
        assert status == 403 and "auth" in body["error"], body
        assert (await socket.prove("not-the-key"))["ok"] is False
        status, body = await socket.command("eval", console, code="total + 1")
        assert status == 403, body
        status, body = await socket.command("complete", console, text="tot")
        assert status == 403, body
        # The key proven: evals and completions run, through the same code as HTTP.
        proof = await socket.prove(tab.key)
        assert proof["ok"] is True and proof["role"] == "full", proof
        status, body = await socket.command("eval", console, code="total + 1", name="Ada")
        assert status == 200 and body["ok"] is True, body
        assert node_text(body["result"]) == "7"
        assert isinstance(body["entry"], int)
        status, body = await socket.command("complete", console, text="tot")
        assert status == 200 and "total" in body["matches"], body
        # Bad input gets the HTTP route's own errors.
        status, body = await socket.command("eval", console, code=42)
        assert status == 400 and '"code"' in body["error"], body
        status, body = await socket.command("eval", "reports/nope/frames/0", code="1")
        assert status == 404, body
        status, body = await socket.command("eval", "../../etc", code="1")
        assert status == 400, body

    asyncio.run(_with_socket(broker, tab.headers(key=False), run))
    evals = audit_rows(broker, "eval")
    ran = [row for row in evals if row["outcome"] == "ok"]
    assert [(row["code"], row["name"]) for row in ran] == [("total + 1", "Ada")]
    assert ran[0]["report_id"] == report.id and ran[0]["client"]
    # The refusals before the key never reached the console: no rows, no transcript entry.
    # The bad body and the missing report are the HTTP route's refusals, audited as there.
    assert sorted(row["code"] for row in evals if row["outcome"] != "ok") == ["", "1"]
    assert [entry["code"] for entry in transcript(broker, frame_path(report))] == ["total + 1"]


def test_a_logout_ends_what_a_proven_socket_may_run(broker: Broker, report: Report) -> None:
    console = frame_path(report).removeprefix("/api/")
    tab = broker.log_in()

    async def run(socket: ConsoleSocket) -> None:
        assert (await socket.prove(tab.key))["ok"] is True
        assert (await socket.command("eval", console, code="1"))[0] == 200
        answer = http(
            "POST", broker.url + "/logout", headers={"Cookie": tab.cookie, "Origin": tab.origin}
        )
        assert answer.status == 200
        status, body = await socket.command("eval", console, code="2")
        assert status == 401, body
        assert (await socket.prove(tab.key))["ok"] is False

    asyncio.run(_with_socket(broker, tab.headers(key=False), run))


def test_a_bearer_socket_runs_evals_without_an_auth_message(broker: Broker, report: Report) -> None:
    console = frame_path(report).removeprefix("/api/")

    async def run(socket: ConsoleSocket) -> None:
        status, body = await socket.command("eval", console, code="total * 2")
        assert status == 200 and node_text(body["result"]) == "12", body

    asyncio.run(_with_socket(broker, broker.auth(), run))


def test_a_view_only_session_is_refused_evals_over_the_socket(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-123456").start()
    agent = make_agent(broker)
    try:
        try:
            checkout([1, 2, 3])
        except ValueError as error:
            sent = build_report(
                error,
                report_id=uuid.uuid4().hex,
                agent_id=agent.agent_id,
                options=agent.options,
                registry=agent.registry,
            )
        agent.submit_report(sent)
        wait_for(lambda: broker.get(f"/api/reports/{sent.id}").status == 200, what="the report")
        console = frame_path(sent).removeprefix("/api/")
        tab = broker.log_in("view-token-123456")

        async def run(socket: ConsoleSocket) -> None:
            proof = await socket.prove(tab.key)
            assert proof["ok"] is True and proof["role"] == "view", proof
            status, body = await socket.command("eval", console, code="total")
            assert status == 403 and "not run code" in body["error"], body
            status, body = await socket.command("complete", console, text="tot")
            assert status == 403, body

        asyncio.run(_with_socket(broker, tab.headers(key=False), run))
        refused = audit_rows(broker, "eval")
        assert [(row["outcome"], row["role"]) for row in refused] == [("refused", "view")]
    finally:
        agent.close()
        broker.stop()
