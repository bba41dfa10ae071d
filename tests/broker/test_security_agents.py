"""Agent ↔ broker security with real processes: the secret, evalex=False, hostile messages.

A real broker process is attacked from raw zmq DEALER sockets that hold the secret's keys
(an agent gone bad: without the keys nothing gets past the handshake, see
``test_security_curve.py``), and a real agent process is attacked by a raw ROUTER posing as
the broker with the broker's keys (what a hijacked broker could send).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from debugbroker import protocol
from debugbroker.agent.evals.evaluate import EVALEX_DISABLED
from debugbroker.protocol import (
    CONSOLE_FRAME_ID,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    Heartbeat,
    Hello,
    HelloRequest,
    Message,
    Refused,
    Report,
    ReportMessage,
    Welcome,
)
from tests.conftest import (
    TEST_SECRET,
    Broker,
    Process,
    agent_socket,
    base_env,
    broker_socket,
    proven_welcome,
    wait_for,
)

AGENT_SCRIPT = """
import os, sys, threading, uuid
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport

options = Options.from_environment(
    app_name="security-test",
    evalex=os.environ["EVALEX"] == "1",
    console=os.environ.get("CONSOLE") == "1",
)
transport = get_transport(options)

def failing(marker):
    secret_local = "held in the frame"
    raise RuntimeError("boom")

try:
    failing(os.environ["MARKER"])
except RuntimeError as error:
    report = build_report(
        error, report_id=uuid.uuid4().hex, agent_id=transport.agent_id,
        options=options, registry=transport.registry,
    )
    transport.submit_report(report)
print("agent ready", flush=True)
threading.Event().wait()
"""


def status(broker: Broker) -> dict[str, Any]:
    answer = broker.get("/api/status")
    assert answer.status == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Any]:
    """Start real agent processes: ``start_agent(url, secret, evalex=True, **env)``."""
    script = tmp_path / "agent_script.py"
    script.write_text(AGENT_SCRIPT)
    started: list[Process] = []

    def start(url: str, secret: str, evalex: bool = True, **extra: str) -> Process:
        env = base_env(
            DEBUGBROKER_URL=url,
            DEBUGBROKER_SECRET=secret,
            EVALEX="1" if evalex else "0",
            MARKER=str(tmp_path / "marker"),
            **extra,
        )
        name = f"agent-{len(started)}"
        process = Process(name, [sys.executable, str(script)], tmp_path / f"{name}.log", env)
        process.start()
        started.append(process)
        process.wait_until(lambda: "agent ready" in process.output(), "the agent to start")
        return process

    yield start
    for process in started:
        process.stop()


# --- the shared secret --------------------------------------------------------------------


def test_wrong_agent_secret_is_refused_logged_counted_and_explained(
    broker: Broker, start_agent: Any
) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    agent = start_agent(broker.zmq_url, wrong)
    assert broker.process is not None
    broker_process = broker.process
    # The keys derived from another secret fail the CurveZMQ handshake: nothing is read.
    broker_process.wait_until(
        lambda: "refused a connection" in broker_process.output(), "the broker to log it"
    )
    assert "another DEBUGBROKER_SECRET" in broker_process.output()
    agent.wait_until(
        lambda: "did not prove it knows DEBUGBROKER_SECRET" in agent.output(),
        "the agent to say why it cannot connect",
    )
    wait_for(lambda: status(broker)["relay"]["handshake_failed"] >= 3, what="retries")
    assert agent.output().count("did not prove it knows DEBUGBROKER_SECRET") == 1  # not per retry
    assert status(broker)["relay"]["refused"] == 0  # no hello ever got through
    assert broker.live_agents() == []
    assert broker.reports() == []  # its queued report never got in
    for secret in (wrong, broker.secret):
        assert secret not in broker_process.output()
    entries = broker.get("/api/audit").json()["entries"]
    refused = [entry for entry in entries if entry["action"] == "agent_refused"]
    assert refused and "another DEBUGBROKER_SECRET" in refused[0]["detail"]
    assert all(wrong not in str(entry) for entry in entries)
    # The right secret is admitted, audited, and its report stored.
    start_agent(broker.zmq_url, broker.secret)
    wait_for(lambda: len(broker.live_agents()) == 1, what="the right agent")
    wait_for(lambda: len(broker.reports()) == 1, what="its report")
    entries = broker.get("/api/audit").json()["entries"]
    assert any(entry["action"] == "agent_admitted" for entry in entries)


# --- raw sockets against the real broker ----------------------------------------------------


class RawAgent:
    """A raw zmq DEALER talking to the broker: well-behaved or not, as the test says."""

    def __init__(self, url: str, identity: bytes | None = None, secret: str = TEST_SECRET) -> None:
        self.context = zmq.Context()
        self.identity = identity or f"{uuid.uuid4().hex}-1-raw".encode()
        self.socket = agent_socket(self.context, secret, identity=self.identity)  # the keys
        self.socket.connect(url)

    def send(self, *frames: bytes) -> None:
        self.socket.send_multipart(list(frames))

    def send_message(self, message: Message) -> None:
        self.send(protocol.encode(message))

    def receive(self, timeout: float = 10.0) -> Message | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        return protocol.decode(self.socket.recv_multipart()[-1])

    def hello(self, secret: str, agent_id: str | None = None) -> Message | None:
        """Say hello with the proof of ``secret``; the broker's answer."""
        agent_id = agent_id or self.identity.decode()
        nonce = uuid.uuid4().hex
        self.send_message(
            Hello(
                agent_id=agent_id,
                nonce=nonce,
                proof=protocol.keys.hello_proof(secret, agent_id, nonce),
                pid=1,
                host="raw",
                app="raw",
                python="3",
                started=time.time(),
                evalex=True,
            )
        )
        return self.receive()

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def a_report(agent_id: str) -> Report:
    return Report(
        id=uuid.uuid4().hex,
        agent_id=agent_id,
        created=time.time(),
        type_name="ValueError",
        message="forged",
        text="Traceback...\nValueError: forged\n",
        exceptions=(),
    )


