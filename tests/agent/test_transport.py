"""The agent's zmq link, against a tiny fake broker: a real ROUTER socket in the test, set up
as the broker's (CurveZMQ with the key derived from the secret) and welcoming with proofs."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import msgpack
import pytest
import zmq

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher, get_transport
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import (
    CONSOLE_FRAME_ID,
    EvalRequest,
    EvalResult,
    Heartbeat,
    Hello,
    HelloRequest,
    InterruptRequest,
    InterruptResult,
    Message,
    Refused,
    Report,
    ReportMessage,
    Welcome,
    keys,
)
from tests.conftest import broker_socket, proven_welcome

DEADLINE = 10.0


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Wait until ``predicate()`` holds or the deadline passes (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        idle.wait(0.01)
    return True


class FakeBroker:
    """A zmq ROUTER speaking the protocol, driven step by step by the test."""

    def __init__(
        self, port: int | None = None, secret: str = "s3cret", *, curve: bool = True
    ) -> None:
        self.secret = secret
        self.hellos: dict[bytes, Hello] = {}  # the latest hello of each identity
        self.context = zmq.Context()
        self.socket = broker_socket(self.context, secret, curve=curve)
        if port is None:
            port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.socket.bind(f"tcp://127.0.0.1:{port}")
        self.port = port
        self.url = f"tcp://127.0.0.1:{port}"

    def receive(self, timeout: float = DEADLINE) -> tuple[bytes, Message] | None:
        """The next (identity, message), or None when nothing came before the deadline."""
        if not self.socket.poll(int(timeout * 1000)):
            return None
        identity, payload = self.socket.recv_multipart()
        message = protocol.decode(payload)
        if isinstance(message, Hello):
            self.hellos[identity] = message
        return identity, message

    def expect(
        self, kind: type[Message], timeout: float = DEADLINE, skip: tuple[type[Message], ...] = ()
    ) -> tuple[bytes, Message]:
        """The next message of ``kind``, skipping heartbeats and ``skip``; fails otherwise.

        A repeated hello is always skipped when waiting for something else: the agent
        re-sends hellos until the welcome arrives, so one may cross the welcome.
        """
        if kind is not Hello:
            skip = (*skip, Hello)
        deadline = time.monotonic() + timeout
        while True:
            got = self.receive(max(0.0, deadline - time.monotonic()))
            assert got is not None, f"no {kind.__name__} before the deadline"
            if isinstance(got[1], kind):
                return got
            assert isinstance(got[1], (Heartbeat, *skip)), f"unexpected {got[1]!r}"

    def nothing_but(self, kinds: tuple[type[Message], ...], timeout: float) -> None:
        """Check that only ``kinds`` arrive for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.receive(left)
            if got is not None:
                assert isinstance(got[1], kinds), f"unexpected {got[1]!r}"

    def send(self, identity: bytes, message: Message | bytes) -> None:
        payload = message if isinstance(message, bytes) else protocol.encode(message)
        self.socket.send_multipart([identity, payload])

    def welcome(self, dashboard_url: str = "http://dash.example:8780/") -> bytes:
        """Wait for a hello and welcome its sender; returns the agent's identity."""
        identity, _ = self.expect(Hello)
        self.welcome_again(identity, dashboard_url)
        return identity

    def welcome_again(self, identity: bytes, dashboard_url: str) -> None:
        """Welcome ``identity``'s latest hello, with the proof of this broker's secret."""
        self.send(identity, proven_welcome(self.secret, self.hellos[identity], dashboard_url))

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_report(number: int) -> Report:
    return Report(
        id=f"report-{number}",
        agent_id="agent",
        created=time.time(),
        type_name="ValueError",
        message=f"error {number}",
        text=f"ValueError: error {number}\n",
        exceptions=(),
    )


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def make_transport() -> Iterator[Callable[..., Transport]]:
    made: list[Transport] = []

    def make(broker_url: str, **options: object) -> Transport:
        settings = {"secret": "s3cret", "heartbeat_seconds": 0.2, **options}
        options_ = Options(broker_url=broker_url, **settings)  # type: ignore[arg-type]
        transport = Transport(options_, eval_dispatcher)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def test_hello_proves_the_secret_without_carrying_it(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url, app_name="shop", evalex=False)
    identity, hello = broker.expect(Hello)
    assert isinstance(hello, Hello)
    assert identity == transport.agent_id.encode()
    assert (hello.agent_id, hello.pid) == (transport.agent_id, os.getpid())
    assert hello.proof == keys.hello_proof("s3cret", hello.agent_id, hello.nonce)
    assert len(hello.nonce) == 32 and "s3cret" not in repr(hello)
    assert (hello.app, hello.evalex, hello.protocol) == ("shop", False, protocol.PROTOCOL_VERSION)
    assert hello.host == socket.gethostname()[:100]
    assert transport.agent_id.endswith(f"-{os.getpid()}-{hello.host}")
    assert not transport.connected
    assert transport.dashboard_url == Options().dashboard_url


