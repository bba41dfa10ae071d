"""Reusable daemon threads for the agent's evals: a hand-off instead of a thread start.

``threading.Thread.start`` creates an OS thread and then waits until it runs, two trips
through the scheduler before the work even begins; on a busy machine that was a good part
of a console eval's round trip. A ``WorkerPool`` keeps a few finished threads waiting for
the next task, each on its own lock, so starting work is one lock release. A thread that
is still busy (a stuck eval) is never handed anything: a new thread is started instead.
Idle threads beyond ``keep_idle`` exit at once, the rest after ``idle_seconds``.

After a fork the child has none of the parent's threads: every pool forgets its idle
workers there (``os.register_at_fork``).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["WorkerPool"]

Task = Callable[[], None]


class _Worker:
    """One pool thread's mailbox: ``ready`` is released when ``task`` is set."""

    __slots__ = ("ready", "task")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()
        self.task: Task | None = None


class WorkerPool:
    """Runs tasks on reusable daemon threads; ``submit`` never waits for a task to finish."""

    def __init__(self, name: str, keep_idle: int = 4, idle_seconds: float = 30.0) -> None:
        self.name = name
        self.keep_idle = keep_idle
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        _pools.add(self)

    @property
    def idle(self) -> int:
        """How many threads wait for a task."""
        return len(self._idle)

    def submit(self, task: Task) -> None:
        """Run ``task`` on an idle thread, else on a new one (``RuntimeError`` if none can
        start). ``task`` must handle its own exceptions; any that escape are dropped."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.task = task
            worker.ready.release()
            return
        thread = threading.Thread(target=self._run, args=(task,), name=self.name, daemon=True)
        thread.start()

    def _run(self, first: Task) -> None:
        worker = _Worker()
        task: Task | None = first
        while task is not None:
            try:
                task()
            except BaseException:  # the task's own business; the thread serves on
                pass
            task = None
            with self._lock:
                if len(self._idle) >= self.keep_idle:
                    return
                self._idle.append(worker)
            if not worker.ready.acquire(timeout=self.idle_seconds):
                with self._lock:
                    if worker in self._idle:  # nobody picked it: retire
                        self._idle.remove(worker)
                        return
                worker.ready.acquire()  # picked just as it timed out: the task is coming
            task, worker.task = worker.task, None

    def forget_after_fork(self) -> None:
        """In a forked child: none of the parent's threads exist there."""
        self._lock = threading.Lock()
        self._idle = []


_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool.forget_after_fork()


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:  # not on Windows, which has no fork
    _register_at_fork(after_in_child=_after_fork_in_child)
