"""The agent's link to the broker as the app sees it: one ``Transport`` per process.

Request threads only call ``Transport.submit_report``, which appends to a bounded queue and
wakes the I/O thread through a non-blocking socketpair write; it never touches zmq. That
thread runs a ``Link`` (``link.py``), the only user of the zmq socket: it says hello, sends
reports once the broker has welcomed it, heartbeats, and hands eval requests to this
transport's eval threads, whose results it sends back.

``get_transport`` keeps one transport per process (per distinct ``Options``) and makes a new
one, with a new zmq context and agent id, when ``os.getpid()`` changes: a ``--preload``ed app
forked by gunicorn gets one healthy agent per worker and never uses zmq across a fork.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from debugbroker.agent.evals.evaluate import run_complete, run_eval
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.lookup import answer_expand, answer_source
from debugbroker.agent.evals.workers import WorkerPool
from debugbroker.agent.options import Options
from debugbroker.agent.transport.link import Link
from debugbroker.protocol import (
    CompleteRequest,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    Message,
    Report,
    Resumed,
    SourceRequest,
)

__all__ = ["Transport", "get_transport", "current_transport", "make_agent_id"]

# What the I/O thread hands to a worker thread: each may run app code (reprs, evals).
_Request = EvalRequest | CompleteRequest | ExpandRequest | SourceRequest

_MAX_EVALS = 8  # eval threads at once; more are answered with an error straight away
_MAX_RESULTS = 64  # eval results waiting for the socket
# A request thread that finds the report queue over half full while the broker is there waits
# (GIL released) until the I/O thread brings it under a quarter, at most this long: a thread
# raising errors back to back in pure Python otherwise holds the GIL for 5 ms at a time, the
# I/O thread sends one report per turn, and the queue sheds most of them.
_BACKLOG_WAIT_SECONDS = 0.005


def make_agent_id() -> str:
    """A new id for this process: ``uuid-pid-host`` (the broker routes by it)."""
    try:
        host = socket.gethostname()[:100]
    except OSError:
        host = ""
    return f"{uuid.uuid4().hex}-{os.getpid()}-{host}"


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
        # The rest is shared with the I/O thread's ``Link`` (link.py), which reads and sets
        # it directly: the queues under ``_lock``, the events and flags as they are.
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
        self._finished = threading.Event()  # the I/O thread has closed its socket
        self._pauses: dict[str, threading.Event] = {}  # breakpoint() pauses by report id
        self._resumed: deque[Resumed] = deque(maxlen=_MAX_RESULTS)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._link = Link(self)  # the I/O thread's loop: the only user of the zmq socket
        self._thread = threading.Thread(
            target=self._link.run, name=f"debugbroker-agent-{self.pid}", daemon=True
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

    def _drain_wake(self) -> None:
        """The I/O thread reads every wake byte; it looks at the queues right after."""
        self._wake_pending = False  # before the queues are looked at (see _wake)
        try:
            while self._wake_reader.recv(4096):
                pass
        except OSError:  # drained (BlockingIOError) or closed
            pass

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
