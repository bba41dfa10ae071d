"""The app's event loop, for consoles: which loop runs, whether a frame ran on one, and which
threads are paused by the agent (a loop whose thread is paused cannot run a console line).

A console line in a frame that ran on an event loop (a coroutine, or a function a coroutine
called) runs on the app's running loop, as the frame's own code did (``evaluate``); any other
line runs on an eval thread. ``breakpoint()`` and steps hold their thread (``trace``): they
mark it with ``paused_thread`` so that a line for a loop paused that way runs off the loop,
instead of waiting for a loop that cannot run it until Continue.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["AppLoop", "app_loop", "ran_on_a_loop", "paused_thread"]

_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR
_MAX_CALLERS = 1_000  # callers looked at for a coroutine (a deeper stack: not on a loop)
_paused: dict[int, int] = {}  # thread ident -> nesting of pauses
_paused_lock = threading.Lock()


class AppLoop:
    """A running event loop of this process and the thread running it (0: unknown, as for a
    compiled loop found by ``gc``)."""

    __slots__ = ("loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: int) -> None:
        self.loop = loop
        self.thread = thread

    @property
    def paused(self) -> bool:
        """Whether the loop's thread is held by a ``breakpoint()`` or a step (for an unknown
        thread: whether any thread is, to be safe)."""
        with _paused_lock:
            return self.thread in _paused if self.thread else bool(_paused)


def app_loop() -> AppLoop | None:
    """An event loop running in another thread of this process (the app's), or None.

    First by its ``run_forever`` frame on a thread's stack (cheap); a loop whose
    ``run_forever`` is compiled (uvloop) has no such frame, so then by a walk over the objects
    the garbage collector tracks (slower). With several running loops the first found wins.
    """
    run_forever = asyncio.base_events.BaseEventLoop.run_forever.__code__
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        walker: Any = frame
        while walker is not None:
            if walker.f_code is run_forever:
                loop = walker.f_locals.get("self")
                if isinstance(loop, asyncio.AbstractEventLoop) and loop.is_running():
                    return AppLoop(loop, ident)
            walker = walker.f_back
    for candidate in gc.get_objects():
        if isinstance(candidate, asyncio.AbstractEventLoop) and candidate.is_running():
            return AppLoop(candidate, 0)
    return None


def ran_on_a_loop(frame: FrameType) -> bool:
    """Whether ``frame`` ran on an event loop: it is a coroutine's (or an async generator's),
    or a coroutine called it (on the loop's thread: a thread pool's function has no coroutine
    among its callers)."""
    walker: FrameType | None = frame
    for _ in range(_MAX_CALLERS):
        if walker is None:
            return False
        if walker.f_code.co_flags & _ASYNC_CODE:
            return True
        walker = walker.f_back
    return False


@contextmanager
def paused_thread() -> Iterator[None]:
    """Mark this thread as held by the agent (a pause) while the block runs."""
    ident = threading.get_ident()
    with _paused_lock:
        _paused[ident] = _paused.get(ident, 0) + 1
    try:
        yield
    finally:
        with _paused_lock:
            left = _paused.pop(ident, 1) - 1
            if left:
                _paused[ident] = left


def _after_fork_in_child() -> None:
    global _paused_lock
    _paused_lock = threading.Lock()  # a thread of the parent may have held it
    _paused.clear()  # the child runs only the forking thread, which is not paused


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
