"""Eval threads and their supervision: the time limit, the interrupt button, stuck threads.

A request from the broker runs on the agent's I/O thread (``agent/transport/takeover.py``
gives the socket to a new thread when it runs long); ``run_eval`` and ``run_complete`` run
theirs on a thread of one pool, ``EVAL_THREADS``. Nothing waits beside an eval. Its
supervision is a timer (one timer thread for the whole process, see ``Timers``): at the time
limit it interrupts the eval. An interrupt (from the dashboard, or the time limit) raises
``KeyboardInterrupt`` in that thread with ``PyThreadState_SetAsyncExc``. CPython delivers
such an exception only when the thread runs Python bytecode, so a pure-Python loop stops at
once, but a thread blocked in a C call (``time.sleep``, a socket read, a lock wait) stops
only when the call returns: a timer then repeats the interrupt every ``REPEAT_SECONDS``
until it lands, and after ``GRACE_SECONDS`` answers for the eval without it ("still
blocked"). Such threads are counted; while ``MAX_STUCK`` are stuck, new evals are refused
instead of piling up. Every eval is answered exactly once, by its thread or by the timer,
whichever comes first.

An eval thread marks where interrupts may land with ``EvalRun.arm``/``disarm``: only in the
user's code, never while the console's own bookkeeping runs.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from debugbroker.agent.evals.workers import WorkerPool
from debugbroker.agent.reprs.safe_text import describe_error
from debugbroker.protocol import BUSY, EvalResult

__all__ = [
    "EvalRun",
    "Timers",
    "Timer",
    "Once",
    "EVAL_THREADS",
    "TIMERS",
    "supervise",
    "wait_for_answer",
    "interrupt_runs",
    "stuck_evals",
    "running_evals",
    "all_running_evals",
    "MAX_STUCK",
]

GRACE_SECONDS = 1.0  # after an interrupt, how long to wait for the code to stop
REPEAT_SECONDS = 0.25  # how often an interrupt that has not landed is repeated
MAX_STUCK = 4

T = TypeVar("T")

# The pool ``run_eval`` and ``run_complete`` run on (the broker's requests run on the I/O thread).
EVAL_THREADS = WorkerPool("debugbroker-eval")


_COMPACT_AT = 1_024  # timers in the heap past which cancelled ones are dropped at once


def _nothing() -> None:
    """What a cancelled timer runs: nothing."""


class Timer:
    """One callback waiting in ``Timers``; ``cancel`` keeps it from running."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run it (it leaves the heap when its time comes, or when the heap is
        compacted). A hint, set without the lock: a callback that races it runs, so each
        checks its own state."""
        self.cancelled = True
        self.callback = _nothing  # what it would have run (an eval's run) is not kept


class Timers:
    """Callbacks run at a time, on one daemon thread started on first use (and again in a
    forked child). A callback must be quick and must not raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._condition = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Timer]] = []
        self._numbers = itertools.count()
        self._thread_pid = 0  # the process whose thread serves the heap (0: none yet)

    def after(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` on the timer thread ``seconds`` from now."""
        timer = Timer(callback)
        with self._condition:
            entry = (time.monotonic() + seconds, next(self._numbers), timer)
            heapq.heappush(self._due, entry)
            if self._thread_pid != os.getpid():
                self._thread_pid = os.getpid()
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
            # The thread waits, under this lock, until the head's time at the latest: only a
            # new head needs to wake it (then it is woken, never missed), and evals under
            # one time limit add their deadlines in order, so most puts wake nobody. For
            # that, cancelled timers stay in the heap until their time (popping them early
            # made each eval's limit the new head of an empty heap: a wake-up per eval);
            # past _COMPACT_AT entries the cancelled ones are dropped at once.
            if len(self._due) > _COMPACT_AT:
                self._due = [due for due in self._due if not due[2].cancelled]
                heapq.heapify(self._due)
                self._condition.notify()
            elif self._due[0] is entry:
                self._condition.notify()
        return timer

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    now = time.monotonic()
                    if self._due and self._due[0][0] <= now:
                        timer = heapq.heappop(self._due)[2]
                        if timer.cancelled:  # a finished eval's limit, say
                            continue
                        break
                    self._condition.wait(self._due[0][0] - now if self._due else None)
            try:
                timer.callback()
            except BaseException:  # a timer must never end the thread that serves them all
                pass

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's timer thread is gone, and maybe its lock holder."""
        self._condition = threading.Condition(threading.Lock())
        self._due = []
        self._thread_pid = 0


TIMERS = Timers("debugbroker-eval-timers")


class Once(Generic[T]):
    """An answer that is given at most once, from whichever thread comes first."""

    def __init__(self, answer: Callable[[T], object]) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self._given = False

    def __call__(self, value: T) -> bool:
        """Give ``value`` unless an answer was given already; whether it was given."""
        with self._lock:
            if self._given:
                return False
            self._given = True
        self._answer(value)
        return True


def wait_for_answer(start: Callable[[Callable[[T], object]], None]) -> T:
    """Run ``start(answer)`` on an eval thread and wait for its answer (synchronous callers)."""
    answered = threading.Event()
    answers: list[T] = []

    def answer(value: T) -> None:
        answers.append(value)
        answered.set()

    EVAL_THREADS.submit(lambda: start(answer))
    answered.wait()
    return answers[0]


class _Dropped(BaseException):  # noqa: N818 - never seen outside ``EvalRun.disarm``
    """Replaces a pending interrupt; the eval thread raises and catches it itself."""


_DROP_CALLS = 100


def _check_breaker() -> None:
    """A call: where the interpreter raises a pending asynchronous exception."""


def _set_async_exc(ident: int, exception: type[BaseException] | None) -> int:
    """Make ``exception`` pending in thread ``ident`` (None clears one); threads affected."""
    # No argtypes on the shared pythonapi function: other libraries call it too.
    argument = ctypes.py_object(exception) if exception is not None else ctypes.c_void_p()
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), argument))


class EvalRun:
    """One running eval and the interrupts aimed at its thread."""

    def __init__(self, key: str, answer: Callable[[EvalResult], object]) -> None:
        self.key = key
        self.answer = answer
        self.ident = 0
        self.lock = threading.Lock()
        self.in_user_code = False
        self.reason: str | None = None  # why it was interrupted, once it was
        self.interrupted_at = 0.0
        self.finished = False  # the thread is done with the user's code (a flag: never waited on)
        self.abandoned = False  # answered without it (it was stuck)
        self.scheduled = False  # a top-level-await coroutine was handed to a loop

    def arm(self) -> None:
        """Enter user code: interrupts land from now on (one already asked for, at once)."""
        with self.lock:
            self.ident = threading.get_ident()
            if self.reason is not None:
                raise KeyboardInterrupt
            self.in_user_code = True

    def disarm(self) -> None:
        """Leave user code: no interrupt can land after this returns.

        Only an interrupted run can have one pending (``interrupt`` sets ``reason`` first,
        under the same lock), so most runs just leave. An interrupt sent but not raised is
        dropped by replacing it with ``_Dropped``, which this thread raises and catches at
        once. Clearing it with ``SetAsyncExc(NULL)`` would leave the interpreter's eval
        breaker set (before 3.12 only a raised asynchronous exception clears it): every thread
        would then check pending work at each call, and on 3.11 a traced thread (a step, pdb,
        coverage) loops forever at its next call.
        """
        while True:
            try:
                with self.lock:
                    self.in_user_code = False
                    if self.reason is None:  # never interrupted: nothing was sent to drop
                        return
                    if self.ident != threading.get_ident():  # not on the eval's thread
                        _set_async_exc(self.ident, None)
                        return
                    _set_async_exc(self.ident, _Dropped)
                for _ in range(_DROP_CALLS):  # the breaker is checked as each call starts
                    _check_breaker()
                _set_async_exc(self.ident, None)  # never raised: drop it after all
                return
            except _Dropped:
                return
            except KeyboardInterrupt:
                continue  # it landed on the way out: try again

    def interrupt(self, reason: str) -> bool:
        """Raise KeyboardInterrupt in the thread now if it runs user code, else when it does;
        the first one starts the timer that repeats it and, past the grace, answers."""
        with self.lock:
            first = self.reason is None
            if first:
                self.reason = reason
                self.interrupted_at = time.monotonic()
            if not self.in_user_code:
                landed = not self.finished  # arm() raises it
            else:
                landed = bool(_set_async_exc(self.ident, KeyboardInterrupt) == 1)
        if first:
            TIMERS.after(REPEAT_SECONDS, self._follow_up)
        return landed

    def time_up(self, limit: float) -> None:
        """The time limit passed (a timer): interrupt, unless it ended or was interrupted."""
        if not self.finished and self.reason is None:
            self.interrupt(f"stopped after the time limit of {limit:g} seconds")

    def _follow_up(self) -> None:
        """A timer after an interrupt: repeat it, answer without the thread past the grace,
        and go on until the thread ends (it may never: then forever, every REPEAT_SECONDS)."""
        global _stuck
        if self.finished:
            return
        if time.monotonic() - self.interrupted_at >= GRACE_SECONDS and not self.abandoned:
            with _running_lock:
                if self.finished:
                    return
                self.abandoned = True
                _stuck += 1
            self.answer(
                EvalResult(
                    request_id="",
                    ok=False,
                    error=f"KeyboardInterrupt: the eval was {self.reason}, but it is blocked in "
                    "a call that cannot be interrupted (time.sleep, a socket read, a lock…); "
                    "it stops when that call returns",
                )
            )
        self.interrupt(self.reason or "interrupted")  # again: a blocked C call swallowed it
        TIMERS.after(REPEAT_SECONDS, self._follow_up)


_running_lock = threading.Lock()
_running: dict[str, set[EvalRun]] = {}
_stuck = 0


def stuck_evals() -> int:
    """How many eval threads were given up on and still run (blocked in a C call)."""
    return _stuck


def running_evals(key: str) -> int:
    """How many evals run in the frame (or console) ``key``."""
    with _running_lock:
        return len(_running.get(key, ()))


def all_running_evals() -> int:
    """How many evals run in this process, in any frame or console."""
    with _running_lock:
        return sum(len(runs) for runs in _running.values())


def interrupt_runs(key: str, reason: str) -> int:
    """Interrupt every eval running in ``key``; how many will stop."""
    with _running_lock:
        runs = list(_running.get(key, ()))
    return sum(1 for run in runs if run.interrupt(reason))


def supervise(
    key: str,
    work: Callable[[EvalRun], EvalResult],
    limit: float,
    answer: Callable[[EvalResult], object],
) -> None:
    """Run ``work`` on this (an eval) thread, interrupt it past ``limit`` seconds (0: never),
    and ``answer`` once: with its result, or, when it stays stuck, from a timer meanwhile."""
    global _stuck
    if _stuck >= MAX_STUCK:
        answer(
            EvalResult(
                request_id="",
                ok=False,
                reason=BUSY,
                error=f"{_stuck} evals are still blocked in calls that cannot be interrupted; "
                "no new eval starts until one of them returns",
            )
        )
        return
    run = EvalRun(key, Once(answer))
    with _running_lock:
        _running.setdefault(key, set()).add(run)
    limit_timer = TIMERS.after(limit, lambda: run.time_up(limit)) if limit > 0 else None
    result: EvalResult | None = None
    try:
        result = work(run)
    except BaseException as error:
        result = EvalResult(request_id="", ok=False, error=describe_error(error))
    finally:
        with _running_lock:
            _running.get(key, set()).discard(run)
            if not _running.get(key, True):
                _running.pop(key, None)
            if run.abandoned:
                _stuck -= 1
            run.finished = True
        if limit_timer is not None:
            limit_timer.cancel()
        run.answer(
            result or EvalResult(request_id="", ok=False, error="the eval ended without an answer")
        )


def _after_fork_in_child() -> None:
    global _running_lock, _stuck
    _running_lock = threading.Lock()  # a parent thread may have held it at fork time
    _running.clear()  # the parent's eval threads are not in the child
    _stuck = 0
    TIMERS.forget_after_fork()


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:  # not on Windows, which has no fork
    _register_at_fork(after_in_child=_after_fork_in_child)