def test_messages_from_an_identity_without_hello_are_never_accepted(broker: Broker) -> None:
    stranger = RawAgent(broker.zmq_url)
    try:
        agent_id = stranger.identity.decode()
        stranger.send_message(ReportMessage(report=a_report(agent_id)))
        assert isinstance(stranger.receive(), HelloRequest)
        stranger.send_message(Heartbeat(held_frames=3))
        assert isinstance(stranger.receive(), HelloRequest)
        stranger.send_message(EvalResult(request_id="x", ok=True))
        assert isinstance(stranger.receive(), HelloRequest)
        # A refused hello does not admit it either.
        assert isinstance(stranger.hello("not-the-secret"), Refused)
        stranger.send_message(ReportMessage(report=a_report(agent_id)))
        assert isinstance(stranger.receive(), HelloRequest)
        # Nor a right secret for another identity (an agent speaks for itself only).
        assert isinstance(stranger.hello(broker.secret, agent_id="someone-else"), Refused)
        assert status(broker)["relay"]["unadmitted"] == 4
        assert broker.reports() == [] and broker.live_agents() == []
        # Once it proves the secret, the same message is accepted.
        assert isinstance(stranger.hello(broker.secret), Welcome)
        stranger.send_message(ReportMessage(report=a_report(agent_id)))
        wait_for(lambda: len(broker.reports()) == 1, what="the admitted report")
    finally:
        stranger.close()


NESTED = b"\x91" * 100_000 + b"\xc0"  # a list in a list in a list ... 100k deep


def hostile_payloads(agent_id: str) -> list[list[bytes]]:
    """Each a multipart message a hostile peer may send; every one must be dropped."""
    report = protocol.to_wire(ReportMessage(report=a_report(agent_id)))
    return [
        [b""],
        [b"\xc1"],  # never-used msgpack byte
        [b"not msgpack at all \xff\xfe"],
        [msgpack.packb([1, 2, 3])],
        [msgpack.packb("a string")],
        [msgpack.packb({"kind": "no-such-kind"})],
        [msgpack.packb({"kind": None})],
        [msgpack.packb({"no": "kind"})],
        [msgpack.packb({1: 2})],  # non-string map key
        [msgpack.packb({"kind": "heartbeat", "held_frames": "many"})],
        [msgpack.packb({"kind": "heartbeat", "held_frames": True})],
        [msgpack.packb({"kind": "heartbeat"})],  # missing field
        [msgpack.packb({**report, "report": {**report["report"], "created": "yesterday"}})],
        [msgpack.packb({**report, "report": {**report["report"], "exceptions": {"a": 1}}})],
        [msgpack.packb({"kind": "hello", "agent_id": agent_id, "secret": 123})],
        [NESTED],
        [msgpack.packb({"kind": "heartbeat", "held_frames": 1.5})],
        [b"\x92" + b"\xdd\xff\xff\xff\xff"],  # claims a 4-billion-item array
        [b"\xdb\xff\xff\xff\xf0abc"],  # claims a 4 GB string
    ]


