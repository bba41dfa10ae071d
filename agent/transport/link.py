"""The agent's I/O thread: the only user of its zmq DEALER, and the loop that serves it.

A ``Link`` runs on the thread its ``Transport`` starts. It connects with CurveZMQ, its keys
derived from the shared secret (``protocol.keys``), so nothing leaves the process until the
broker has proven it holds the secret; it says hello (a proof, never the secret), trusts the
broker once its welcome carries the matching proof, then sends queued reports, heartbeats,
runs requests that run app code through the ``dispatch`` it was given, on its own thread,
and sends the answers back; a request that runs long gives the loop to a new thread
(takeover.py). Until then no request from the peer runs. With ``insecure_plaintext`` the link is
plain zmq and only the welcome's proof stands between the peer and the app. The app's
threads reach it only through its ``Mailbox`` (mailbox.py), whose wake pair it polls beside
the socket; what it learns (welcome, refusal) it publishes as its own public attributes.
Every agent message is one zmq frame; broker messages are read from the last frame, so the
broker may prefix an empty delimiter.

When a connection dies without zmq retrying (libzmq gives up after a protocol error), the
link closes the socket and starts over with a new one.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from debugbroker import protocol
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.transport.mailbox import Mailbox
from debugbroker.agent.transport.repeats import RepeatBudget
from debugbroker.agent.transport.takeover import Replaced, Watch
from debugbroker.protocol import (
    BreakpointStates,
    Bye,
    CompleteRequest,
    EvalRequest,
    ExpandRequest,
    Heartbeat,
    Hello,
    HelloRequest,
    InterruptRequest,
    Message,
    Ping,
    ProtocolError,
    Refused,
    Release,
    Released,
    Repeats,
    ReportMessage,
    Resume,
    SetBreakpoints,
    SourceRequest,
    Step,
    Stored,
    Welcome,
    encoder,
    keys,
)

__all__ = ["Link", "AgentIdentity", "AppRequest", "Dispatch", "BreakpointHandler"]

# What the I/O thread gives ``dispatch``: each may run app code (reprs, evals) or reach the
# eval threads; ``dispatch`` runs it on the calling thread, inside the takeover watch.
AppRequest = EvalRequest | CompleteRequest | ExpandRequest | SourceRequest | InterruptRequest
Dispatch = Callable[[AppRequest], None]


class BreakpointHandler(Protocol):
    """What arms the broker's breakpoints in this process (``agent/breakpoints.py``)."""

    def apply(self, message: SetBreakpoints) -> None:
        """Arm the broker's whole list."""

    def tick(self, now: float) -> None:
        """Look again for the files of pending breakpoints, when it is time."""

    def take_states(self) -> BreakpointStates | None:
        """The breakpoints' states to send, when they changed."""

    def clear(self) -> None:
        """Disarm them all (the agent stops)."""

    def listed(self) -> int:
        """How many breakpoints the broker's last list held (the hello says it)."""


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """Who this agent is, as its hello tells the broker."""

    agent_id: str
    pid: int
    host: str
    started: float


