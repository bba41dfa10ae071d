"""The watch over app code run on the I/O thread: short requests keep the loop, long ones
lose it to a new thread, and the thread that lost it learns so when its request ends."""

from __future__ import annotations

import threading

import pytest

from debugbroker.agent.transport.takeover import Replaced, Watch
from tests.conftest import DEADLINE, wait_for


def test_a_short_request_keeps_the_loop() -> None:
    watch = Watch("test-watch")
    taken: list[int] = []
    for _ in range(100):
        with watch.running(lambda: taken.append(1)):
            pass
    assert taken == [] and watch.takeovers == 0


def test_a_long_request_loses_the_loop_once_and_its_thread_is_told() -> None:
    watch = Watch("test-watch")
    replacements: list[threading.Thread] = []
    done = threading.Event()

    def take_over() -> None:  # as the link's: start a thread that serves on, and return
        thread = threading.Thread(target=done.wait, args=(DEADLINE,), daemon=True)
        thread.start()
        replacements.append(thread)

    with pytest.raises(Replaced):
        with watch.running(take_over):
            assert wait_for(lambda: watch.takeovers == 1, what="the takeover")
    assert len(replacements) == 1  # taken once, not at every look
    with watch.running(take_over):  # the next request (on the new thread) starts afresh
        pass
    assert watch.takeovers == 1
    done.set()


def test_a_takeover_that_cannot_start_a_thread_leaves_the_loop_where_it_is() -> None:
    watch = Watch("test-watch")
    tries: list[int] = []

    def cannot_start() -> None:
        tries.append(1)
        raise RuntimeError("can't start new thread")

    with watch.running(cannot_start):  # no Replaced: this thread keeps serving
        assert wait_for(lambda: len(tries) >= 2, what="the takeover tried again")
    assert watch.takeovers == 0


def test_the_thread_that_lost_the_loop_is_told_even_after_the_next_request_ran() -> None:
    """The new serving thread runs requests while the old one is still in app code: the old
    one must still learn it was replaced (else two threads would serve one zmq socket)."""
    watch = Watch("test-watch")
    took_over = threading.Event()
    next_done = threading.Event()
    outcome: list[str] = []

    def take_over() -> None:
        took_over.set()

    def old_thread() -> None:
        try:
            with watch.running(take_over):
                assert took_over.wait(DEADLINE)
                assert next_done.wait(DEADLINE)
        except Replaced:
            outcome.append("replaced")
        else:
            outcome.append("kept the loop")

    thread = threading.Thread(target=old_thread, daemon=True)
    thread.start()
    assert took_over.wait(DEADLINE)
    with watch.running(take_over):  # the next request, on the thread that took over
        pass
    next_done.set()
    thread.join(DEADLINE)
    assert outcome == ["replaced"]
