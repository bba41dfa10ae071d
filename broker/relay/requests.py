"""What the dashboard asks of an agent: evals, completions, interrupts and lookups wait for
the answer with their request id; releases and resumes are sent and noted.

A request goes to the exact agent holding the frame; only that agent may answer it. While
it waits, the agent's connection is probed (``ROUTER_MANDATORY`` makes a send to a gone
connection fail at once), so a request to a dead worker fails fast (``gone``, a 410) instead of
waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from debugbroker import protocol
from debugbroker.broker.relay.agents import AgentRegistry, AgentState, Send, gone_message
from debugbroker.broker.wire import WireResult
from debugbroker.protocol import (
    BAD_ANSWER,
    BUSY,
    DISABLED,
    GONE,
    NOT_PAUSED,
    RELEASED,
    STOPPING,
    TIMEOUT,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    ExpandResult,
    InterruptRequest,
    InterruptResult,
    Message,
    Ping,
    SourceRequest,
    SourceResult,
)

__all__ = ["ANSWERS", "Answer", "EvalFailure", "Requests", "STATUS_OF_REASON"]

Answer = WireResult | InterruptResult | ExpandResult | SourceResult
ANSWERS = (WireResult, InterruptResult, ExpandResult, SourceResult)  # evals, completions: wire
_MAX_PENDING_EVALS = 256
_PROBE_SECONDS = 0.25  # while an eval runs, how often its agent's connection is checked


# The HTTP status of each failure reason (``protocol.FAILURE_REASONS``).
STATUS_OF_REASON = {
    RELEASED: 409,
    NOT_PAUSED: 409,
    DISABLED: 403,
    BUSY: 503,
    STOPPING: 503,
    TIMEOUT: 504,
    GONE: 410,
    BAD_ANSWER: 502,
}


class EvalFailure(Exception):
    """A request that could not be carried out: ``reason`` (one of
    ``protocol.FAILURE_REASONS``) says why, ``message`` says it for people, and ``status``
    is the HTTP status that answers it (``STATUS_OF_REASON``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = STATUS_OF_REASON[reason]
        self.message = message

    @classmethod
    def refused(cls, reason: object, error: object) -> EvalFailure:
        """The agent's refusal (an answer's ``reason`` and ``error``); a reason outside the
        closed set is the agent's fault, answered as ``bad_answer``."""
        message = str(error) if error else "the agent refused the request"
        if not isinstance(reason, str) or reason not in STATUS_OF_REASON:
            return cls(BAD_ANSWER, f"the agent refused with an unknown reason: {message}")
        return cls(reason, message)


class Requests:
    """Sends the dashboard's requests to agents and hands each answer to its waiter.

    ``send_now`` sends from a callback (the probes); ``in_background`` runs what a callback
    cannot await (marking an agent gone) as a task the relay keeps.
    """

    def __init__(
        self,
        *,
        registry: AgentRegistry,
        send: Send,
        send_now: Callable[[bytes, Message], bool],
        in_background: Callable[[Awaitable[None]], None],
        eval_timeout: float,
    ) -> None:
        self.eval_timeout = eval_timeout
        self._registry = registry
        self._send = send
        self._send_now = send_now
        self._in_background = in_background
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}  # evals and co.
        # Request ids: unique per broker run (a random prefix), cheap per request (a counter);
        # only the agent asked may answer one, so they need not be unguessable.
        self._id_prefix = secrets.token_hex(4) + "-"
        self._ids = itertools.count(1)

    def answered(self, identity: bytes, message: Answer) -> bool:
        """Hand an answer to the eval (or lookup) waiting for it; False if none is (the
        receive loop decides: a hello request, or unexpected)."""
        agent = self._registry.agents.get(identity.decode("utf-8", "replace"))
        pending = self._pending.get(message.request_id)
        if agent is None or not agent.alive or pending is None or pending[0] != agent.agent_id:
            return False
        agent.last_seen = time.time()
        if not pending[1].done():
            pending[1].set_result(message)
        return True

    def resolve(self, agent: AgentState, message: Answer) -> None:
        """Hand an answer from the admitted ``agent`` to its waiter, if it is still waiting."""
        pending = self._pending.get(message.request_id)
        if pending is not None and pending[0] == agent.agent_id and not pending[1].done():
            pending[1].set_result(message)

    def fail(self, failure: EvalFailure, agent_id: str | None = None) -> None:
        """Fail every waiting request (only those sent to ``agent_id``, if given)."""
        for owner, future in self._pending.values():
            if (agent_id is None or owner == agent_id) and not future.done():
                future.set_exception(failure)

    async def release(self, report_id: str, agent_id: str) -> None:
        """Ask the agent to drop the frames of ``report_id`` now; ``EvalFailure`` if it can't."""
        registry = self._registry
        agent = registry.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(GONE, gone_message(agent))
        if registry.held.get(report_id) != agent_id:
            raise EvalFailure(RELEASED, "frames already released: the agent no longer holds them")
        if not await self._send(agent_id.encode(), protocol.Release(report_id=report_id)):
            await registry.mark_gone(agent, "its connection closed")
            raise EvalFailure(GONE, gone_message(agent))
        # The agent handles messages in order: any eval sent after this finds no frame.
        await registry.frames_released(agent_id, [report_id])

    async def resume(self, report_id: str, step: protocol.Step | None = None) -> None:
        """Let the thread paused in ``report_id`` go on (``step``: take that step, then pause
        again in a new report); ``EvalFailure`` if it can't."""
        registry = self._registry
        agent_id = registry.paused.get(report_id)
        if agent_id is None:
            raise EvalFailure(NOT_PAUSED, "this report is not paused: its thread already went on")
        agent = registry.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(GONE, gone_message(agent))
        if step is not None and not agent.evalex:
            raise EvalFailure(DISABLED, "stepping is disabled in this agent (evalex=False)")
        message: Message = step or protocol.Resume(report_id=report_id)
        if not await self._send(agent_id.encode(), message):
            await registry.mark_gone(agent, "its connection closed")
            raise EvalFailure(GONE, gone_message(agent))
        registry.paused.pop(report_id, None)

    async def evaluate(
        self, agent_id: str, frame_id: str, code: str, *, interactive: bool = False
    ) -> WireResult:
        """Run ``code`` in a frame held by ``agent_id``: its ``EvalResult`` as a checked wire
        dict (``wire.WireResult``); raises ``EvalFailure`` when it can't.

        The wait is the broker's eval timeout, or longer when the agent's own time limit
        is (the agent interrupts the code and answers first).
        """
        agent = self._eval_agent(agent_id)
        wait = max(self.eval_timeout, agent.eval_timeout + 5.0 if agent.eval_timeout else 0.0)
        request_id = self._request_id()
        request = EvalRequest(
            request_id=request_id, frame_id=frame_id, code=code, interactive=interactive
        )
        return _expect_wire(await self._ask(agent, request_id, request, wait), EvalResult)

    async def complete(self, agent_id: str, frame_id: str, text: str) -> WireResult:
        """Completions for ``text`` in a frame held by ``agent_id``: its ``CompleteResult``
        as a checked wire dict; ``EvalFailure`` if not."""
        agent = self._eval_agent(agent_id)
        request_id = self._request_id()
        request = CompleteRequest(request_id=request_id, frame_id=frame_id, text=text)
        result = await self._ask(agent, request_id, request, self.eval_timeout)
        return _expect_wire(result, CompleteResult)

    async def interrupt(self, agent_id: str, frame_id: str) -> InterruptResult:
        """Interrupt the evals running in a frame held by ``agent_id``; ``EvalFailure`` if not."""
        agent = self._eval_agent(agent_id)
        request_id = self._request_id()
        request = InterruptRequest(request_id=request_id, frame_id=frame_id)
        result = await self._ask(agent, request_id, request, self.eval_timeout)
        if not isinstance(result, InterruptResult):
            raise EvalFailure(BAD_ANSWER, "the agent answered with the wrong kind of message")
        return result

    async def look_up(
        self, agent_id: str, request: ExpandRequest | SourceRequest
    ) -> ExpandResult | SourceResult:
        """Ask the agent holding a frame for more of a value or its source (no evalex needed:
        nothing runs but the reprs capture already ran); ``EvalFailure`` when it can't."""
        agent = self._registry.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(GONE, gone_message(agent))
        if len(self._pending) >= _MAX_PENDING_EVALS:
            raise EvalFailure(BUSY, "too many requests are running; try again when one ends")
        result = await self._ask(agent, request.request_id, request, self.eval_timeout)
        if not isinstance(result, (ExpandResult, SourceResult)):
            raise EvalFailure(BAD_ANSWER, "the agent answered with the wrong kind of message")
        return result

    def _eval_agent(self, agent_id: str) -> AgentState:
        """The live agent that may run code, or ``EvalFailure``."""
        agent = self._registry.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(GONE, gone_message(agent))
        if not agent.evalex:
            raise EvalFailure(DISABLED, "code execution is disabled in this agent (evalex=False)")
        if len(self._pending) >= _MAX_PENDING_EVALS:
            raise EvalFailure(BUSY, "too many evals are running; try again when one ends")
        return agent

    def _request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    async def _ask(self, agent: AgentState, request_id: str, request: Message, wait: float) -> Any:
        """Send ``request`` and wait up to ``wait`` seconds for the answer with its id.

        The answer's future is awaited directly; a timer meanwhile probes the agent's
        connection every ``_PROBE_SECONDS`` and fails the future at the deadline (cheaper
        than ``asyncio.wait`` per probe interval: no waiter future, one loop turn less).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = (agent.agent_id, future)
        identity = agent.agent_id.encode()
        timer: list[asyncio.TimerHandle] = []
        try:
            if not await self._send(identity, request):
                await self._registry.mark_gone(agent, "its connection closed")
                raise EvalFailure(GONE, gone_message(agent))
            probe = _Probe(self, agent, identity, future, loop.time() + wait, wait, timer)
            probe.arm(loop)
            answer = await future
        finally:
            if timer:
                timer[0].cancel()
            self._pending.pop(request_id, None)
        # An agent's refusal (any kind of answer: a busy agent answers a lookup with an
        # EvalResult) fails the request with its reason.
        if isinstance(answer, WireResult) and answer.reason is not None:
            raise EvalFailure.refused(answer.reason, answer.wire.get("error"))
        if isinstance(answer, (ExpandResult, SourceResult)) and answer.reason is not None:
            raise EvalFailure.refused(answer.reason, answer.error)
        return answer

    def probe(self, agent: AgentState, identity: bytes) -> None:
        """Ping ``agent``'s connection from a callback; when it is closed, mark it gone."""
        if not self._send_now(identity, Ping()):
            self._in_background(self._registry.mark_gone(agent, "its connection closed"))


