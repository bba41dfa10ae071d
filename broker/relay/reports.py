"""Reports from admitted agents into the store: queued for its batches, with backpressure,
and counted, acknowledged to their agents (``protocol.Stored``) and announced to the
dashboards only once committed.

Acknowledged means committed: the store's commit returned (WAL, see ``schema.py``), so
the report survives the broker being killed. The acknowledgements of one commit go out
together, one ``Stored`` per agent. Reports that wait through a storage fault (a full disk)
are acknowledged when they are finally stored; a shed one never is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from debugbroker import protocol
from debugbroker.broker.relay.agents import AgentRegistry, AgentState, Publish
from debugbroker.broker.relay.stats import RelayStats
from debugbroker.broker.store.frame_targets import report_frames
from debugbroker.broker.store.store import ReportShed, Store, report_summary
from debugbroker.broker.wire import WireReport, report_view, wire_json
from debugbroker.protocol import Message, Repeats, Stored

__all__ = ["ReportIntake"]

log = logging.getLogger("debugbroker.relay")
# Reports received but not yet committed: past either bound the receive loop waits for the
# store, zmq buffers, and then the agents shed reports and count them.
# Two of the store's batches: one being written while the next gathers (``store``).
# (A report's dicts take several times its message's size: 1,000 small ones are ~50 MB.)
_MAX_REPORT_BACKLOG = 1000
_MAX_REPORT_BACKLOG_BYTES = 4 * 1024 * 1024
# Reports received whose group a ``Repeats`` may name: an agent counts repeats against its
# latest full report of an error and sends them within a second, so the latest ones do.
_KNOWN_REPORTS = 100_000


class ReportIntake:
    """Takes the relay's reports to the store and announces the committed ones in order."""

    def __init__(
        self,
        *,
        store: Store,
        publish: Publish,
        stats: RelayStats,
        registry: AgentRegistry,
        send_now: Callable[[bytes, Message], bool],
    ) -> None:
        self.store = store
        self.publish = publish
        self.stats = stats
        self._registry = registry
        self._send_now = send_now
        self._acks: dict[bytes, list[str]] = {}  # report ids committed, by agent identity
        self._report_bytes = 0  # sizes of the reports received and not yet committed
        self._events: list[dict[str, Any]] = []  # report events waiting for the publisher
        self._publisher: asyncio.Task[None] | None = None
        self._stopped = False
        # Report id -> (agent id, fingerprint) of the latest reports received.
        self._known: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def stop(self) -> asyncio.Task[None] | None:
        """Announce nothing more; the publishing task, if any, for the caller to cancel."""
        self._stopped = True
        return self._publisher

    async def receive(self, identity: bytes, agent: AgentState, message: WireReport) -> None:
        """Queue a report for the store's next batch without waiting for it (unless the
        backlog is full); it is counted and announced once committed (``_stored``).

        Which frames are held, and which thread is paused, is noted now, in message order,
        so that a ``Released`` or ``Resumed`` right behind it finds the note.
        """
        checked = message.report
        if checked.agent_id != agent.agent_id:  # an agent speaks for itself only
            checked = dataclasses.replace(checked, agent_id=agent.agent_id)
        report = report_view(checked)  # what is read of it here; the store keeps its JSON
        self._registry.note_report(
            report["id"],
            agent.agent_id,
            paused=bool(report.get("paused")),
            holds=_holds_frames(report),
        )
        try:  # its list row: for the store and the dashboards, worked out once
            summary: dict[str, Any] | None = report_summary(report)
        except (KeyError, TypeError, ValueError):
            summary = None  # the store says why it cannot store it
        if summary is not None:  # the group its agent's counted repeats go to
            self._known[report["id"]] = (agent.agent_id, str(summary["fingerprint"]))
            if len(self._known) > _KNOWN_REPORTS:
                self._known.popitem(last=False)
        stored = self.store.queue_report(report, message.size, summary, wire_json(checked))
        self._report_bytes += message.size
        stored.add_done_callback(
            functools.partial(self._stored, identity, report, summary, message.size)
        )
        backlog = self.store.report_backlog
        # Reports waiting through a storage fault are bounded by the store, not here: the
        # relay reads on, so that past that bound they are shed and counted by the broker.
        writing = self._report_bytes - self.store.waiting_bytes
        if backlog >= _MAX_REPORT_BACKLOG or writing >= _MAX_REPORT_BACKLOG_BYTES:
            await asyncio.wait({stored})  # the store is behind: stop reading until it catches up
        else:  # let the rest of the loop run (HTTP, committed batches): a storm never ends
            await asyncio.sleep(0)

    def repeats(self, agent: AgentState, message: Repeats) -> None:
        """Errors ``agent`` counted, not captured: into the groups of the reports they name
        (exactly: the store adds them in its next queued write), or, for a report this
        broker never received from that agent (received before a restart, shed by the
        agent, or unknown), onto the agent's ``repeats_unknown``: counted, never lost."""
        rows: list[tuple[str, int, float, float]] = []
        for entry in message.counts:
            known = self._known.get(entry.report_id)
            if known is None or known[0] != agent.agent_id:
                agent.repeats_unknown += entry.count
                self.stats.repeats_unknown += entry.count
                continue
            rows.append((known[1], entry.count, entry.first, entry.last))
            self.stats.repeats_counted += entry.count
        self.store.queue_repeats(rows)

    def _stored(
        self,
        identity: bytes,
        report: dict[str, Any],
        summary: dict[str, Any] | None,
        size: int,
        stored: asyncio.Future[bool],
    ) -> None:
        """A report's batch is committed (or failed): count it, acknowledge it to its agent
        and tell the dashboards."""
        self._report_bytes -= size
        error = None if stored.cancelled() else stored.exception()
        if stored.cancelled() or error is not None:
            if not isinstance(error, ReportShed):  # the store counts and logs those
                self.stats.not_stored += 1
                log.error(
                    "report %.100s could not be stored: %s", report["id"], error or "cancelled"
                )
            self._registry.forget_report(report["id"], report["agent_id"])
            return
        self._acknowledge(identity, report["id"])
        if not stored.result():
            return  # already stored (sent again after a reconnect)
        self.stats.reports += 1
        row = report_summary(report) if summary is None else summary
        self._events.append({"type": "report", "report": row})
        step_of = report.get("step_of")
        if step_of and report.get("paused"):  # a step's stop: dashboards on the last one follow
            driver = self._registry.note_stop(report["id"], report["agent_id"], str(step_of))
            if driver is not None:
                event = {"type": "stepped", "from": step_of, "report_id": report["id"]}
                self._events.append({**event, "by": driver})
        if not self._stopped and (self._publisher is None or self._publisher.done()):
            self._publisher = asyncio.get_running_loop().create_task(self._publish_reports())

    def _acknowledge(self, identity: bytes, report_id: str) -> None:
        """Tell the agent its report is stored: with the others of this commit, soon."""
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._send_acks)
        self._acks.setdefault(identity, []).append(report_id)

    def _send_acks(self) -> None:
        acks, self._acks = self._acks, {}
        if self._stopped:
            return
        for identity, ids in acks.items():
            for start in range(0, len(ids), protocol.MAX_HELD_IDS):
                chunk = tuple(ids[start : start + protocol.MAX_HELD_IDS])
                self._send_now(identity, Stored(report_ids=chunk))  # gone: never acknowledged

    async def _publish_reports(self) -> None:
        """Announce stored reports in order: one task for all those committed meanwhile."""
        while self._events:
            events, self._events = self._events, []
            for event in events:
                await self.publish(event)


def _holds_frames(report: dict[str, Any]) -> bool:
    """Whether a wire report names a held frame (``frame_id`` set) in any exception."""
    return any(frame.get("frame_id") for frame in report_frames(report.get("exceptions")))