_LAST_STORED = 10_000  # acknowledged report ids remembered (``last_stored``)
_POLL_MS = 100  # the longest the I/O thread sleeps without looking at the clock
_HELLO_RETRY_SECONDS = 1.0  # no welcome yet: the broker may have been down at start
_REFUSED_RETRY_SECONDS = 5.0  # refused: keep asking, slowly, in case the secret is fixed
_SEND_RETRY_SECONDS = 0.05  # connected, but the socket did not take the hello yet
_REPEATS_SECONDS = 1.0  # counted repeats go to the broker at most this often (and at bye)
_CONNECT_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED  # with IMMEDIATE, sends wait for this
_LOST_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED
_RETRY_EVENTS = zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECT_DELAYED
_RESOCKET_SECONDS = 5.0  # lost this long with no retry from zmq: make a new socket
_HANDSHAKE_FAILED_EVENTS = (  # CurveZMQ: another secret, not the broker, or plain zmq
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def _log(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed or broken: nothing left to tell
        pass


class Link:
    """The I/O thread of one agent: connects, serves the socket, and starts over.

    What the app's threads read: ``welcomed`` (set while the broker has welcomed this
    agent), ``welcome_url``, ``refused_reason``, ``malformed_messages``,
    ``unproven_requests`` (requests from a peer not proven to be the broker, dropped),
    ``stored_reports`` and ``last_stored`` (the broker's acknowledgements,
    ``protocol.Stored``) and ``finished`` (set once the thread closed its socket). Only this
    thread writes them.
    """

    def __init__(
        self,
        options: Options,
        identity: AgentIdentity,
        mailbox: Mailbox,
        registry: FrameRegistry,
        make_dispatch: Callable[[Callable[[Message], None]], Dispatch],
        breakpoints: BreakpointHandler | None = None,
        repeats: RepeatBudget | None = None,
    ) -> None:
        """``make_dispatch(answer)`` makes what runs app-code requests, answering through
        ``answer`` from any thread; ``repeats``: the errors counted, not captured."""
        self.options = options
        self.repeats = repeats
        self._repeats_due = 0.0
        self.breakpoints = breakpoints
        self.identity = identity
        self.mailbox = mailbox
        self.registry = registry
        self.dispatch = make_dispatch(self.answer)
        # Per thread: the answers a request running on this serving thread gave, sent as soon
        # as it returns (no wake-up, no extra turn of the loop); None elsewhere.
        self._local = threading.local()
        self.welcomed = threading.Event()
        self.welcome_url: str | None = None
        self.refused_reason: str | None = None
        self.malformed_messages = 0
        self.stored_reports = 0  # reports the broker acknowledged (committed to its store)
        self.last_stored: deque[str] = deque(maxlen=_LAST_STORED)  # their latest ids
        self.unproven_requests = 0
        self.finished = threading.Event()
        self._linger_ms = 0  # how long closing the socket may wait for unsent messages
        # Said once in the app's log until the broker is reached again (not once per retry,
        # nor once per new socket): why the peer is not trusted.
        self._distrust_logged = False
        # App-code requests run on the serving thread; a long one gives the loop away.
        self._watch = Watch("debugbroker-watch")
        self._thread_name = f"debugbroker-agent-{identity.pid}"
        self.serving: threading.Thread | None = None  # the thread serving the socket now

    def run(self) -> None:
        """The thread's body: serve sockets until the mailbox stops or the process exits."""
        self._serve_from(None)

    def _serve_from(self, session: _Session | None) -> None:
        """Serve ``session`` (one taken over), then new sockets while the connection dies for
        good; a thread whose loop was taken over while it ran app code just ends."""
        self.serving = threading.current_thread()
        try:
            again = self._serve(session) if session is not None else True
            while again:
                again = self._serve_new_socket()
        except Replaced:
            return  # another thread serves on (and sets ``finished`` in the end)
        except BaseException:
            self.finished.set()
            raise
        self.finished.set()

    def _serve_new_socket(self) -> bool:
        """Connect and serve until stopped; True when a fresh socket should take over."""
        try:
            session = _Session(self.options, self.identity, self.mailbox.fileno())
        except Exception as error:  # a bad broker URL, say: the app runs on without us
            _log(f"the agent stopped: {type(error).__name__}: {error}")
            return False
        return self._serve(session)

    def _serve(self, session: _Session) -> bool:
        replaced = False
        try:
            return self._loop(session)
        except Replaced:
            replaced = True
            raise
        except Exception as error:
            _log(f"the agent stopped: {type(error).__name__}: {error}")
            return False
        finally:
            if not replaced:
                self.welcomed.clear()
                session.close(self._linger_ms)

    def _loop(self, session: _Session) -> bool:
        mailbox = self.mailbox
        sock, monitor, poller = session.sock, session.monitor, session.poller
        wake_fd, state = session.wake_fd, session.state
        assert monitor is not None  # (set once the session is made)
        while not mailbox.stopping:
            try:
                events = dict(poller.poll(_POLL_MS))
                if wake_fd in events:
                    mailbox.drain_wake()  # every queue is looked at below, after this
                if monitor in events:
                    self._read_monitor(monitor, state)
                if sock in events:
                    self._read_broker(session)
                self._tick(sock, state)
                if mailbox.bye_requested:
                    self._send_bye(sock)
                    return False
                if state.lost_at and time.monotonic() - state.lost_at > _RESOCKET_SECONDS:
                    # Lost without zmq retrying: libzmq does not reconnect after a protocol
                    # error (an oversized message, say). A new socket does.
                    _log("the connection to the broker broke; connecting again")
                    return True
            except Exception as error:  # never let one bad moment end the agent
                if mailbox.stopping:
                    return False
                _log(f"agent I/O error (continuing): {type(error).__name__}: {error}")
                time.sleep(_POLL_MS / 1000)
        return False

    def _read_monitor(self, monitor: zmq.Socket[bytes], state: _LoopState) -> None:
        while monitor.poll(0):
            found = recv_monitor_message(monitor, zmq.NOBLOCK)
            event = found["event"]
            if event & _HANDSHAKE_FAILED_EVENTS:
                self._distrust(_handshake_failure(self.options, found["value"]))
            elif event & _RETRY_EVENTS:
                state.lost_at = time.monotonic()  # zmq is still trying: no new socket yet
            elif event & _CONNECT_EVENTS:
                if not self.options.insecure_plaintext:
                    self._distrust_logged = False  # the CurveZMQ handshake proved the broker
                state.lost_at = 0.0
                state.link_up = True
                state.hello_due = 0.0  # say hello as soon as the pipe takes it
            elif event & _LOST_EVENTS:  # also every failed reconnect while the broker is down
                state.lost_at = time.monotonic()
                state.link_up = False
                self.welcomed.clear()

    def _read_broker(self, session: _Session) -> None:
        sock = session.sock
        for _ in range(100):  # bounded, so heartbeats still go out under a flood
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = protocol.decode(frames[-1])
            except (ProtocolError, IndexError):
                self.malformed_messages += 1
                continue
            self._handle(message, session)

    def _handle(self, message: Message, session: _Session) -> None:
        state = session.state
        if isinstance(message, Welcome):
            answered = self._proven(message, state)
            if answered is None:
                self._distrust(
                    f"the process at {self.options.broker_url} answered but did not prove "
                    "it knows DEBUGBROKER_SECRET (its welcome's proof does not match): either "
                    "its secret differs from this agent's, or it is not the broker. Nothing "
                    "more is sent to it and none of its requests run."
                )
                return
            self._distrust_logged = False
            # Only this hello is answered: a hello re-sent while the welcome was on its way
            # (a loaded machine) gets its own welcome, which must not read as a stranger's.
            state.nonces.remove(answered)
            url = message.dashboard_url
            self.welcome_url = url if url.startswith(("http://", "https://")) else None
            self.refused_reason = None
            state.logged_refusal = False
            self.welcomed.set()
            state.heartbeat_due = 0.0
        elif isinstance(message, Refused):
            self.welcomed.clear()
            self.refused_reason = message.reason
            state.hello_due = time.monotonic() + _REFUSED_RETRY_SECONDS
            if not state.logged_refusal:
                state.logged_refusal = True
                _log(
                    f"broker refused this agent: {_printable(message.reason)} "
                    f"(broker {self.options.broker_url}). Errors are not sent to the "
                    "dashboard; check DEBUGBROKER_SECRET matches the broker's secret."
                )
        elif isinstance(message, HelloRequest):
            self.welcomed.clear()  # queue reports until the broker welcomes us again
            state.hello_due = 0.0
        elif isinstance(message, Ping):
            state.heartbeat_due = 0.0  # (sent only once welcomed)
        elif not self.welcomed.is_set():  # a peer not (or no longer) proven: runs nothing
            self.unproven_requests += 1
        elif isinstance(
            message, (EvalRequest, CompleteRequest, ExpandRequest, SourceRequest, InterruptRequest)
        ):
            self._run_app_code(message, session)
        elif isinstance(message, Resume):
            self.mailbox.resume(message.report_id)
        elif isinstance(message, Step):  # a step from the dashboard: the thread pauses again
            self.mailbox.resume(message.report_id, message)
        elif isinstance(message, SetBreakpoints):
            if self.breakpoints is not None:
                self.breakpoints.apply(message)  # finds code objects: a moment, on this thread
        elif isinstance(message, Release):  # the dashboard's "Release frames"
            self.registry.release_report(message.report_id)
        elif isinstance(message, Stored):  # the broker committed these reports
            self.stored_reports += len(message.report_ids)
            self.last_stored.extend(message.report_ids)
        else:  # an agent-to-broker message sent our way
            self.malformed_messages += 1

    def answer(self, result: Message) -> None:
        """Send ``result`` to the broker (any thread; the dispatch's answers)."""
        outbox: list[Message] | None = getattr(self._local, "outbox", None)
        if outbox is not None:  # given by a request running on this serving thread
            outbox.append(result)
        else:
            self.mailbox.put_result(result)

    def _run_app_code(self, request: AppRequest, session: _Session) -> None:
        """Run ``request`` on this thread; its answers, once it returns, go out at once."""
        outbox: list[Message] = []
        self._local.outbox = outbox
        try:
            with self._watch.running(lambda: self._hand_over(session)):
                self.dispatch(request)
        except Replaced:  # another thread serves the socket now: it sends them
            self._local.outbox = None
            for result in outbox:
                self.mailbox.put_result(result)
            raise
        self._local.outbox = None
        if os.getpid() != self.identity.pid:  # the code forked: this is the child's only
            raise Replaced  # thread, and the socket is the parent's (zmq is not fork-safe)
        for result in outbox:
            self._send(session.sock, result)  # not sent: the broker times the request out

    def _hand_over(self, session: _Session) -> None:
        """From the watch thread: serve ``session`` on a new thread (this one runs app code)."""
        thread = threading.Thread(
            target=self._serve_from, args=(session,), name=self._thread_name, daemon=True
        )
        thread.start()

    def _tick(self, sock: zmq.Socket[bytes], state: _LoopState) -> None:
        mailbox = self.mailbox
        now = time.monotonic()
        if not self.welcomed.is_set() and now >= state.hello_due:
            if self._send(sock, self._hello(state)):
                retry = _REFUSED_RETRY_SECONDS if self.refused_reason else _HELLO_RETRY_SECONDS
                state.hello_due = now + retry
            else:  # not connected: the handshake event will call for the hello
                state.hello_due = now + (
                    _SEND_RETRY_SECONDS if state.link_up else _HELLO_RETRY_SECONDS
                )
        for result in mailbox.take_results():
            self._send(sock, result)  # not sent: the broker times the eval out
        if not self.welcomed.is_set():
            return
        self._flush_reports(sock)
        for resumed in mailbox.take_resumed():  # after the paused report itself
            self._send(sock, resumed)
        if now >= self._repeats_due and not mailbox.queued_reports:  # after their reports
            self._send_repeats(sock)
            self._repeats_due = now + _REPEATS_SECONDS
        registry = self.registry
        if registry.has_released and not mailbox.queued_reports:  # after the reports they name
            released = registry.take_released()
            for start in range(0, len(released), protocol.MAX_HELD_IDS):
                chunk = released[start : start + protocol.MAX_HELD_IDS]
                self._send(sock, Released(report_ids=chunk))  # lost: the next hello corrects
        if self.breakpoints is not None:
            self.breakpoints.tick(now)
            states = self.breakpoints.take_states()
            if states is not None:
                self._send(sock, states)  # lost: the next welcome's list brings them again
        if now >= state.heartbeat_due:
            beat = Heartbeat(
                held_frames=len(registry),
                dropped_reports=mailbox.dropped_reports,
                held_reports=registry.report_count,
                held_bytes=registry.held_bytes,
            )
            self._send(sock, beat)
            state.heartbeat_due = now + max(self.options.heartbeat_seconds, 0.01)

    def _flush_reports(self, sock: zmq.Socket[bytes]) -> None:
        mailbox = self.mailbox
        while (report := mailbox.next_report()) is not None:
            try:
                payload = encoder.encode(ReportMessage(report=report))  # compiled: fast
            except Exception as error:
                payload = b""
                _log(f"could not encode report {report.id}: {type(error).__name__}: {error}")
            if len(payload) > protocol.MAX_MESSAGE_BYTES:
                _log(f"report {report.id} is too big to send ({len(payload)} bytes)")
                payload = b""
            if payload and not self._send_bytes(sock, payload):
                return  # the socket is not ready: the report waits for the next tick
            mailbox.report_done(report, sent=bool(payload))

    def _send_repeats(self, sock: zmq.Socket[bytes]) -> None:
        """The repeats counted since the last time (kept for the next time if not sent)."""
        if self.repeats is None:
            return
        while counts := self.repeats.take_counts():
            if not self._send(sock, Repeats(counts=tuple(counts))):
                self.repeats.restore(counts)
                return

    def _send_bye(self, sock: zmq.Socket[bytes]) -> None:
        """Last words: queued reports and counted repeats, then a bye; closing waits a moment
        for them to go."""
        if self.welcomed.is_set():
            self._flush_reports(sock)
            if not self.mailbox.queued_reports:  # (never before the reports they name)
                self._send_repeats(sock)
            self._send(sock, Bye(reason="the process exited"))
            self._linger_ms = 1000
        self.mailbox.stop()

    def _proven(self, welcome: Welcome, state: _LoopState) -> str | None:
        """The nonce of the hello sent on this socket that ``welcome`` answers, proving the
        secret; None when it answers none."""
        for nonce in state.nonces:
            expected = keys.welcome_proof(
                self.options.secret, self.identity.agent_id, nonce, welcome.dashboard_url
            )
            if keys.proof_matches(expected, welcome.proof):
                return nonce
        return None

    def _distrust(self, why: str) -> None:
        """Say once (until the broker is reached again) why the peer is not trusted."""
        if not self._distrust_logged:
            self._distrust_logged = True
            _log(why)

    def _hello(self, state: _LoopState) -> Hello:
        options = self.options
        identity = self.identity
        nonce = secrets.token_hex(16)  # fresh per hello: a welcome answers one of these
        state.nonces.append(nonce)
        return Hello(
            agent_id=identity.agent_id,
            nonce=nonce,
            proof=keys.hello_proof(options.secret, identity.agent_id, nonce),
            pid=identity.pid,
            host=identity.host,
            app=options.app_name,
            python=platform.python_version(),
            started=identity.started,
            evalex=options.evalex,
            console=options.console and options.evalex,
            eval_timeout=options.eval_timeout_seconds,
            paused=self.mailbox.paused_reports(),
            held=self.registry.held_reports()[-protocol.MAX_HELD_IDS :],
            breakpoints=self.breakpoints.listed() if self.breakpoints is not None else 0,
        )

    def _send(self, sock: zmq.Socket[bytes], message: Message) -> bool:
        return self._send_bytes(sock, encoder.encode(message))

    def _send_bytes(self, sock: zmq.Socket[bytes], payload: bytes) -> bool:
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:  # no connection yet (IMMEDIATE) or the pipe is full
            return False
        return True


class _Session:
    """One socket and everything its loop needs; a thread taking the loop over gets it."""

    __slots__ = ("context", "sock", "monitor", "poller", "wake_fd", "state")

    def __init__(self, options: Options, identity: AgentIdentity, wake_fd: int) -> None:
        self.context = zmq.Context()
        self.sock: zmq.Socket[bytes] = self.context.socket(zmq.DEALER)
        self.monitor: zmq.Socket[bytes] | None = None
        self.state = _LoopState()
        self.wake_fd = wake_fd
        self.poller = zmq.Poller()
        try:
            sock = self.sock
            sock.setsockopt(zmq.IDENTITY, identity.agent_id.encode())
            _configure_curve(sock, options)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            self.monitor = sock.get_monitor_socket(
                _CONNECT_EVENTS | _LOST_EVENTS | _HANDSHAKE_FAILED_EVENTS | _RETRY_EVENTS
            )
            sock.connect(options.broker_url)
            self.poller.register(sock, zmq.POLLIN)
            self.poller.register(self.monitor, zmq.POLLIN)
            # pyzmq answers a plain descriptor by itself: register and look up the same int,
            # or the wake byte stays unread and this loop spins (and hogs the GIL).
            self.poller.register(wake_fd, zmq.POLLIN)
        except BaseException:
            self.close(0)
            raise

    def close(self, linger_ms: int) -> None:
        """Close the monitor, the socket and the context."""
        if self.monitor is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self.monitor.close(linger=0)
        self.sock.close(linger=linger_ms)
        self.context.term()


class _LoopState:
    """The I/O thread's timers and flags (touched by that thread only)."""

    __slots__ = (
        "hello_due",
        "heartbeat_due",
        "logged_refusal",
        "link_up",
        "lost_at",
        "nonces",
    )

    def __init__(self) -> None:
        self.link_up = False
        self.lost_at = 0.0  # when the link went down and zmq last tried again (0: up or new)
        self.hello_due = 0.0
        self.heartbeat_due = 0.0
        self.logged_refusal = False
        self.nonces: deque[str] = deque(maxlen=8)  # of the latest hellos sent on this socket


def _printable(text: str, limit: int = 300) -> str:
    """Text from the broker, fit for a log line: bounded, without control characters."""
    kept = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return kept + ("..." if len(text) > limit else "")


def _configure_curve(sock: zmq.Socket[bytes], options: Options) -> None:
    """CurveZMQ with the keys derived from the secret: the handshake proves the broker holds
    the secret before anything is sent, and proves the same of this agent to the broker."""
    if options.insecure_plaintext:
        return
    client_secret = keys.client_secret_key(options.secret).encode("ascii")
    sock.curve_serverkey = zmq.curve_public(keys.server_secret_key(options.secret).encode())
    sock.curve_publickey = zmq.curve_public(client_secret)
    sock.curve_secretkey = client_secret


def _handshake_failure(options: Options, value: int) -> str:
    """Why a connection that reached the broker's address failed its handshake, in words."""
    where = f"cannot connect to the broker at {options.broker_url}"
    unsent = "Nothing was sent to it; errors are not sent to the dashboard until this is fixed."
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH and options.insecure_plaintext:
        return (
            f"{where}: it encrypts the link (the default) but this agent has "
            f"DEBUGBROKER_INSECURE_PLAINTEXT set; unset it. {unsent}"
        )
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return (
            f"{where}: the process there does not speak debugbroker's encrypted link. It is "
            "either a broker run with --insecure-plaintext (then set "
            "DEBUGBROKER_INSECURE_PLAINTEXT=1 here too), an older broker, or not the broker. "
            + unsent
        )
    missing = "" if options.secret else " (DEBUGBROKER_SECRET is not set here)"
    return (  # (a plain-zmq peer may close first, with no detail: it is listed too)
        f"{where}: the process there did not prove it knows DEBUGBROKER_SECRET (the CurveZMQ "
        f"handshake failed): either its secret differs from this agent's{missing}, or it is "
        "a broker run with --insecure-plaintext (then set DEBUGBROKER_INSECURE_PLAINTEXT=1 "
        f"here too), or it is not the broker. {unsent}"
    )
