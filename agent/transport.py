"""The agent's link to the broker: one background I/O thread per process owning a zmq DEALER.

Request threads only call ``Transport.submit_report``, which appends to a bounded queue and
wakes the I/O thread through a non-blocking socketpair write; it never touches zmq. The I/O
thread is the only user of the zmq socket: it says hello, sends reports once the broker has
welcomed it, heartbeats, and hands eval requests to short-lived eval threads whose results
it sends back. Every agent message is one zmq frame; broker messages are read from the last
frame, so the broker may prefix an empty delimiter.

``get_transport`` keeps one transport per process (per distinct ``Options``) and makes a new
one, with a new zmq context and agent id, when ``os.getpid()`` changes: a ``--preload``ed app
forked by gunicorn gets one healthy agent per worker and never uses zmq across a fork.
"""

from __future__ import annotations

import atexit
import os
import platform
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import codec, protocol
from .evaluate import interrupt, run_complete, run_eval
from .frames import FrameRegistry
from .lookup import answer_expand, answer_source
from .options import Options
from .protocol import (
    Bye,
    CompleteRequest,
    EvalRequest,
    EvalResult,
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
    Report,
    ReportMessage,
    Resume,
    Resumed,
    SourceRequest,
    Welcome,
)
from .workers import WorkerPool

__all__ = ["Transport", "get_transport", "current_transport", "make_agent_id"]

# What the I/O thread hands to a worker thread: each may run app code (reprs, evals).
_Request = EvalRequest | CompleteRequest | ExpandRequest | SourceRequest