def test_reports_wait_for_the_welcome_then_flush_in_order(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url)
    identity, _ = broker.expect(Hello)
    for number in range(3):
        transport.submit_report(make_report(number))
    broker.nothing_but((Hello,), timeout=0.3)  # no report may go out before the welcome
    assert transport.queued_reports == 3

    broker.welcome_again(identity, "http://dash.example:8780/")
    received = [broker.expect(ReportMessage)[1] for _ in range(3)]
    assert [m.report.id for m in received if isinstance(m, ReportMessage)] == [
        "report-0",
        "report-1",
        "report-2",
    ]
    assert transport.wait_connected(DEADLINE) and transport.connected
    assert transport.dashboard_url == "http://dash.example:8780"
    # Once welcomed, a report goes straight out, and heartbeats count held frames.
    transport.submit_report(make_report(3))
    _, late = broker.expect(ReportMessage)
    assert isinstance(late, ReportMessage) and late.report.id == "report-3"
    _, beat = broker.expect(Heartbeat)
    assert isinstance(beat, Heartbeat) and (beat.held_frames, beat.dropped_reports) == (0, 0)


def test_hello_request_makes_the_agent_say_hello_again(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url)
    identity = broker.welcome()
    assert transport.wait_connected(DEADLINE)

    broker.send(identity, HelloRequest())
    again, hello = broker.expect(Hello)
    assert again == identity and isinstance(hello, Hello)
    assert hello.proof == keys.hello_proof("s3cret", hello.agent_id, hello.nonce)
    assert wait_for(lambda: not transport.connected)
    transport.submit_report(make_report(1))  # waits for the new welcome
    broker.welcome_again(identity, "http://elsewhere:1")
    _, message = broker.expect(ReportMessage)
    assert isinstance(message, ReportMessage) and message.report.id == "report-1"
    assert transport.dashboard_url == "http://elsewhere:1"


def test_overflow_drops_the_oldest_and_is_counted_in_heartbeats(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url, queue_size=2)
    identity, _ = broker.expect(Hello)
    for number in range(5):
        transport.submit_report(make_report(number))
    assert transport.dropped_reports == 3 and transport.queued_reports == 2

    broker.welcome_again(identity, "http://dash")
    ids: list[str] = []
    beat: Message | None = None
    deadline = time.monotonic() + DEADLINE
    while beat is None or len(ids) < 2:
        got = broker.receive(max(0.0, deadline - time.monotonic()))
        assert got is not None, "reports or heartbeat missing"
        if isinstance(got[1], ReportMessage):
            ids.append(got[1].report.id)
        elif isinstance(got[1], Heartbeat):
            beat = got[1]
    assert ids == ["report-3", "report-4"]
    assert isinstance(beat, Heartbeat) and beat.dropped_reports == 3


