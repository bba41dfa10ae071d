"""The agents the relay knows: admission, liveness, and what each one holds.

An agent proves the shared secret in its hello (``protocol.keys.hello_proof``: the secret
itself never crosses the wire) before anything else it sends is accepted, and the welcome
proves it back;
the hello also says which reports' frames it still holds and which of its threads are
paused, so a broker that restarted learns both again. An agent is marked gone when it says
bye, when its heartbeats stop, or when its connection closes (the relay probes it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from debugbroker import protocol
from debugbroker.broker.relay.stats import RelayStats, worth_logging
from debugbroker.broker.store.store import Store
from debugbroker.protocol import Heartbeat, Hello, Message, Refused, Welcome, keys

__all__ = ["AgentRegistry", "AgentState", "Publish", "Send", "gone_message"]

log = logging.getLogger("debugbroker.relay")
Publish = Callable[[dict[str, Any]], Awaitable[None]]
Send = Callable[[bytes, Message], Awaitable[bool]]  # False: the connection is gone
_MAX_RELEASED = 10_000  # release times remembered for the report JSON (oldest forgotten)


@dataclass(slots=True)
class AgentState:
    """An agent process as the broker knows it."""

    agent_id: str
    pid: int
    host: str
    app: str
    python: str
    started: float
    evalex: bool
    last_seen: float
    alive: bool = False
    held_frames: int = 0
    dropped_reports: int = 0
    held_reports: int = 0  # reports whose frames it holds (heartbeat)
    held_bytes: int = 0  # its memory estimate of them (heartbeat)
    console: bool = False  # offers a console on the live process
    eval_timeout: float = 0.0  # the agent's own time limit per eval
    # Errors it counted against a report this broker does not know (``ReportIntake``).
    repeats_unknown: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``Agent`` object of the HTTP API."""
        return {
            "agent_id": self.agent_id,
            "pid": self.pid,
            "host": self.host,
            "app": self.app,
            "python": self.python,
            "started": self.started,
            "evalex": self.evalex,
            "alive": self.alive,
            "last_seen": self.last_seen,
            "held_frames": self.held_frames,
            "console": self.console and self.evalex,
            "dropped_reports": self.dropped_reports,
            "held_reports": self.held_reports,
            "held_bytes": self.held_bytes,
            "repeats_unknown": self.repeats_unknown,
        }

    def record(self) -> dict[str, Any]:
        """The columns the store keeps."""
        return {
            name: getattr(self, name)
            for name in ("agent_id", "pid", "host", "app", "python", "started", "evalex")
        } | {"last_seen": self.last_seen}