_POLL_MS = 100  # the longest the I/O thread sleeps without looking at the clock
_HELLO_RETRY_SECONDS = 1.0  # no welcome yet: the broker may have been down at start
_REFUSED_RETRY_SECONDS = 5.0  # refused: keep asking, slowly, in case the secret is fixed
_SEND_RETRY_SECONDS = 0.05  # connected, but the socket did not take the hello yet
_MAX_EVALS = 8  # eval threads at once; more are answered with an error straight away
_MAX_RESULTS = 64  # eval results waiting for the socket
# A request thread that finds the report queue over half full while the broker is there waits
# (GIL released) until the I/O thread brings it under a quarter, at most this long: a thread
# raising errors back to back in pure Python otherwise holds the GIL for 5 ms at a time, the
# I/O thread sends one report per turn, and the queue sheds most of them.
_BACKLOG_WAIT_SECONDS = 0.005
_CONNECT_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED  # with IMMEDIATE, sends wait for this
_LOST_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED
_RETRY_EVENTS = zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECT_DELAYED
_RESOCKET_SECONDS = 5.0  # lost this long with no retry from zmq: make a new socket
_HANDSHAKE_FAILED_EVENTS = (  # CurveZMQ: a wrong server key, or curve on one side only
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def make_agent_id() -> str:
    """A new id for this process: ``uuid-pid-host`` (the broker routes by it)."""
    try:
        host = socket.gethostname()[:100]
    except OSError:
        host = ""
    return f"{uuid.uuid4().hex}-{os.getpid()}-{host}"


def _log(text: str) -> None:
    try:
        print(f"debugbroker: {text}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed or broken: nothing left to tell
        pass


class Transport:
    """One process's connection to the broker: a report queue, held frames and an I/O thread."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.agent_id = make_agent_id()
        self.pid = os.getpid()
        self.host = self.agent_id.split("-", 2)[2]
        self.started = time.time()
        self.registry = FrameRegistry(options.held_reports, options.held_bytes)
        self.dropped_reports = 0
        self.malformed_messages = 0
        self.refused_reason: str | None = None
        self._welcome_url: str | None = None
        self._welcomed = threading.Event()
        self._lock = threading.Lock()
        self._reports: deque[Report] = deque()
        self._room = threading.Event()  # the report queue is under its low-water mark
        self._room.set()
        self._results: deque[Message] = deque()  # eval, completion, interrupt results
        self._eval_slots = threading.BoundedSemaphore(_MAX_EVALS)
        self._eval_threads = WorkerPool("debugbroker-agent-eval")  # reused: no thread start
        self._stopping = False
        self._wake_pending = False  # a wake byte is on its way to the I/O thread
        self._bye_requested = False  # the process exits: flush, say bye, close
        self._linger_ms = 0  # how long closing the socket may wait for unsent messages
        self._finished = threading.Event()  # the I/O thread has closed its socket
        self._pauses: dict[str, threading.Event] = {}  # breakpoint() pauses by report id
        self._resumed: deque[Resumed] = deque(maxlen=_MAX_RESULTS)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._thread = threading.Thread(
            target=self._run, name=f"debugbroker-agent-{self.pid}", daemon=True
        )
        self._thread.start()
        try:
            _say_bye_in_multiprocessing_child()
        except Exception:  # an unusual multiprocessing: the heartbeat timeout still works
            pass

    # --- any thread ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the broker has welcomed this agent and the connection is up."""
        return self._welcomed.is_set()

    @property
    def dashboard_url(self) -> str:
        """The dashboard's base URL: the broker's (from its welcome), else the configured one."""
        return (self._welcome_url or self.options.dashboard_url).rstrip("/")

    @property
    def queued_reports(self) -> int:
        """Reports waiting for the broker."""
        return len(self._reports)

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker's welcome (tests and demos)."""
        return self._welcomed.wait(timeout)

    def submit_report(self, report: Report) -> None:
        """Queue a report for the broker; never raises. It waits only while the queue is over
        half full and the broker is there, at most ``_BACKLOG_WAIT_SECONDS``."""
        try:
            dropped: Report | None = None
            size = max(self.options.queue_size, 1)
            with self._lock:
                if self._stopping:
                    return
                if len(self._reports) >= size:
                    # The newest report is the one a 500 page links to: drop the oldest.
                    dropped = self._reports.popleft()
                    self.dropped_reports += 1
                self._reports.append(report)
                self._wake()
                backlog = len(self._reports) > size // 2 and self._welcomed.is_set()
                if backlog:
                    self._room.clear()
            if dropped is not None:
                self.registry.release_report(dropped.id)
            if backlog:  # let the I/O thread catch up (see _BACKLOG_WAIT_SECONDS)
                self._room.wait(_BACKLOG_WAIT_SECONDS)
        except Exception:  # a request thread must never see the agent fail
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop the I/O thread and close the socket (tests; a process normally keeps it)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        with self._lock:
            self._wake_writer.close()
            self._wake_reader.close()

    def say_bye(self, timeout: float = 2.0) -> None:
        """At process exit: send queued reports and a bye, waiting at most ``timeout``."""
        if self._stopping or not self._welcomed.is_set():
            return  # nobody to tell: exit at once
        if threading.current_thread() is self._thread:
            return
        with self._lock:
            self._bye_requested = True
            self._wake()
        self._finished.wait(timeout)

    def start_pause(self, report_id: str) -> threading.Event:
        """Register a ``breakpoint()`` pause; the event is set when someone presses Continue."""
        event = threading.Event()
        with self._lock:
            self._pauses[report_id] = event
        return event

    def end_pause(self, report_id: str, reason: str) -> None:
        """The paused thread goes on (``continue`` or ``timeout``): tell the broker."""
        with self._lock:
            self._pauses.pop(report_id, None)
            if self._stopping:
                return
            self._resumed.append(Resumed(report_id=report_id, reason=reason))
            self._wake()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._stopping

    def _wake(self) -> None:
        """Make the I/O thread's poll return; the caller holds ``_lock``.

        One wake byte is enough until the thread reads it: it looks at every queue after
        reading, so an error storm costs one syscall per loop turn, not one per report.
        """
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._wake_writer.send(b"\0")
        except OSError:  # closed (or full): no byte to wait for
            self._wake_pending = False

    def _abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and zmq objects, free the wake pair."""
        self._stopping = True
        self._lock = threading.Lock()  # may have been held by a parent thread at fork time
        for end in (self._wake_writer, self._wake_reader):
            try:
                end.close()
            except OSError:
                pass

    # --- eval threads ---------------------------------------------------------------------

    def _start_eval(self, request: _Request) -> None:
        error = f"the agent is already running {_MAX_EVALS} evals; try again when one ends"
        if self._eval_slots.acquire(blocking=False):
            try:
                self._eval_threads.submit(lambda: self._eval(request))
                return
            except RuntimeError as failure:  # can't start new thread
                self._eval_slots.release()
                error = f"could not start the eval: {failure}"
        self._queue_result(EvalResult(request_id=request.request_id, ok=False, error=error))

    def _eval(self, request: _Request) -> None:
        result: Message
        try:
            if isinstance(request, CompleteRequest):
                result = run_complete(self.registry, request, self.options)
            elif isinstance(request, ExpandRequest):  # the dashboard's "+"
                result = answer_expand(self.registry, request, self.options)
            elif isinstance(request, SourceRequest):
                result = answer_source(self.registry, request, self.options)
            else:
                result = run_eval(self.registry, request, self.options)
        except BaseException as error:  # run_eval never raises; belt and braces
            result = EvalResult(request_id=request.request_id, ok=False, error=repr(error))
        finally:
            self._eval_slots.release()
        self._queue_result(result)

    def _queue_result(self, result: Message) -> None:
        with self._lock:
            if len(self._results) >= _MAX_RESULTS:
                self._results.popleft()
            self._results.append(result)
            self._wake()

    # --- the I/O thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._serve_one_socket():
                pass  # the connection died for good: start over with a new socket
        finally:
            self._finished.set()

    def _serve_one_socket(self) -> bool:
        """Connect and serve until stopped; True when a fresh socket should take over."""
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        monitor: zmq.Socket[bytes] | None = None
        try:
            sock.setsockopt(zmq.IDENTITY, self.agent_id.encode())
            _configure_curve(sock, self.options.server_key)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            monitor = sock.get_monitor_socket(
                _CONNECT_EVENTS | _LOST_EVENTS | _HANDSHAKE_FAILED_EVENTS | _RETRY_EVENTS
            )
            sock.connect(self.options.broker_url)
            return self._loop(sock, monitor)
        except Exception as error:  # a bad broker URL, say: the app runs on without us
            _log(f"the agent stopped: {type(error).__name__}: {error}")
            return False
        finally:
            self._welcomed.clear()
            if monitor is not None:
                try:
                    sock.disable_monitor()
                except zmq.ZMQError:
                    pass
                monitor.close(linger=0)
            sock.close(linger=self._linger_ms)
            context.term()

    def _loop(self, sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes]) -> bool:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_reader, zmq.POLLIN)
        # pyzmq answers a plain socket by its file descriptor, not by the object registered:
        # missing it would leave the wake byte unread and spin this loop (and hog the GIL).
        wake_fd = self._wake_reader.fileno()
        state = _LoopState()
        while not self._stopping:
            try:
                events = dict(poller.poll(_POLL_MS))
                if wake_fd in events or self._wake_reader in events:
                    self._drain_wake()
                if monitor in events:
                    self._read_monitor(monitor, state)
                if sock in events:
                    self._read_broker(sock, state)
                self._tick(sock, state)
                if self._bye_requested:
                    self._send_bye(sock)
                    return False
                if state.lost_at and time.monotonic() - state.lost_at > _RESOCKET_SECONDS:
                    # Lost without zmq retrying: libzmq does not reconnect after a protocol
                    # error (an oversized message, say). A new socket does.
                    _log("the connection to the broker broke; connecting again")
                    return True
            except Exception as error:  # never let one bad moment end the agent
                if self._stopping:
                    return False
                _log(f"agent I/O error (continuing): {type(error).__name__}: {error}")
                time.sleep(_POLL_MS / 1000)
        return False

    def _drain_wake(self) -> None:
        self._wake_pending = False  # before the queues are looked at (see _wake)
        try:
            while self._wake_reader.recv(4096):
                pass
        except OSError:  # drained (BlockingIOError) or closed
            pass

    def _read_monitor(self, monitor: zmq.Socket[bytes], state: _LoopState) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            if event & _HANDSHAKE_FAILED_EVENTS:
                if not state.logged_handshake:
                    state.logged_handshake = True
                    _log(_handshake_failure(self.options))
            elif event & _RETRY_EVENTS:
                state.lost_at = time.monotonic()  # zmq is still trying: no new socket yet
            elif event & _CONNECT_EVENTS:
                state.logged_handshake = False
                state.lost_at = 0.0
                state.link_up = True
                state.hello_due = 0.0  # say hello as soon as the pipe takes it
            elif event & _LOST_EVENTS:  # also every failed reconnect while the broker is down
                state.lost_at = time.monotonic()
                state.link_up = False
                self._welcomed.clear()

    def _read_broker(self, sock: zmq.Socket[bytes], state: _LoopState) -> None:
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
            self._handle(message, state)

    def _handle(self, message: Message, state: _LoopState) -> None:
        if isinstance(message, Welcome):
            url = message.dashboard_url
            self._welcome_url = url if url.startswith(("http://", "https://")) else None
            self.refused_reason = None
            state.logged_refusal = False
            self._welcomed.set()
            state.heartbeat_due = 0.0
        elif isinstance(message, Refused):
            self._welcomed.clear()
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
            self._welcomed.clear()  # queue reports until the broker welcomes us again
            state.hello_due = 0.0
        elif isinstance(message, (EvalRequest, CompleteRequest, ExpandRequest, SourceRequest)):
            self._start_eval(message)
        elif isinstance(message, InterruptRequest):  # quick: it only flags the eval threads
            self._queue_result(interrupt(message))
        elif isinstance(message, Resume):
            with self._lock:
                pause = self._pauses.get(message.report_id)
            if pause is not None:
                pause.set()
        elif isinstance(message, Release):  # the dashboard's "Release frames"
            self.registry.release_report(message.report_id)
        elif isinstance(message, Ping):
            state.heartbeat_due = 0.0
        else:  # an agent-to-broker message sent our way
            self.malformed_messages += 1

    def _tick(self, sock: zmq.Socket[bytes], state: _LoopState) -> None:
        now = time.monotonic()
        if not self._welcomed.is_set() and now >= state.hello_due:
            if self._send(sock, self._hello()):
                retry = _REFUSED_RETRY_SECONDS if self.refused_reason else _HELLO_RETRY_SECONDS
                state.hello_due = now + retry
            else:  # not connected: the handshake event will call for the hello
                state.hello_due = now + (
                    _SEND_RETRY_SECONDS if state.link_up else _HELLO_RETRY_SECONDS
                )
        while self._results:
            with self._lock:
                result = self._results.popleft()
            self._send(sock, result)  # not sent: the broker times the eval out
        if not self._welcomed.is_set():
            return
        self._flush_reports(sock)
        while self._resumed and not self._reports:  # after the paused report itself
            with self._lock:
                resumed = self._resumed.popleft()
            self._send(sock, resumed)
        if self.registry.has_released and not self._reports:  # after the reports they name
            released = self.registry.take_released()
            for start in range(0, len(released), protocol.MAX_HELD_IDS):
                chunk = released[start : start + protocol.MAX_HELD_IDS]
                self._send(sock, Released(report_ids=chunk))  # lost: the next hello corrects
        if now >= state.heartbeat_due:
            beat = Heartbeat(
                held_frames=len(self.registry),
                dropped_reports=self.dropped_reports,
                held_reports=self.registry.report_count,
                held_bytes=self.registry.held_bytes,
            )
            self._send(sock, beat)
            state.heartbeat_due = now + max(self.options.heartbeat_seconds, 0.01)

    def _flush_reports(self, sock: zmq.Socket[bytes]) -> None:
        while self._reports:
            with self._lock:
                report = self._reports[0]
            try:
                payload = codec.encode(ReportMessage(report=report))  # compiled: fast
            except Exception as error:
                payload = b""
                _log(f"could not encode report {report.id}: {type(error).__name__}: {error}")
            if len(payload) > protocol.MAX_MESSAGE_BYTES:
                _log(f"report {report.id} is too big to send ({len(payload)} bytes)")
                payload = b""
            if payload and not self._send_bytes(sock, payload):
                return  # the socket is not ready: the report waits for the next tick
            with self._lock:
                if self._reports and self._reports[0] is report:
                    self._reports.popleft()
                if not payload:
                    self.dropped_reports += 1
                if len(self._reports) <= max(self.options.queue_size, 1) // 4:
                    self._room.set()

    def _send_bye(self, sock: zmq.Socket[bytes]) -> None:
        """Last words: queued reports, then a bye; closing waits a moment for them to go."""
        if self._welcomed.is_set():
            self._flush_reports(sock)
            self._send(sock, Bye(reason="the process exited"))
            self._linger_ms = 1000
        self._stopping = True

    def _hello(self) -> Hello:
        return Hello(
            agent_id=self.agent_id,
            secret=self.options.secret,
            pid=self.pid,
            host=self.host,
            app=self.options.app_name,
            python=platform.python_version(),
            started=self.started,
            evalex=self.options.evalex,
            console=self.options.console and self.options.evalex,
            eval_timeout=self.options.eval_timeout_seconds,
            paused=self._paused_reports(),
            held=self.registry.held_reports()[-protocol.MAX_HELD_IDS :],
        )

    def _paused_reports(self) -> tuple[str, ...]:
        """The pauses a restarted broker must learn again, so Continue works on them."""
        with self._lock:
            return tuple(self._pauses)[:64]

    def _send(self, sock: zmq.Socket[bytes], message: Message) -> bool:
        return self._send_bytes(sock, codec.encode(message))

    def _send_bytes(self, sock: zmq.Socket[bytes], payload: bytes) -> bool:
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:  # no connection yet (IMMEDIATE) or the pipe is full
            return False
        return True


class _LoopState:
    """The I/O thread's timers and flags (touched by that thread only)."""

    __slots__ = (
        "hello_due",
        "heartbeat_due",
        "logged_refusal",
        "link_up",
        "logged_handshake",
        "lost_at",
    )

    def __init__(self) -> None:
        self.link_up = False
        self.lost_at = 0.0  # when the link went down and zmq last tried again (0: up or new)
        self.hello_due = 0.0
        self.heartbeat_due = 0.0
        self.logged_refusal = False
        self.logged_handshake = False


def _printable(text: str, limit: int = 300) -> str:
    """Text from the broker, fit for a log line: bounded, without control characters."""
    kept = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return kept + ("..." if len(text) > limit else "")


def _configure_curve(sock: zmq.Socket[bytes], server_key: str) -> None:
    """Encrypt the link with CurveZMQ and authenticate the broker by its public key."""
    if not server_key:
        return
    if len(server_key) != 40:
        raise ValueError(
            "DEBUGBROKER_SERVER_KEY must be the broker's 40-character public key "
            "(printed by `debugbroker serve --curve`)"
        )
    public, secret = zmq.curve_keypair()  # this process's own, new each start
    sock.curve_serverkey = server_key.encode("ascii")
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def _handshake_failure(options: Options) -> str:
    """Why a connection that reached the broker failed its handshake, in words."""
    if options.server_key:
        hint = (
            "check that DEBUGBROKER_SERVER_KEY is the key the broker printed "
            "and that the broker runs with --curve"
        )
    else:
        hint = "the broker uses CurveZMQ (--curve): set DEBUGBROKER_SERVER_KEY to its public key"
    return (
        f"cannot connect to the broker at {options.broker_url}: the handshake failed; "
        f"{hint}. Errors are not sent to the dashboard until this is fixed."
    )


_transports: dict[Options, Transport] = {}
_transports_pid = os.getpid()
_transports_lock = threading.Lock()


def current_transport() -> Transport | None:
    """A transport this process already runs (the app's middleware made it), if any."""
    for transport in list(_transports.values()):
        if transport.pid == os.getpid() and not transport.closed:
            return transport
    return None


def get_transport(options: Options) -> Transport:
    """This process's transport for ``options``, made on first use and again after a fork."""
    transport = _transports.get(options)
    if transport is not None and transport.pid == os.getpid() and not transport.closed:
        return transport  # the fast path of every request: no lock
    with _transports_lock:
        _forget_if_forked()
        transport = _transports.get(options)
        if transport is None or transport.closed:
            transport = _transports[options] = Transport(options)
        return transport


def _forget_if_forked() -> None:
    """Drop transports inherited from a parent process (their thread did not survive)."""
    global _transports_pid
    if _transports_pid == os.getpid():
        return
    for inherited in _transports.values():
        inherited._abandon_after_fork()
    _transports.clear()
    _transports_pid = os.getpid()


def _say_bye_at_exit() -> None:
    """At process exit, every agent of this process flushes its reports and says bye."""
    for transport in list(_transports.values()):
        if transport.pid == os.getpid():
            transport.say_bye()


atexit.register(_say_bye_at_exit)
_finalizer_pid = 0


def _say_bye_in_multiprocessing_child() -> None:
    """A ``multiprocessing`` child ends with ``os._exit`` after its finalizers, not atexit."""
    global _finalizer_pid
    util = sys.modules.get("multiprocessing.util")
    process = sys.modules.get("multiprocessing.process")
    if util is None or process is None or _finalizer_pid == os.getpid():
        return
    if process.parent_process() is None:  # the main process: atexit covers it
        return
    _finalizer_pid = os.getpid()
    util.Finalize(None, _say_bye_at_exit, exitpriority=100)


def _after_fork_in_child() -> None:
    global _transports_lock
    _transports_lock = threading.Lock()  # a parent thread may have held it at fork time
    _forget_if_forked()


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:  # not on Windows, which has no fork
    _register_at_fork(after_in_child=_after_fork_in_child)