@dataclass(frozen=True, slots=True)
class _Probe:
    """While a request waits: probe its agent's connection every ``_PROBE_SECONDS``, and
    fail the answer's future (``timeout``, a 504) at the deadline. ``timer`` holds the next call."""

    requests: Requests
    agent: AgentState
    identity: bytes
    future: asyncio.Future[Any]
    deadline: float  # on the loop's clock
    wait: float
    timer: list[asyncio.TimerHandle]

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        at = min(loop.time() + _PROBE_SECONDS, self.deadline)
        handle = loop.call_at(at, self.run, at >= self.deadline)
        self.timer[:] = [handle]

    def run(self, at_deadline: bool) -> None:
        if self.future.done():
            return
        if at_deadline:
            late = f"the agent (pid {self.agent.pid}) did not answer within {self.wait:g} seconds"
            self.future.set_exception(EvalFailure(TIMEOUT, late))
            return
        # A request sent just as the process died is lost with its connection; a probe to
        # a gone connection fails at once (ROUTER_MANDATORY), and marking the agent gone
        # fails this future with a 410 (before its first await).
        self.requests.probe(self.agent, self.identity)
        self.arm(asyncio.get_running_loop())


def _expect_wire(result: object, cls: type[EvalResult] | type[CompleteResult]) -> WireResult:
    """``result`` if it is an answer of class ``cls``; a 502 ``EvalFailure`` if the agent
    answered with another kind of message under the request's id."""
    if not isinstance(result, WireResult) or result.cls is not cls:
        raise EvalFailure(BAD_ANSWER, "the agent answered with the wrong kind of message")
    return result
