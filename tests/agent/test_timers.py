"""The eval timers: one thread serves every deadline, and an earlier one is never missed."""

from __future__ import annotations

import gc
import threading
import weakref

from debugbroker.agent.evals.interrupts import Once, Timers
from tests.conftest import DEADLINE


def test_an_earlier_deadline_added_while_the_thread_waits_runs_first() -> None:
    # The timer thread sleeps until the earliest deadline it saw; one added meanwhile must
    # wake it (else it runs an hour late). The late one is far away: failing shows as the
    # event never set within the deadline, never as a slow pass.
    timers = Timers("test-timers")
    late_ran = threading.Event()
    early_ran = threading.Event()
    started = threading.Event()
    timers.after(0, started.set)
    assert started.wait(DEADLINE)  # the thread runs and now waits for the late one
    timers.after(3_600, late_ran.set)
    timers.after(0, early_ran.set)
    assert early_ran.wait(DEADLINE), "a new earlier deadline did not wake the timer thread"
    assert not late_ran.is_set()


def test_a_failing_callback_does_not_stop_the_timers() -> None:
    timers = Timers("test-timers")
    ran = threading.Event()

    def fail() -> None:
        raise RuntimeError("a bug in a callback")

    timers.after(0, fail)
    timers.after(0, ran.set)
    assert ran.wait(DEADLINE)


def test_once_answers_only_the_first_caller() -> None:
    answers: list[str] = []
    once: Once[str] = Once(answers.append)
    assert once("from the timer") is True
    assert once("from the thread, later") is False
    assert answers == ["from the timer"]


def test_cancelled_timers_let_go_of_their_callbacks_and_a_full_heap_is_compacted() -> None:
    # Cancelled timers stay in the heap until their time (so that evals' limits, added in
    # order, wake nobody); they must neither keep what they would have run alive nor grow
    # the heap without bound, and deadlines added after a compaction still run.
    timers = Timers("test-timers")

    class Run:
        pass

    runs = [Run() for _ in range(3_000)]
    refs = [weakref.ref(run) for run in runs]
    for run in runs:
        timers.after(3_600, lambda run=run: run).cancel()  # type: ignore[misc]
    del runs, run
    gc.collect()
    assert all(ref() is None for ref in refs)
    ran = threading.Event()
    timers.after(0, ran.set)
    assert ran.wait(DEADLINE)
