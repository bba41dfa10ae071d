"""The agent's reusable eval threads: reuse, a busy thread never handed work, retirement."""

from __future__ import annotations

import os
import threading

from debugbroker.agent.evals.workers import WorkerPool
from tests.conftest import wait_for


def _run(pool: WorkerPool) -> int:
    """Run a task on the pool and return the ident of the thread that ran it."""
    done = threading.Event()
    seen: list[int] = []

    def work() -> None:
        seen.append(threading.get_ident())
        done.set()

    pool.submit(work)
    assert done.wait(10)
    return seen[0]


def test_a_finished_thread_runs_the_next_task() -> None:
    pool = WorkerPool("test-pool")
    first = _run(pool)
    wait_for(lambda: pool.idle == 1, what="the thread to wait for work")
    assert _run(pool) == first
    assert first != threading.get_ident()


def test_a_busy_thread_is_not_given_work_and_a_raising_task_does_not_end_the_thread() -> None:
    pool = WorkerPool("test-pool")
    release = threading.Event()
    blocked: list[int] = []

    def block() -> None:
        blocked.append(threading.get_ident())
        release.wait(10)

    pool.submit(block)
    wait_for(lambda: blocked, what="the blocking task to start")
    other = _run(pool)  # the first thread is busy: a new one runs this
    assert other != blocked[0]
    release.set()

    def boom() -> None:
        raise KeyboardInterrupt  # as an interrupt that landed late would

    wait_for(lambda: pool.idle == 2, what="both threads to be idle")
    pool.submit(boom)
    wait_for(lambda: pool.idle == 2, what="the thread to serve on after the exception")


def test_idle_threads_retire() -> None:
    pool = WorkerPool("test-pool", keep_idle=1, idle_seconds=0.05)
    ident = _run(pool)
    wait_for(lambda: not any(t.ident == ident for t in threading.enumerate()), what="retirement")
    assert pool.idle == 0
    _run(pool)  # a new thread starts when none is idle


def test_a_forked_child_forgets_the_parents_threads() -> None:
    pool = WorkerPool("test-pool")
    _run(pool)
    wait_for(lambda: pool.idle == 1, what="an idle thread")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the idle thread did not survive the fork
        try:
            ok = pool.idle == 0 and _run(pool) != 0
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