def test_malformed_messages_are_dropped_and_counted_and_the_broker_serves_on(
    broker: Broker,
) -> None:
    attacker = RawAgent(broker.zmq_url)
    try:
        before = status(broker)["relay"]
        payloads = hostile_payloads(attacker.identity.decode())
        for frames in payloads:
            attacker.send(*frames)
        wait_for(
            lambda: status(broker)["relay"]["malformed"] >= before["malformed"] + len(payloads),
            what="every hostile message to be counted",
        )
        assert status(broker)["relay"]["malformed"] == before["malformed"] + len(payloads)
        # The same from an admitted agent: dropped too, and it stays admitted.
        assert isinstance(attacker.hello(broker.secret), Welcome)
        for frames in payloads:
            attacker.send(*frames)
        # Broker-to-agent kinds sent to the broker are "unexpected", not obeyed.
        attacker.send_message(EvalRequest(request_id="r", frame_id="f", code="1"))
        attacker.send_message(Welcome(dashboard_url="http://evil.example"))
        wait_for(
            lambda: status(broker)["relay"]["unexpected"] == before["unexpected"] + 2,
            what="the unexpected kinds to be counted",
        )
        assert status(broker)["relay"]["malformed"] == before["malformed"] + 2 * len(payloads)
        assert len(broker.live_agents()) == 1
        attacker.send_message(ReportMessage(report=a_report(attacker.identity.decode())))
        wait_for(lambda: len(broker.reports()) == 1, what="a good report after the bad ones")
    finally:
        attacker.close()
    assert broker.process is not None and broker.process.alive()


def test_oversized_messages_are_dropped_and_the_broker_serves_on(broker: Broker) -> None:
    attacker = RawAgent(broker.zmq_url)
    try:
        assert isinstance(attacker.hello(broker.secret), Welcome)
        agent_id = attacker.identity.decode()
        # Just over the cap: read, dropped and counted.
        big = a_report(agent_id)
        padding = "x" * protocol.MAX_MESSAGE_BYTES
        attacker.send(protocol.encode(ReportMessage(report=_with_text(big, padding))))
        wait_for(lambda: status(broker)["relay"]["oversized"] == 1, what="the oversized count")
        # Far over it: zmq cuts the connection before the broker buffers it.
        attacker.send(b"\x00" * (3 * protocol.MAX_MESSAGE_BYTES))
        assert broker.reports() == []
    finally:
        attacker.close()
    # The broker is fine: a new agent is admitted and its report stored.
    fresh = RawAgent(broker.zmq_url)
    try:
        assert isinstance(fresh.hello(broker.secret), Welcome)
        fresh.send_message(ReportMessage(report=a_report(fresh.identity.decode())))
        wait_for(lambda: len(broker.reports()) == 1, what="a normal report")
        assert broker.get("/api/reports").status == 200
    finally:
        fresh.close()


def _with_text(report: Report, text: str) -> Report:
    wire = protocol.to_wire(report)
    wire["text"] = text
    built: Report = protocol.from_wire(Report, wire)
    return built


# --- a hostile broker against a real agent ----------------------------------------------------


