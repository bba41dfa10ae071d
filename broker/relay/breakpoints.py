"""Breakpoints set from the dashboard: kept in the store, sent to the agents they apply to.

A breakpoint applies to every agent of its app, or to the one agent it names. Each agent gets
its whole list (``protocol.SetBreakpoints``) after every welcome (so a reconnected agent, a
worker forked later and a restarted broker's agents all get theirs) and after every change;
it answers with each breakpoint's state (``protocol.BreakpointStates``), which the book keeps
per agent in memory and the dashboards hear of (``{"type": "breakpoints"}`` events carry the
whole list, small by construction: at most ``protocol.MAX_BREAKPOINTS`` per app).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from debugbroker import protocol
from debugbroker.broker.relay.agents import AgentState, Publish, Send
from debugbroker.broker.store.store import Store

__all__ = ["BreakpointBook", "BreakpointError"]


class BreakpointError(Exception):
    """A breakpoint cannot be set or changed: ``status`` and the message say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BreakpointBook:
    """The breakpoints, what each agent made of them, and their delivery."""

    def __init__(
        self,
        *,
        store: Store,
        publish: Publish,
        send: Send,
        agents: dict[str, AgentState],
    ) -> None:
        self.store = store
        self.publish = publish
        self._send = send
        self._agents = agents
        self.breakpoints: dict[str, dict[str, Any]] = {}
        # breakpoint id -> agent id -> its state there (``protocol.BreakpointState`` as JSON)
        self.states: dict[str, dict[str, dict[str, Any]]] = {}

    async def load(self) -> None:
        """Read the stored breakpoints (at broker start)."""
        for breakpoint in await self.store.list_breakpoints():
            self.breakpoints[breakpoint["id"]] = breakpoint

    def to_json(self) -> list[dict[str, Any]]:
        """Every breakpoint, oldest first, each with its ``states`` per agent."""
        return [
            breakpoint | {"states": dict(self.states.get(breakpoint["id"], {}))}
            for breakpoint in self.breakpoints.values()
        ]

    def get(self, breakpoint_id: str) -> dict[str, Any] | None:
        """One breakpoint as JSON, states included, or None."""
        breakpoint = self.breakpoints.get(breakpoint_id)
        if breakpoint is None:
            return None
        return breakpoint | {"states": dict(self.states.get(breakpoint_id, {}))}

    async def add(
        self,
        *,
        app: str,
        agent_id: str,
        file: str,
        line: int,
        condition: str,
        hit_count: int,
        enabled: bool,
        created_by: str,
    ) -> dict[str, Any]:
        """Set a new breakpoint, store it, send it to its agents."""
        same_app = [b for b in self.breakpoints.values() if b["app"] == app]
        if len(same_app) >= protocol.MAX_BREAKPOINTS:
            raise BreakpointError(
                409, f"app {app!r} has {protocol.MAX_BREAKPOINTS} breakpoints: remove one first"
            )
        breakpoint: dict[str, Any] = {
            "id": uuid.uuid4().hex[:16],
            "app": app,
            "agent_id": agent_id,
            "file": file,
            "line": line,
            "condition": condition,
            "hit_count": hit_count,
            "enabled": enabled,
            "created": time.time(),
            "created_by": created_by,
        }
        await self.store.save_breakpoint(breakpoint)
        self.breakpoints[breakpoint["id"]] = breakpoint
        await self._changed([breakpoint])
        return breakpoint | {"states": {}}

    async def change(self, breakpoint_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Enable, disable or change the condition or hit count; None if there is none."""
        old = self.breakpoints.get(breakpoint_id)
        if old is None:
            return None
        new = old | changes
        await self.store.save_breakpoint(new)
        self.breakpoints[breakpoint_id] = new
        self.states.pop(breakpoint_id, None)  # the agents say again what they made of it
        await self._changed([new])
        return new | {"states": {}}

    async def remove(self, breakpoint_id: str) -> dict[str, Any] | None:
        """Remove a breakpoint (from the store and its agents); the removed one, or None."""
        old = self.breakpoints.pop(breakpoint_id, None)
        if old is None:
            return None
        self.states.pop(breakpoint_id, None)
        await self.store.delete_breakpoint(breakpoint_id)
        await self._changed([old])
        return old

    def for_agent(self, agent: AgentState) -> protocol.SetBreakpoints:
        """The list ``agent`` should have: its app's, and those naming it."""
        specs = tuple(
            protocol.BreakpointSpec(
                id=b["id"],
                file=b["file"],
                line=b["line"],
                condition=b["condition"],
                hit_count=b["hit_count"],
                enabled=b["enabled"],
            )
            for b in self.breakpoints.values()
            if _applies(b, agent)
        )
        return protocol.SetBreakpoints(breakpoints=specs[: protocol.MAX_BREAKPOINTS])

    async def send_to(self, agent: AgentState, *, holds: int = 1) -> None:
        """Send ``agent`` its list: after a change, and after its welcome when it has any or
        still ``holds`` some (from a list this broker may no longer know it sent)."""
        if not agent.alive:
            return
        message = self.for_agent(agent)
        if message.breakpoints or holds:
            await self._send(agent.agent_id.encode(), message)

    async def states_received(self, agent: AgentState, message: protocol.BreakpointStates) -> None:
        """``agent`` says what it made of its breakpoints: keep it, tell the dashboards."""
        now = time.time()
        named = {state.id for state in message.states}
        for breakpoint_id, per_agent in self.states.items():
            if breakpoint_id not in named:
                per_agent.pop(agent.agent_id, None)  # no longer this agent's
        for state in message.states[: protocol.MAX_BREAKPOINTS]:
            breakpoint = self.breakpoints.get(state.id)
            if breakpoint is None or not _applies(breakpoint, agent):
                continue  # removed meanwhile, or not this agent's
            self.states.setdefault(state.id, {})[agent.agent_id] = {
                "status": state.status,
                "reason": state.reason[:1000],
                "warning": state.warning[:1000],
                "hits": state.hits,
                "at": now,
            }
        await self.publish({"type": "breakpoints", "breakpoints": self.to_json()})

    async def agent_gone(self, agent: AgentState) -> None:
        """Forget what a gone agent made of its breakpoints."""
        changed = False
        for per_agent in self.states.values():
            changed = per_agent.pop(agent.agent_id, None) is not None or changed
        if changed:
            await self.publish({"type": "breakpoints", "breakpoints": self.to_json()})

    async def _changed(self, touched: Iterable[dict[str, Any]]) -> None:
        """Send the new lists to the live agents the changed breakpoints apply to."""
        for agent in list(self._agents.values()):
            if agent.alive and any(_applies(b, agent) for b in touched):
                await self.send_to(agent)
        await self.publish({"type": "breakpoints", "breakpoints": self.to_json()})


def _applies(breakpoint: dict[str, Any], agent: AgentState) -> bool:
    if breakpoint["agent_id"]:
        return bool(breakpoint["agent_id"] == agent.agent_id)
    return bool(breakpoint["app"] == agent.app)
