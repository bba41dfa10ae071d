"""The agents table: every agent the broker has seen (plain functions of a connection)."""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["AgentRecord", "save_agent", "select_agents"]

AgentRecord = dict[str, Any]
_AGENT_COLUMNS = "agent_id, pid, host, app, python, started, evalex, last_seen"


def save_agent(connection: sqlite3.Connection, agent: AgentRecord) -> None:
    """Insert or update an agent (the fields of ``_AGENT_COLUMNS``); not committed (the
    store queues it with its other writes)."""
    names = _AGENT_COLUMNS.split(", ")
    values = tuple(int(agent[n]) if n == "evalex" else agent[n] for n in names)
    connection.execute(
        f"INSERT OR REPLACE INTO agents ({_AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        values,
    )


def select_agents(connection: sqlite3.Connection, limit: int) -> list[AgentRecord]:
    """Agents the broker has ever seen, most recently seen first."""
    rows = connection.execute(
        f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY last_seen DESC LIMIT ?", (limit,)
    ).fetchall()
    names = _AGENT_COLUMNS.split(", ")
    agents = [dict(zip(names, row, strict=True)) for row in rows]
    for agent in agents:
        agent["evalex"] = bool(agent["evalex"])
    return agents