def fail_with_locals() -> None:
    answer = 41  # noqa: F841 - read by the eval
    raise ValueError("for the eval")


def test_eval_request_gets_an_eval_result(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url)
    identity = broker.welcome()
    try:
        fail_with_locals()
    except ValueError as error:
        report = build_report(
            error,
            report_id="r1",
            agent_id=transport.agent_id,
            options=transport.options,
            registry=transport.registry,
        )
    frame_id = report.exceptions[-1].frames[-1].frame_id
    assert frame_id is not None and len(transport.registry) >= 1

    broker.send(identity, EvalRequest(request_id="q1", frame_id=frame_id, code="answer + 1"))
    _, result = broker.expect(EvalResult)
    assert isinstance(result, EvalResult) and result.request_id == "q1"
    assert result.ok and result.result is not None and result.result.text == "42"

    broker.send(identity, EvalRequest(request_id="q2", frame_id="nope", code="1"))
    _, missing = broker.expect(EvalResult)
    assert isinstance(missing, EvalResult) and not missing.ok and missing.request_id == "q2"
    assert missing.error is not None and "released" in missing.error
    _, beat = broker.expect(Heartbeat)
    assert isinstance(beat, Heartbeat) and beat.held_frames == len(transport.registry)


def test_a_slow_eval_does_not_stop_heartbeats(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url, heartbeat_seconds=0.05)
    identity = broker.welcome()
    try:
        fail_with_locals()
    except ValueError as error:
        report = build_report(
            error,
            report_id="r",
            agent_id="a",
            options=transport.options,
            registry=transport.registry,
        )
    frame_id = report.exceptions[-1].frames[-1].frame_id
    assert frame_id is not None
    release = threading.Event()
    # The eval waits on an event the test owns, so the test decides when it ends.
    transport.registry.get(frame_id).namespace["release"] = release  # type: ignore[union-attr]
    broker.send(
        identity, EvalRequest(request_id="slow", frame_id=frame_id, code="release.wait(30)")
    )
    for _ in range(3):
        broker.expect(Heartbeat)
    release.set()
    _, result = broker.expect(EvalResult)
    assert isinstance(result, EvalResult) and result.request_id == "slow" and result.ok


