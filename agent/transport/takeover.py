"""Short app-code requests run on the I/O thread itself; a long one gives the loop away.

Handing an eval to another thread costs two thread wake-ups on the round trip (the eval
thread's, then the I/O thread's for the answer), more than the eval itself. So the ``Link``
runs each app-code request on its own thread, inside ``Watch.running``. A watch thread looks
every ``PERIOD_SECONDS`` while requests run: a request it finds running at two looks in a row
(so it ran for one to two periods) has the loop taken from it. The watch thread calls
``take_over``, which starts a new thread that serves the socket from then on, and the thread
in app code, once its request returns, learns it was replaced and ends (``Replaced``) instead
of touching the socket again. Pings, reports, other evals and interrupts are thus delayed by
two periods at most, never for the length of an eval.

The watch thread sleeps while no request has run for ``IDLE_LOOKS`` looks, and is woken by
the next one: evals arriving back to back cost it one wake-up per period, none each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

__all__ = ["Watch", "Replaced", "PERIOD_SECONDS"]

PERIOD_SECONDS = 0.005  # a request running at two looks this far apart loses the loop
IDLE_LOOKS = 200  # looks without a request before the watch thread sleeps (one second)


class Replaced(BaseException):  # noqa: N818 - not an error: the thread's work moved on
    """Raised on a thread whose loop was taken over while it ran app code: it must end."""


class _Running:
    """One request running under the watch: what takes its loop over, and whether it did;
    the block's context manager (a plain object: no generator per request)."""

    __slots__ = ("watch", "take_over", "taken")

    def __init__(self, watch: Watch, take_over: Callable[[], None]) -> None:
        self.watch = watch
        self.take_over = take_over
        self.taken = False

    def __enter__(self) -> None:
        self.watch.enter(self)

    def __exit__(self, *exc_info: object) -> None:
        self.watch.leave(self)


class Watch:
    """Watches the thread serving a loop while it runs app code (``running``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._looking = False  # the watch thread looks every period (else it waits on _wake)
        self._started = False  # the watch thread (one per watch, started on first use)
        # The request running on the serving thread now (None: none, or it lost the loop:
        # then the thread that took over may run the next one meanwhile).
        self._current: _Running | None = None
        self.takeovers = 0  # how many times (tests, diagnostics)

    def running(self, take_over: Callable[[], None]) -> AbstractContextManager[None]:
        """Run the block (app code) on the serving thread; if it runs too long, ``take_over``
        is called from the watch thread, and on leaving the block this thread raises
        ``Replaced``. ``take_over`` must start the loop on another thread and return."""
        return _Running(self, take_over)

    def enter(self, request: _Running) -> None:
        """``request``'s block starts (its ``__enter__``)."""
        with self._lock:
            self._current = request
            if not self._looking:
                self._start_looking()

    def leave(self, request: _Running) -> None:
        """``request``'s block ends, however it ends (its ``__exit__``); raises ``Replaced``
        when its loop was taken over meanwhile."""
        with self._lock:
            if self._current is request:
                self._current = None
        if request.taken:  # (set under the lock, before ``_current`` moved on)
            raise Replaced

    def _start_looking(self) -> None:
        """Under the lock: make the watch thread look (start it on first use)."""
        self._looking = True
        if not self._started:
            self._started = True
            threading.Thread(target=self._run, name=self.name, daemon=True).start()
        self._wake.set()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            seen: _Running | None = None  # the request running at the last look
            idle = 0
            while True:
                time.sleep(PERIOD_SECONDS)
                with self._lock:
                    current = self._current
                    if current is None:
                        seen = None
                        idle += 1
                        if idle >= IDLE_LOOKS:
                            self._looking = False  # the next ``running`` wakes us
                            wake.clear()
                            break
                        continue
                    idle = 0
                    if current is not seen:
                        seen = current
                        continue
                    # Under the lock, so a request that ends meanwhile sees either no
                    # takeover or one whose thread started.
                    try:
                        current.take_over()
                    except BaseException:  # no thread can start: the loop waits for the request
                        continue
                    current.taken = True
                    self._current = None
                    self.takeovers += 1
                    seen = None
