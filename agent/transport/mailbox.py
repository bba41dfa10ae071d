"""The hand-off between the app's threads and the agent's I/O thread: one ``Mailbox``.

Request threads put reports in it, eval threads put results, paused threads register their
pauses; the I/O thread (``link.Link``) takes them out and sends them. Everything in it is
guarded by one lock, and every put wakes the I/O thread through a socketpair it polls beside
the zmq socket. Nothing else is shared between those threads: the ``Link`` reaches the
mailbox only through the methods below (see docs/architecture.md, "Thread hand-offs").

The wake-up rule: at most one wake byte is in flight (``_wake_pending``), so an error storm
costs one syscall per turn of the I/O loop, not one per report. The flag is cleared in
``drain_wake`` under the lock, in the same critical section that reads the bytes, so a put
either finds the flag clear and sends a byte the poller has not read yet, or finds it set
by a byte that is still unread. The I/O thread looks at every queue after ``drain_wake``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

from debugbroker.protocol import Message, Report, Resumed, Step

__all__ = ["Mailbox", "Pause", "SocketPair"]

_MAX_RESULTS = 64  # eval results waiting for the socket; the oldest go first
_MAX_RESUMED = 64
_MAX_PAUSES_TOLD = 64  # pauses named in a hello

SocketPair = Callable[[], tuple[socket.socket, socket.socket]]


class Pause:
    """A thread paused at ``breakpoint()`` or after a step, waiting to be told how to go on."""

    __slots__ = ("_event", "step")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.step: Step | None = None  # None: Continue (or the timeout)

    def go_on(self, step: Step | None) -> None:
        """Let the thread go on: ``step`` says how (None: continue); the first call wins."""
        if not self._event.is_set():
            self.step = step
            self._event.set()

    def wait(self, timeout: float) -> bool:
        """Block until someone says how to go on (True), or ``timeout`` seconds (False)."""
        return self._event.wait(timeout)


class Mailbox:
    """Queues from the app's threads to the I/O thread, and the wake-up that goes with them."""

    def __init__(
        self,
        queue_size: int,
        *,
        socketpair: SocketPair = socket.socketpair,
        lock: AbstractContextManager[object] | None = None,
    ) -> None:
        """``socketpair`` makes the wake pair (reader, writer) and ``lock`` guards everything:
        tests pass ones that observe and force an interleaving of a put and ``drain_wake``."""
        self.queue_size = max(queue_size, 1)
        self.dropped_reports = 0  # shed from a full queue, or too big to send
        self.backlog_waits = 0  # times an app thread waited in ``wait_for_room``
        self.backlog_wait_seconds = 0.0  # and how long, in all
        self._lock: AbstractContextManager[object] = lock or threading.Lock()
        self._reports: deque[Report] = deque()
        self._room = threading.Event()  # the report queue is under its low-water mark
        self._room.set()
        self._results: deque[Message] = deque()  # eval, completion, interrupt results
        self._resumed: deque[Resumed] = deque(maxlen=_MAX_RESUMED)
        self._pauses: dict[str, Pause] = {}  # breakpoint() and step pauses by report id
        self._stopping = False
        self._bye_requested = False  # the process exits: flush, say bye, close
        self._wake_pending = False  # a wake byte is unread, or the I/O thread will look
        self._wake_reader, self._wake_writer = socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)

    # --- any thread ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether the I/O thread is asked to stop (``stop``, or after its bye)."""
        return self._stopping

    @property
    def bye_requested(self) -> bool:
        """Whether the process exits and the I/O thread should say bye."""
        return self._bye_requested

    @property
    def queued_reports(self) -> int:
        """Reports waiting for the broker."""
        return len(self._reports)

    def put_report(self, report: Report, *, hold_back: bool) -> tuple[Report | None, bool]:
        """Queue ``report``: the oldest one dropped for it (or None), and whether the queue is
        over half full (when ``hold_back``: the caller should ``wait_for_room``)."""
        dropped: Report | None = None
        with self._lock:
            if self._stopping:
                return None, False
            if len(self._reports) >= self.queue_size:
                # The newest report is the one a 500 page links to: drop the oldest.
                dropped = self._reports.popleft()
                self.dropped_reports += 1
            self._reports.append(report)
            self._wake()
            backlog = hold_back and len(self._reports) > self.queue_size // 2
            if backlog:
                self._room.clear()
        return dropped, backlog

    def wait_for_room(self, timeout: float) -> None:
        """Wait up to ``timeout`` until the I/O thread brings the queue under a quarter."""
        started = time.monotonic()
        self._room.wait(timeout)
        with self._lock:
            self.backlog_waits += 1
            self.backlog_wait_seconds += time.monotonic() - started

    def put_result(self, result: Message) -> None:
        """Queue an answer to the broker (the oldest is dropped past ``_MAX_RESULTS``)."""
        with self._lock:
            if len(self._results) >= _MAX_RESULTS:
                self._results.popleft()
            self._results.append(result)
            self._wake()

    def start_pause(self, report_id: str) -> Pause:
        """Register a pause; it ends when someone presses Continue or takes a step."""
        pause = Pause()
        with self._lock:
            self._pauses[report_id] = pause
        return pause

    def end_pause(self, report_id: str, reason: str) -> None:
        """The paused thread goes on: forget the pause and queue the ``Resumed`` message."""
        with self._lock:
            self._pauses.pop(report_id, None)
            if self._stopping:
                return
            self._resumed.append(Resumed(report_id=report_id, reason=reason))
            self._wake()

    def request_bye(self) -> None:
        """Ask the I/O thread to send what is queued and a bye, then stop."""
        with self._lock:
            self._bye_requested = True
            self._wake()

    def stop(self) -> bool:
        """Ask the I/O thread to stop; False when it was asked already."""
        with self._lock:
            if self._stopping:
                return False
            self._stopping = True
            self._wake()
            return True

    def close(self) -> None:
        """Close the wake pair (after the I/O thread ended)."""
        with self._lock:
            self._wake_writer.close()
            self._wake_reader.close()

    def abandon_after_fork(self) -> None:
        """In a forked child: stop for good and free the wake pair, without the lock (a
        parent thread may have held it at fork time)."""
        self._stopping = True
        self._lock = threading.Lock()
        for end in (self._wake_writer, self._wake_reader):
            try:
                end.close()
            except OSError:
                pass

    def _wake(self) -> None:
        """Make the I/O thread's poll return; the caller holds ``_lock``."""
        if self._wake_pending:
            return  # a byte is unread, or the I/O thread looks at the queues next
        self._wake_pending = True
        try:
            self._wake_writer.send(b"\0")
        except OSError:  # closed, or full (then bytes are unread): no byte to wait for
            self._wake_pending = False

    # --- the I/O thread -----------------------------------------------------------------

    def fileno(self) -> int:
        """The descriptor the I/O thread polls: readable after a put."""
        return self._wake_reader.fileno()

    def drain_wake(self) -> None:
        """Read every wake byte and clear the flag in one critical section; the caller
        looks at every queue afterwards."""
        with self._lock:
            try:
                while self._wake_reader.recv(4096):
                    pass
            except OSError:  # drained (BlockingIOError) or closed
                pass
            self._wake_pending = False

    def next_report(self) -> Report | None:
        """The oldest queued report, left in the queue until ``report_done``."""
        with self._lock:
            return self._reports[0] if self._reports else None

    def report_done(self, report: Report, *, sent: bool) -> None:
        """``report`` went to the broker (or was dropped, unsendable): take it off the queue."""
        with self._lock:
            if self._reports and self._reports[0] is report:
                self._reports.popleft()
            if not sent:
                self.dropped_reports += 1
            if len(self._reports) <= self.queue_size // 4:
                self._room.set()

    def take_results(self) -> list[Message]:
        """Every queued answer, oldest first."""
        with self._lock:
            taken = list(self._results)
            self._results.clear()
        return taken

    def take_resumed(self) -> list[Resumed]:
        """Every queued ``Resumed``, once no report waits (a pause's report goes first)."""
        with self._lock:
            if self._reports:
                return []
            taken = list(self._resumed)
            self._resumed.clear()
        return taken

    def resume(self, report_id: str, step: Step | None = None) -> None:
        """Someone pressed Continue (``step`` None) or took a step: let the paused thread go
        on (unknown ids are ignored)."""
        with self._lock:
            pause = self._pauses.get(report_id)
        if pause is not None:
            pause.go_on(step)

    def paused_reports(self) -> tuple[str, ...]:
        """The pauses a restarted broker must learn again, so Continue works on them."""
        with self._lock:
            return tuple(self._pauses)[:_MAX_PAUSES_TOLD]