class RawBroker:
    """A raw zmq ROUTER posing as the broker, with the keys of ``secret`` (a hijacked broker)."""

    def __init__(self, secret: str = "raw-broker-secret") -> None:
        self.secret = secret
        self.context = zmq.Context()
        self.socket = broker_socket(self.context, secret)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.url = f"tcp://127.0.0.1:{port}"

    def expect(self, kind: type[Any], timeout: float = 20.0) -> tuple[bytes, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.socket.poll(100):
                continue
            identity, payload = self.socket.recv_multipart()
            message = protocol.decode(payload)
            if isinstance(message, kind):
                return identity, message
        raise AssertionError(f"no {kind.__name__} from the agent")

    def send(self, identity: bytes, *frames: bytes) -> None:
        self.socket.send_multipart([identity, *frames])

    def welcome(self, identity: bytes, hello: Hello, dashboard_url: str) -> None:
        """Welcome ``hello`` with the proof of this broker's secret."""
        self.send(identity, protocol.encode(proven_welcome(self.secret, hello, dashboard_url)))

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


@pytest.fixture
def raw_broker() -> Iterator[RawBroker]:
    found = RawBroker()
    yield found
    found.close()


def _frame_ids(report: Report) -> list[str]:
    return [f.frame_id for e in report.exceptions for f in e.frames if f.frame_id]


@pytest.mark.parametrize("evalex", [False, True], ids=["evalex-off", "evalex-on-control"])
def test_evalex_false_is_enforced_in_the_agent_whatever_the_broker_sends(
    raw_broker: RawBroker, start_agent: Any, tmp_path: Path, evalex: bool
) -> None:
    start_agent(raw_broker.url, raw_broker.secret, evalex=evalex)
    identity, hello = raw_broker.expect(Hello)
    assert hello.evalex is evalex  # the agent tells the broker, which refuses such evals too
    raw_broker.welcome(identity, hello, "http://127.0.0.1:1")
    _, message = raw_broker.expect(ReportMessage)
    frame_ids = _frame_ids(message.report)
    assert frame_ids, "the agent holds the frames (so only evalex stands in the way)"
    marker = tmp_path / "marker"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    for frame_id in frame_ids:
        request_id = uuid.uuid4().hex
        raw_broker.send(
            identity,
            protocol.encode(EvalRequest(request_id=request_id, frame_id=frame_id, code=code)),
        )
        _, result = raw_broker.expect(EvalResult)
        assert result.request_id == request_id
        if evalex:
            assert result.ok, result.error
            break
        assert not result.ok
        assert (result.error, result.reason) == (EVALEX_DISABLED, protocol.DISABLED)
    if not evalex:
        # Nor the process console, nor completion (getattr runs properties: code too).
        raw_broker.send(
            identity,
            protocol.encode(EvalRequest(request_id="c", frame_id=CONSOLE_FRAME_ID, code=code)),
        )
        _, result = raw_broker.expect(EvalResult)
        assert (result.ok, result.error) == (False, EVALEX_DISABLED)
        complete = CompleteRequest(request_id="k", frame_id=frame_ids[0], text="marker.")
        raw_broker.send(identity, protocol.encode(complete))
        _, completion = raw_broker.expect(CompleteResult)
        assert (completion.ok, completion.error, completion.matches) == (
            False,
            EVALEX_DISABLED,
            (),
        )
    assert marker.exists() is evalex


def test_the_agent_drops_hostile_broker_messages_and_keeps_working(
    raw_broker: RawBroker, start_agent: Any
) -> None:
    agent = start_agent(raw_broker.url, raw_broker.secret)
    identity, hello = raw_broker.expect(Hello)
    raw_broker.welcome(identity, hello, "http://127.0.0.1:1")
    raw_broker.expect(ReportMessage)
    for frames in hostile_payloads("x"):
        raw_broker.send(identity, *frames)
    raw_broker.send(identity, protocol.encode(Refused(reason="\x1b[2J" + "x" * 1000)))
    raw_broker.send(identity, protocol.encode(Welcome(dashboard_url="javascript:alert(1)")))
    # Refused: it stops trusting the broker until a welcome proves the secret again (the
    # unproven one just sent does not), then it answers: a ping brings a heartbeat, an eval
    # a result.
    _, hello = raw_broker.expect(Hello)
    raw_broker.welcome(identity, hello, "javascript:alert(1)")
    raw_broker.send(identity, protocol.encode(protocol.Ping()))
    raw_broker.expect(Heartbeat)
    raw_broker.send(
        identity, protocol.encode(EvalRequest(request_id="r1", frame_id="nope", code="1"))
    )
    _, result = raw_broker.expect(EvalResult)
    assert not result.ok and "frame released" in (result.error or "")
    # The refusal's reason reached the app's log bounded and without control characters.
    log = agent.output()
    assert "?[2J" + "x" * 296 + "..." in log and "x" * 297 not in log and "\x1b" not in log
    # Over the agent's size cap: libzmq ends the connection (see SECURITY.md); the app
    # process is not harmed.
    raw_broker.send(identity, b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1))
    raw_broker.send(identity, protocol.encode(protocol.Ping()))
    assert agent.alive() and "Traceback" not in agent.output()
