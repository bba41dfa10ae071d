"""The mailbox between the app's threads and the I/O thread: no put is ever lost."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from debugbroker.agent.transport.mailbox import Mailbox
from debugbroker.protocol import EvalResult
from tests.agent.test_protocol import sample_report


def readable(mailbox: Mailbox) -> bool:
    ready, _, _ = select.select([mailbox.fileno()], [], [], 0)
    return bool(ready)


class OwnedLock:
    """A lock that knows which thread holds it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> None:
        self.lock.acquire()
        self.owner = threading.get_ident()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.owner = None
        self.lock.release()

    def held_here(self) -> bool:
        return self.owner == threading.get_ident()


class InterleavingReader:
    """The wake pair's reader: on the drain's first read, another thread puts "right now"."""

    def __init__(self, real: socket.socket, put_now: Callable[[], None]) -> None:
        self.real = real
        self.put_now = put_now
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def recv(self, size: int) -> bytes:
        self.reads += 1
        if self.reads == 1:
            self.put_now()
        return self.real.recv(size)


def test_a_put_that_lands_inside_the_drain_still_wakes_the_io_thread() -> None:
    # Issue 22: the drain cleared the wake flag, then read the bytes, outside the lock. A put
    # landing between the two sent its byte, the read swallowed it, the flag stayed set, and
    # every later put returned early: the I/O thread woke only on its 100 ms poll timeout.
    # Here another thread puts exactly when the drain reads. If the drain holds the lock
    # there, that put can only happen once the drain is done (it runs then); if not, it
    # happens there and then (run inline: nothing would stop another thread).
    lock = OwnedLock()
    after_drain: list[Callable[[], None]] = []
    mailbox: Mailbox

    def put() -> None:
        mailbox.put_result(EvalResult(request_id="r2", ok=True))

    def put_now() -> None:
        if lock.held_here():
            after_drain.append(put)  # another thread would wait for the lock
        else:
            put()

    def pair() -> tuple[socket.socket, socket.socket]:
        reader, writer = socket.socketpair()
        return InterleavingReader(reader, put_now), writer  # type: ignore[return-value]

    mailbox = Mailbox(10, socketpair=pair, lock=lock)
    try:
        mailbox.put_result(EvalResult(request_id="r1", ok=True))
        assert readable(mailbox)
        mailbox.drain_wake()
        for put in after_drain:
            put()
        # The I/O thread looks at its queues after every drain, then polls again.
        taken = mailbox.take_results()
        assert all(isinstance(result, EvalResult) for result in taken)
        assert [result.request_id for result in taken if isinstance(result, EvalResult)] == [
            "r1",
            "r2",
        ]
        if readable(mailbox):  # r2's own byte, when it was put after the drain
            mailbox.drain_wake()
        mailbox.put_result(EvalResult(request_id="r3", ok=True))
        assert readable(mailbox), "after a put raced the drain, puts no longer wake the I/O thread"
    finally:
        mailbox.close()


def test_every_put_kind_wakes_until_drained() -> None:
    mailbox = Mailbox(10)
    puts: list[Callable[[], object]] = [
        lambda: mailbox.put_result(EvalResult(request_id="r", ok=True)),
        lambda: mailbox.end_pause("report", "continue"),
        mailbox.request_bye,
        mailbox.stop,
    ]
    for put in puts:
        assert not readable(mailbox)
        put()
        assert readable(mailbox)
        mailbox.drain_wake()
    mailbox.close()


def test_backlog_waits_are_counted_only_when_the_broker_is_there() -> None:
    """``Transport.backlog_waits`` (the benchmark's "caller never waits" verdict) reads these."""
    mailbox = Mailbox(4)
    try:
        for _ in range(4):  # no broker: never a backlog to wait on
            assert mailbox.put_report(sample_report(), hold_back=False)[1] is False
        assert mailbox.backlog_waits == 0
        dropped, backlog = mailbox.put_report(sample_report(), hold_back=True)
        assert dropped is not None and backlog  # full: the oldest shed, the caller may wait
        mailbox.wait_for_room(0.001)  # nobody drains: it waits out its timeout
        assert mailbox.backlog_waits == 1
        assert 0.0005 < mailbox.backlog_wait_seconds < 5.0
    finally:
        mailbox.close()
