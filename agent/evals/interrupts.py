"""Eval threads and their interrupts: the time limit, the interrupt button, stuck threads.

Each eval runs on its own thread; ``supervise`` waits for it up to the time limit. An
interrupt (from the dashboard, or the time limit) raises ``KeyboardInterrupt`` in that thread
with ``PyThreadState_SetAsyncExc``. CPython delivers such an exception only when the thread
runs Python bytecode, so a pure-Python loop stops at once, but a thread blocked in a C call
(``time.sleep``, a socket read, a lock wait) stops only when the call returns: the interrupt
is then repeated every ``REPEAT_SECONDS`` until it lands, and after ``GRACE_SECONDS`` the
caller answers without waiting ("still blocked"). Such threads are counted; while
``MAX_STUCK`` are stuck, new evals are refused instead of piling up.

An eval thread marks where interrupts may land with ``EvalRun.arm``/``disarm``: only in the
user's code, never while the console's own bookkeeping runs.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable

from debugbroker.agent.evals.workers import WorkerPool
from debugbroker.agent.reprs.safe_text import describe_error
from debugbroker.protocol import EvalResult

__all__ = ["EvalRun", "supervise", "interrupt_runs", "stuck_evals", "running_evals", "MAX_STUCK"]

GRACE_SECONDS = 1.0  # after an interrupt, how long to wait for the code to stop
REPEAT_SECONDS = 0.25  # how often an interrupt that has not landed is repeated
MAX_STUCK = 4


def _set_async_exc(ident: int, exception: type[BaseException] | None) -> int:
    """Make ``exception`` pending in thread ``ident`` (None clears one); threads affected."""
    # No argtypes on the shared pythonapi function: other libraries call it too.
    argument = ctypes.py_object(exception) if exception is not None else ctypes.c_void_p()
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), argument))


class EvalRun:
    """One running eval thread and the interrupts aimed at it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.ident = 0
        self.lock = threading.Lock()
        self.in_user_code = False
        self.reason: str | None = None  # why it was interrupted, once it was
        self.finished = threading.Event()  # the thread is done with the user's code
        self.abandoned = False  # the caller answered without it (it was stuck)
        self.scheduled = False  # a top-level-await coroutine was handed to a loop
        self.result: EvalResult | None = None

    def arm(self) -> None:
        """Enter user code: interrupts land from now on (one already asked for, at once)."""
        with self.lock:
            self.ident = threading.get_ident()
            if self.reason is not None:
                raise KeyboardInterrupt
            self.in_user_code = True

    def disarm(self) -> None:
        """Leave user code: no interrupt can land after this returns."""
        while True:
            try:
                with self.lock:
                    self.in_user_code = False
                    _set_async_exc(self.ident, None)  # drop one that was sent but not raised
                return
            except KeyboardInterrupt:
                continue  # it landed on the way out: try again

    def interrupt(self, reason: str) -> bool:
        """Raise KeyboardInterrupt in the thread now if it runs user code, else when it does."""
        with self.lock:
            if self.reason is None:
                self.reason = reason
            if not self.in_user_code:
                return not self.finished.is_set()  # arm() raises it
            return bool(_set_async_exc(self.ident, KeyboardInterrupt) == 1)


_threads = WorkerPool("debugbroker-eval")  # reused between evals; a stuck one is not
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


def interrupt_runs(key: str, reason: str) -> int:
    """Interrupt every eval running in ``key``; how many will stop."""
    with _running_lock:
        runs = list(_running.get(key, ()))
    return sum(1 for run in runs if run.interrupt(reason))


def supervise(key: str, work: Callable[[EvalRun], EvalResult], limit: float) -> EvalResult:
    """Run ``work`` on its own thread, interrupt it past ``limit`` seconds (0: never), and
    answer even if it stays stuck."""
    global _stuck
    if _stuck >= MAX_STUCK:
        return EvalResult(
            request_id="",
            ok=False,
            error=f"{_stuck} evals are still blocked in calls that cannot be interrupted; "
            "no new eval starts until one of them returns",
        )
    run = EvalRun(key)

    def body() -> None:
        global _stuck
        try:
            run.result = work(run)
        except BaseException as error:
            run.result = EvalResult(request_id="", ok=False, error=describe_error(error))
        finally:
            with _running_lock:
                _running.get(run.key, set()).discard(run)
                if run.abandoned:
                    _stuck -= 1
                run.finished.set()

    with _running_lock:
        _running.setdefault(run.key, set()).add(run)
    _threads.submit(body)
    deadline = time.monotonic() + limit if limit > 0 else None
    interrupted_at: float | None = None
    while not run.finished.wait(REPEAT_SECONDS):
        now = time.monotonic()
        if deadline is not None and now >= deadline and run.reason is None:
            run.interrupt(f"stopped after the time limit of {limit:g} seconds")
        if run.reason is not None:
            interrupted_at = interrupted_at or now
            if now - interrupted_at >= GRACE_SECONDS:
                break
            run.interrupt(run.reason)  # again: a blocked C call swallowed nothing yet
    with _running_lock:
        if run.finished.is_set():
            assert run.result is not None
            return run.result
        _stuck += 1
        run.abandoned = True
    threading.Thread(target=_keep_interrupting, args=(run,), daemon=True).start()
    return EvalResult(
        request_id="",
        ok=False,
        error=f"KeyboardInterrupt: the eval was {run.reason}, but it is blocked in a call "
        "that cannot be interrupted (time.sleep, a socket read, a lock…); it stops when "
        "that call returns",
    )


def _keep_interrupting(run: EvalRun) -> None:
    """Repeat the interrupt for a stuck eval until it stops (it may never: then forever)."""
    while not run.finished.wait(REPEAT_SECONDS):
        run.interrupt(run.reason or "interrupted")