def test_a_looping_eval_gives_the_link_away_and_is_interrupted_from_the_broker(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    """Evals run on the I/O thread; one that loops loses the socket to a new thread, which
    serves heartbeats, other evals and the interrupt that stops the loop."""
    transport = make_transport(broker.url, heartbeat_seconds=0.05, eval_timeout_seconds=0)
    identity = broker.welcome()
    try:
        fail_with_locals()
    except ValueError as error:
        report = build_report(
            error,
            report_id="r",
            agent_id="a",
            options=transport.options,
            registry=transport.registry,
        )
    frame_id = report.exceptions[-1].frames[-1].frame_id
    assert frame_id is not None
    broker.send(
        identity, EvalRequest(request_id="loop", frame_id=frame_id, code="while True: pass")
    )
    broker.expect(Heartbeat)
    broker.send(identity, EvalRequest(request_id="other", frame_id=frame_id, code="answer * 2"))
    _, other = broker.expect(EvalResult)
    assert isinstance(other, EvalResult) and other.request_id == "other"
    assert other.result is not None and other.result.text == "82"
    broker.send(identity, InterruptRequest(request_id="stop", frame_id=frame_id))
    answers: dict[type[Message], Message] = {}
    while len(answers) < 2:  # the two answers may come in either order
        got = broker.receive(DEADLINE)
        assert got is not None, f"only {list(answers)} before the deadline"
        if isinstance(got[1], (InterruptResult, EvalResult)):
            answers[type(got[1])] = got[1]
    interrupted, looped = answers[InterruptResult], answers[EvalResult]
    assert isinstance(interrupted, InterruptResult) and interrupted.interrupted == 1
    assert isinstance(looped, EvalResult) and looped.request_id == "loop" and not looped.ok
    assert looped.error is not None and "KeyboardInterrupt" in looped.error
    assert "interrupted from the dashboard" in looped.error
    broker.expect(Heartbeat)  # the link still serves


def test_an_eval_that_forks_answers_from_the_parent_only(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    """The eval runs on the I/O thread: a forked child (that thread alone) must end there
    instead of serving the parent's zmq socket."""
    transport = make_transport(broker.url, console=True)
    identity = broker.welcome()
    code = "child = __import__('os').fork()\nchild"
    broker.send(identity, EvalRequest(request_id="fork", frame_id=CONSOLE_FRAME_ID, code=code))
    _, result = broker.expect(EvalResult)
    assert isinstance(result, EvalResult) and result.ok and result.result is not None
    child = int(result.result.text)
    assert child > 0  # the parent's answer; the child's thread ended without sending
    ended: list[int] = []

    def child_ended() -> bool:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            ended.append(status)
        return bool(ended)

    # Without the guard the child would serve the parent's socket forever.
    assert wait_for(child_ended), "the forked child's thread went on serving"
    broker.send(identity, EvalRequest(request_id="after", frame_id=CONSOLE_FRAME_ID, code="7"))
    _, after = broker.expect(EvalResult)
    assert isinstance(after, EvalResult) and after.request_id == "after" and after.ok
    assert transport.malformed_messages == 0


def test_malformed_messages_are_counted_and_the_thread_lives_on(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    transport = make_transport(broker.url)
    identity = broker.welcome()
    assert transport.wait_connected(DEADLINE)
    garbage = [
        b"\xc1\xc1 not msgpack",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"kind": "no-such-kind"}),
        msgpack.packb({"kind": "eval", "request_id": 5}),
        b"",
        protocol.encode(Heartbeat(held_frames=1)),  # an agent message sent the wrong way
    ]
    for payload in garbage:
        broker.send(identity, payload)
    broker.socket.send_multipart([identity, b"", b"\x00"])  # an extra frame, bad too
    assert wait_for(lambda: transport.malformed_messages == len(garbage) + 1)
    broker.send(identity, HelloRequest())
    broker.expect(Hello)


def test_refusal_is_logged_once_and_reports_stay_home(
    broker: FakeBroker,
    make_transport: Callable[..., Transport],
    capsys: pytest.CaptureFixture[str],
) -> None:
    transport = make_transport(broker.url)
    identity, _ = broker.expect(Hello)
    broker.send(identity, Refused(reason="wrong secret"))
    broker.send(identity, Refused(reason="wrong secret"))
    assert wait_for(lambda: "wrong secret" in capsys.readouterr().err)
    transport.submit_report(make_report(1))
    broker.nothing_but((Hello,), timeout=0.3)
    assert transport.refused_reason == "wrong secret" and not transport.connected
    assert "wrong secret" not in capsys.readouterr().err  # said once only


def test_a_welcome_for_a_hello_sent_again_is_no_strangers(
    broker: FakeBroker, make_transport: Callable[..., Transport], capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent says hello again while the first welcome is on its way: both welcomes come,
    and the second must not be taken for a broker that does not know the secret."""
    transport = make_transport(broker.url)
    identity, first = broker.expect(Hello)
    _, second = broker.expect(Hello)  # re-sent after a second without a welcome
    assert isinstance(first, Hello) and isinstance(second, Hello)
    assert first.nonce != second.nonce
    broker.send(identity, proven_welcome(broker.secret, first, "http://dash.example:8780/"))
    broker.send(identity, proven_welcome(broker.secret, second, "http://dash.example:8780/"))
    assert wait_for(lambda: transport.connected)
    transport.submit_report(make_report(1))
    broker.expect(ReportMessage)  # after both welcomes were read
    assert "did not prove" not in capsys.readouterr().err
    # A welcome replayed for a hello already answered is still refused.
    broker.send(identity, proven_welcome(broker.secret, first, "http://dash.example:8780/"))
    assert wait_for(lambda: "did not prove" in capsys.readouterr().err)


def test_a_welcome_without_the_proof_is_distrusted_over_plain_zmq(
    make_transport: Callable[..., Transport], capsys: pytest.CaptureFixture[str]
) -> None:
    # Plain zmq (asked for): anything on the port reads the hello, but only a welcome that
    # proves the secret gets reports sent and requests run.
    squatter = FakeBroker(secret="not-the-secret", curve=False)
    try:
        transport = make_transport(squatter.url, insecure_plaintext=True, console=True)
        transport.submit_report(make_report(1))
        identity, hello = squatter.expect(Hello)
        assert isinstance(hello, Hello) and "s3cret" not in repr(hello)
        squatter.welcome_again(identity, "http://evil.example/")
        squatter.send(identity, Welcome(dashboard_url="http://evil.example/", proof="0" * 64))
        code = "open('/nonexistent-should-not-run', 'w')"
        squatter.send(identity, EvalRequest(request_id="e", frame_id=CONSOLE_FRAME_ID, code=code))
        assert wait_for(lambda: transport.unproven_requests == 1)
        squatter.nothing_but((Hello,), timeout=0.3)  # no report, no eval result, no heartbeat
        assert not transport.connected and transport.dashboard_url != "http://evil.example"
        err = capsys.readouterr().err
        assert err.count("did not prove it knows DEBUGBROKER_SECRET") == 1, err
    finally:
        squatter.close()
    # The same, with the right secret: trusted.
    real = FakeBroker(curve=False)
    try:
        transport = make_transport(real.url, insecure_plaintext=True, console=True)
        transport.submit_report(make_report(2))
        real.welcome()
        _, sent = real.expect(ReportMessage)
        assert isinstance(sent, ReportMessage) and sent.report.id == "report-2"
    finally:
        real.close()


def test_submit_report_never_blocks_without_a_broker(
    make_transport: Callable[..., Transport],
) -> None:
    transport = make_transport(f"tcp://127.0.0.1:{free_port()}", queue_size=16)
    started = time.perf_counter()
    for number in range(2000):
        transport.submit_report(make_report(number))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"2000 submits took {elapsed:.3f}s"
    assert transport.queued_reports == 16 and transport.dropped_reports == 2000 - 16
    assert not transport.connected


def test_a_closed_transport_ignores_reports(make_transport: Callable[..., Transport]) -> None:
    transport = make_transport(f"tcp://127.0.0.1:{free_port()}")
    transport.close()
    transport.submit_report(make_report(1))
    assert transport.queued_reports == 0


def test_get_transport_is_one_per_process_and_options(broker: FakeBroker) -> None:
    options = Options(broker_url=broker.url, secret="s3cret", heartbeat_seconds=0.2)
    first = get_transport(options)
    try:
        assert get_transport(options) is first
        first.close()
        second = get_transport(options)
        assert second is not first and second.agent_id != first.agent_id
        second.close()
    finally:
        first.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_agent(broker: FakeBroker) -> None:
    options = Options(broker_url=broker.url, secret="s3cret", heartbeat_seconds=0.2)
    parent = get_transport(options)
    parent_identity = broker.welcome()
    assert parent.wait_connected(DEADLINE)
    reader, writer = os.pipe()
    ack_reader, ack_writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only os._exit may end it, whatever happens
        code = 1
        try:
            os.close(ack_writer)  # so that the parent closing its end wakes the select
            child = get_transport(options)
            os.write(writer, child.agent_id.encode() + b"\n")
            if child.wait_connected(DEADLINE) and child is not parent:
                child.submit_report(make_report(7))
                code = 0
            select.select([ack_reader], [], [], DEADLINE)  # the parent got the report
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(writer)
    os.close(ack_reader)
    try:
        child_identity, hello = broker.expect(Hello)
        while child_identity == parent_identity:  # a parent hello that crossed its welcome
            child_identity, hello = broker.expect(Hello)
        assert isinstance(hello, Hello) and hello.pid == pid
        assert child_identity not in (parent_identity, b"")
        broker.welcome_again(child_identity, "http://dash")
        sender, message = broker.expect(ReportMessage)
        assert sender == child_identity
        assert isinstance(message, ReportMessage) and message.report.id == "report-7"
        with os.fdopen(reader, "rb") as pipe:
            assert pipe.readline().strip() == child_identity
    finally:
        os.close(ack_writer)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's agent is untouched by the fork.
    assert get_transport(options) is parent and parent.agent_id.encode() == parent_identity
    broker.send(parent_identity, HelloRequest())
    again, _ = broker.expect(Hello)
    assert again == parent_identity
    parent.close()


def test_a_broker_that_starts_later_or_restarts_gets_the_reports(
    make_transport: Callable[..., Transport],
) -> None:
    port = free_port()
    transport = make_transport(f"tcp://127.0.0.1:{port}")
    transport.submit_report(make_report(1))  # the broker is not up yet: the report waits
    first = FakeBroker(port)
    try:
        first.welcome()
        _, message = first.expect(ReportMessage)
        assert isinstance(message, ReportMessage) and message.report.id == "report-1"
        assert transport.wait_connected(DEADLINE)
    finally:
        first.close()
    assert wait_for(lambda: not transport.connected)  # the connection dropped
    transport.submit_report(make_report(2))
    second = FakeBroker(port)  # a restarted broker: the agent says hello by itself
    try:
        second.welcome()
        _, message = second.expect(ReportMessage)
        assert isinstance(message, ReportMessage) and message.report.id == "report-2"
    finally:
        second.close()


def test_the_io_thread_reads_its_wake_byte_so_it_does_not_spin(
    broker: FakeBroker, make_transport: Callable[..., Transport]
) -> None:
    # pyzmq's poller answers a plain socket by its fd: a loop that looked for the socket
    # object never read the wake byte, and spun a core (holding the GIL) after the first error.
    transport = make_transport(broker.url)
    broker.welcome()
    assert transport.wait_connected(DEADLINE)
    transport.submit_report(make_report(1))
    broker.expect(ReportMessage)

    def drained() -> bool:
        readable, _, _ = select.select([transport.mailbox.fileno()], [], [], 0)
        return not readable

    assert wait_for(drained), "the wake byte was never read: the I/O loop spins"


def test_a_connection_cut_for_a_protocol_error_is_made_again(
    broker: FakeBroker, make_transport: Callable[..., Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    # libzmq drops a connection whose peer sent more than MAXMSGSIZE and does not retry it;
    # the agent notices that nothing is retrying and connects again with a new socket.
    monkeypatch.setattr("debugbroker.agent.transport.link._RESOCKET_SECONDS", 0.5)
    transport = make_transport(broker.url)
    identity = broker.welcome()
    assert transport.wait_connected(DEADLINE)
    broker.send(identity, b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1))
    assert wait_for(lambda: not transport.connected), "the oversized message did not cut the link"
    # Welcome every hello (a stale one may still be in flight) until the agent is back.
    deadline = time.monotonic() + DEADLINE
    # Short waits: a welcome may take effect while the next hello is awaited, and then no
    # hello comes any more.
    while not transport.connected:
        assert time.monotonic() < deadline, "the agent did not connect again"
        got = broker.receive(0.2)
        if got is None:
            continue
        again, message = got
        assert isinstance(message, (Hello, Heartbeat)), f"unexpected {message!r}"
        if isinstance(message, Hello):
            assert again == identity
            broker.welcome_again(again, "http://dash.example:8780/")
    transport.submit_report(make_report(7))
    _, sent = broker.expect(ReportMessage)
    assert isinstance(sent, ReportMessage) and sent.report.id == "report-7"
