"""Where the agent's I/O thread hands the requests that run app code: one ``EvalDispatcher``.

The transport is given a dispatcher (``agent/process.py`` wires them), so the wire layer
imports no eval code. ``handle`` is called on the I/O thread and returns at once: an
interrupt only flags the eval threads, everything else runs on the dispatcher's one pool of
eval threads, at most ``MAX_EVALS`` at a time (more are answered with an error straight
away). Every request gets exactly one answer through ``answer``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from debugbroker.agent.evals.evaluate import interrupt, run_complete, run_eval
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.lookup import answer_expand, answer_source
from debugbroker.agent.evals.workers import WorkerPool
from debugbroker.agent.options import Options
from debugbroker.protocol import (
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
    """Runs eval, completion and lookup requests on a pool of threads, and answers each."""

    def __init__(self, registry: FrameRegistry, options: Options, answer: Answer) -> None:
        self.registry = registry
        self.options = options
        self.answer = answer
        self._pool = WorkerPool("debugbroker-eval")  # reused: no thread start per eval
        self._slots = threading.BoundedSemaphore(MAX_EVALS)

    def handle(self, request: _Request) -> None:
        """Start ``request`` (never blocks, never raises); its answer comes later."""
        try:
            if isinstance(request, InterruptRequest):  # quick: it only flags eval threads
                self.answer(interrupt(request))
                return
            self._start(request)
        except Exception as error:  # the I/O thread must never see a failure here
            self._refuse(request, f"debugbroker could not start this: {error!r}")

    def _start(
        self, request: EvalRequest | CompleteRequest | ExpandRequest | SourceRequest
    ) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(
                request, f"the agent is already running {MAX_EVALS} evals; try again when one ends"
            )
            return
        try:
            self._pool.submit(lambda: self._run(request))
        except RuntimeError as failure:  # can't start new thread
            self._slots.release()
            self._refuse(request, f"could not start the eval: {failure}")

    def _run(self, request: _Work) -> None:
        result: Message
        try:
            if isinstance(request, CompleteRequest):
                result = run_complete(self.registry, request, self.options)
            elif isinstance(request, ExpandRequest):  # the dashboard's "+"
                result = answer_expand(self.registry, request, self.options)
            elif isinstance(request, SourceRequest):
                result = answer_source(self.registry, request, self.options)
            else:
                result = run_eval(self.registry, request, self.options)
        except BaseException as error:  # each never raises; belt and braces
            result = EvalResult(request_id=request.request_id, ok=False, error=repr(error))
        finally:
            self._slots.release()
        self.answer(result)

    def _refuse(self, request: _Request, error: str) -> None:
        self.answer(EvalResult(request_id=request.request_id, ok=False, error=error))
