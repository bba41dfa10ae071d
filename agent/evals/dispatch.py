"""What the agent's I/O thread calls for the requests that run app code: one ``EvalDispatcher``.

The transport is given a dispatcher (``agent/process.py`` wires them), so the wire layer
imports no eval code. ``handle`` runs the request on the calling thread, the I/O thread,
which gives its loop to another thread when a request runs long
(``agent/transport/takeover.py``): an interrupt only flags the eval threads; everything
else runs supervised by timers, at most ``MAX_EVALS`` at a time (more are answered with an
error straight away). Every request gets exactly one answer through ``answer``; an eval's
slot is free again once it is answered, even if its thread is stuck (``interrupts.MAX_STUCK``
bounds those).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from debugbroker.agent.evals.evaluate import interrupt, start_complete, start_eval
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.interrupts import Once
from debugbroker.agent.evals.lookup import answer_expand, answer_source
from debugbroker.agent.options import Options
from debugbroker.protocol import (
    BUSY,
    CompleteRequest,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    InterruptRequest,
    Message,
    SourceRequest,
)

__all__ = ["EvalDispatcher", "MAX_EVALS"]

MAX_EVALS = 8  # requests running app code at once
Answer = Callable[[Message], None]
_Work = EvalRequest | CompleteRequest | ExpandRequest | SourceRequest
_Request = _Work | InterruptRequest


class EvalDispatcher:
    """Runs eval, completion and lookup requests on the calling thread, and answers each once."""

    def __init__(self, registry: FrameRegistry, options: Options, answer: Answer) -> None:
        self.registry = registry
        self.options = options
        self.answer = answer
        self._lock = threading.Lock()
        self._running = 0  # requests taken and not answered yet (at most MAX_EVALS)

    def handle(self, request: _Request) -> None:
        """Run ``request`` on this thread (never raises); its answer may come from a timer
        meanwhile, when the code is stuck."""
        try:
            if isinstance(request, InterruptRequest):  # quick: it only flags eval threads
                self.answer(interrupt(request))
                return
            self._start(request)
        except Exception as error:  # the I/O thread must never see a failure here
            self._refuse(request, f"debugbroker could not start this: {error!r}")

    def _start(self, request: _Work) -> None:
        with self._lock:
            free = self._running < MAX_EVALS
            if free:
                self._running += 1
        if not free:
            busy = f"the agent is already running {MAX_EVALS} evals; try again when one ends"
            self.answer(_failure(request, busy, BUSY))
            return
        self._run(request, Once(self._answered))

    def _answered(self, result: Message) -> None:
        with self._lock:
            self._running -= 1
        self.answer(result)

    def _run(self, request: _Work, answer: Once[Message]) -> None:
        """Run ``request``; ``answer`` may be called from a timer too."""
        try:
            if isinstance(request, CompleteRequest):
                start_complete(self.registry, request, self.options, answer)
            elif isinstance(request, ExpandRequest):  # the dashboard's "+"
                answer(answer_expand(self.registry, request, self.options))
            elif isinstance(request, SourceRequest):
                answer(answer_source(self.registry, request, self.options))
            else:
                start_eval(self.registry, request, self.options, answer)
        except BaseException as error:  # each never raises; belt and braces
            answer(_failure(request, repr(error)))

    def _refuse(self, request: _Request, error: str) -> None:
        self.answer(_failure(request, error))


def _failure(request: _Request, error: str, reason: str | None = None) -> EvalResult:
    return EvalResult(request_id=request.request_id, ok=False, error=error, reason=reason)