class AgentRegistry:
    """Admits agents (hello: ``Welcome`` or ``Refused``), follows their heartbeats, marks
    them gone, and notes whose frames are held and which threads are paused.

    ``on_gone`` is called when an agent is marked gone, before anything is awaited: the
    requests waiting on it fail at once.
    """

    def __init__(
        self,
        *,
        secret: str,
        dashboard_url: str,
        store: Store,
        publish: Publish,
        send: Send,
        stats: RelayStats,
        agent_timeout: float,
        on_gone: Callable[[AgentState], None],
    ) -> None:
        self.secret = secret
        self.dashboard_url = dashboard_url
        self.store = store
        self.publish = publish
        self.stats = stats
        self.agent_timeout = agent_timeout
        self._send = send
        self._on_gone = on_gone
        self.agents: dict[str, AgentState] = {}
        self.paused: dict[str, str] = {}  # report id -> agent id, threads held at breakpoint()
        # Whose frames are held: report id -> agent id (its reports, hello and releases);
        # and when the broker learnt that a report's frames were released.
        self.held: dict[str, str] = {}
        self.released_at: OrderedDict[str, float] = OrderedDict()
        # The latest steps: paused report id -> (who took the step, the agent paused in it),
        # and -> the report of the stop it led to (whose ``step_of`` names it).
        self.steps: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.step_next: dict[str, str] = {}

    def note_step(self, report_id: str, driver: str, agent_id: str) -> None:
        """Note that ``driver`` took a step from ``agent_id``'s paused report ``report_id``."""
        self.steps[report_id] = (driver, agent_id)
        self.steps.move_to_end(report_id)
        while len(self.steps) > _MAX_RELEASED:
            self.step_next.pop(self.steps.popitem(last=False)[0], None)

    def note_stop(self, report_id: str, agent_id: str, step_of: str) -> str | None:
        """A paused report of ``agent_id`` after a step from ``step_of``: who took that step
        (None if no step from that agent's ``step_of`` is known)."""
        known = self.steps.get(step_of)
        if known is None or known[1] != agent_id:
            return None
        self.step_next[step_of] = report_id
        return known[0]

    async def load(self) -> None:
        """Load the agents the store knows: all gone until they say hello."""
        for record in await self.store.list_agents():
            state = AgentState(**record)
            self.agents[state.agent_id] = state

    async def hello(self, identity: bytes, agent_id: str, hello: Hello) -> bool:
        """Admit the agent (``Welcome``) or refuse it (``Refused``, logged, counted, audited);
        whether it was admitted."""
        if hello.agent_id != agent_id:
            reason = "the hello's agent id does not match the connection's identity"
        elif hello.protocol < 2:
            reason = (
                f"this agent speaks protocol {hello.protocol}, which sends DEBUGBROKER_SECRET "
                f"itself; this broker speaks {protocol.PROTOCOL_VERSION}, where the secret "
                "never crosses the wire: upgrade debugbroker in the app"
            )
        elif hello.protocol != protocol.PROTOCOL_VERSION:
            reason = (
                f"protocol version {hello.protocol} is not supported "
                f"(this broker speaks {protocol.PROTOCOL_VERSION}); upgrade debugbroker"
            )
        elif not keys.proof_matches(
            keys.hello_proof(self.secret, agent_id, hello.nonce), hello.proof
        ):
            reason = "wrong secret (set DEBUGBROKER_SECRET to the broker's secret)"
        else:
            reason = ""
        if reason:
            self.stats.refused += 1
            await self.note_refusal(
                agent_id, f"{reason}; pid {hello.pid} on {hello.host[:100]!r}", self.stats.refused
            )
            await self._send(identity, Refused(reason=reason))
            return False
        known = self.agents.get(agent_id)
        agent = AgentState(
            agent_id=agent_id,
            pid=hello.pid,
            host=hello.host,
            app=hello.app,
            python=hello.python,
            started=hello.started,
            evalex=hello.evalex,
            console=hello.console,
            eval_timeout=hello.eval_timeout,
            last_seen=time.time(),
            alive=True,
            held_frames=known.held_frames if known else 0,
        )
        self.agents[agent_id] = agent
        # Threads still paused at breakpoint() (this broker may have restarted meanwhile);
        # only the agent's own paused reports count.
        for report_id in [r for r, owner in self.paused.items() if owner == agent_id]:
            del self.paused[report_id]
        # The frames it still holds (only its own reports count: see ``frames_held``).
        still_held = set(hello.held[: protocol.MAX_HELD_IDS])
        gone = [r for r, owner in self.held.items() if owner == agent_id and r not in still_held]
        for report_id in still_held:
            self.held[report_id] = agent_id
        await self.frames_released(agent_id, gone)
        for report_id in hello.paused[:64]:
            found = await self.store.get_report(report_id)
            if found and found.get("agent_id") == agent_id and found.get("paused"):
                self.paused[report_id] = agent_id
        await self.store.save_agent(agent.record())
        proof = keys.welcome_proof(self.secret, agent_id, hello.nonce, self.dashboard_url)
        await self._send(identity, Welcome(dashboard_url=self.dashboard_url, proof=proof))
        if known is None or not known.alive:
            log.info("agent %s connected (pid %d on %s)", agent_id, hello.pid, hello.host)
            await self.store.add_audit(
                {
                    "at": agent.last_seen,
                    "action": "agent_admitted",
                    "agent_id": agent_id,
                    "outcome": "ok",
                    "detail": f"pid {hello.pid} on {hello.host!r}, app {hello.app!r}, "
                    f"evalex={hello.evalex}",
                }
            )
        await self.publish({"type": "agent", "agent": agent.to_json()})
        return True

    async def note_refusal(self, agent_id: str, detail: str, count: int) -> None:
        """Log and audit the ``count``-th refused agent (the first ones, then every 100th).

        ``agent_id`` is empty for a connection refused in its handshake (no hello read).
        Never the secret; names quoted (%r).
        """
        if not worth_logging(count):
            return
        who = f"agent {agent_id[:200]!r}" if agent_id else "a connection"
        log.warning("refused %s: %s (%d so far)", who, detail, count)
        await self.store.add_audit(
            {
                "at": time.time(),
                "action": "agent_refused",
                "agent_id": agent_id[:200],
                "outcome": "refused",
                "detail": f"{detail}; {count} refused so far",
            }
        )

    async def heartbeat(self, agent: AgentState, message: Heartbeat) -> None:
        """Take the agent's counts; the dashboards hear of them only when they change."""
        before = (agent.held_frames, agent.dropped_reports, agent.held_reports)
        changed = before != (
            message.held_frames,
            message.dropped_reports,
            message.held_reports,
        )
        agent.held_frames = message.held_frames
        agent.dropped_reports = message.dropped_reports
        agent.held_reports = message.held_reports
        agent.held_bytes = message.held_bytes
        if changed:
            await self.publish({"type": "agent", "agent": agent.to_json()})

    async def liveness_loop(self) -> None:
        """Mark agents gone whose last message is older than the agent timeout."""
        while True:
            await asyncio.sleep(min(1.0, self.agent_timeout / 4))
            now = time.time()
            for agent in list(self.agents.values()):
                if agent.alive and now - agent.last_seen > self.agent_timeout:
                    await self.mark_gone(agent, "no heartbeat")

    async def mark_gone(self, agent: AgentState, why: str) -> None:
        """The agent's process is gone: its notes go with it, its requests fail (410)."""
        if not agent.alive:
            return
        agent.alive = False
        for report_id in [r for r, owner in self.paused.items() if owner == agent.agent_id]:
            del self.paused[report_id]
        for report_id in [r for r, owner in self.held.items() if owner == agent.agent_id]:
            del self.held[report_id]  # gone with the process (the agent event says so)
        self._on_gone(agent)
        log.info("agent %s (pid %d on %s) is gone: %s", agent.agent_id, agent.pid, agent.host, why)
        await self.store.save_agent(agent.record())
        await self.publish({"type": "agent", "agent": agent.to_json()})

    def note_report(self, report_id: str, agent_id: str, *, paused: bool, holds: bool) -> None:
        """Note that ``agent_id``'s report has a paused thread and/or holds frames."""
        if paused:
            self.paused[report_id] = agent_id
        if holds:
            self.held[report_id] = agent_id

    def forget_report(self, report_id: str, agent_id: str) -> None:
        """Drop the notes of ``agent_id``'s report (it could not be stored)."""
        for notes in (self.held, self.paused):
            if notes.get(report_id) == agent_id:
                del notes[report_id]

    async def resumed(self, agent: AgentState, message: protocol.Resumed) -> None:
        """A paused thread of ``agent`` went on: forget the note, tell the dashboards."""
        if self.paused.get(message.report_id) == agent.agent_id:
            del self.paused[message.report_id]
        event = {"type": "resumed", "report_id": message.report_id, "reason": message.reason}
        if message.reason == "step":
            event["by"] = self.steps.get(message.report_id, ("", ""))[0]
        await self.publish(event)

    def frames_held(self, report_id: str, agent_id: str) -> bool:
        """Whether the live agent ``agent_id`` (the report's own) still holds its frames."""
        agent = self.agents.get(agent_id)
        return bool(agent and agent.alive and self.held.get(report_id) == agent_id)

    async def frames_released(self, agent_id: str, report_ids: Sequence[str]) -> None:
        """Forget that ``agent_id`` holds these reports' frames and tell the dashboards."""
        now = time.time()
        released = [r for r in report_ids if self.held.get(r) == agent_id]
        for report_id in released:
            del self.held[report_id]
            self.released_at[report_id] = now
            self.released_at.move_to_end(report_id)
        while len(self.released_at) > _MAX_RELEASED:
            self.released_at.popitem(last=False)
        if released:
            await self.publish({"type": "frames", "report_ids": released, "held": False, "at": now})


def gone_message(agent: AgentState | None) -> str:
    """Why a request to ``agent`` (or to an agent not known at all) cannot be answered."""
    where = f" (pid {agent.pid} on {agent.host})" if agent else ""
    return f"process gone: the worker process that raised this error{where} has exited"
