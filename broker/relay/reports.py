"""Reports from admitted agents into the store: queued for its batches, with backpressure,
and counted and announced to the dashboards only once committed."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from debugbroker.broker.relay.agents import AgentRegistry, AgentState, Publish
from debugbroker.broker.relay.stats import RelayStats
from debugbroker.broker.store.frame_targets import report_frames
from debugbroker.broker.store.store import Store, report_summary
from debugbroker.broker.wire import WireReport

__all__ = ["ReportIntake"]

log = logging.getLogger("debugbroker.relay")
# Reports received but not yet committed: past either bound the receive loop waits for the
# store, zmq buffers, and then the agents shed reports and count them.
# (A report's dicts take several times its message's size: 500 small ones are ~25 MB.)
_MAX_REPORT_BACKLOG = 500
_MAX_REPORT_BACKLOG_BYTES = 4 * 1024 * 1024


class ReportIntake:
    """Takes the relay's reports to the store and announces the committed ones in order."""

    def __init__(
        self, *, store: Store, publish: Publish, stats: RelayStats, registry: AgentRegistry
    ) -> None:
        self.store = store
        self.publish = publish
        self.stats = stats
        self._registry = registry
        self._report_bytes = 0  # sizes of the reports received and not yet committed
        self._events: list[dict[str, Any]] = []  # report events waiting for the publisher
        self._publisher: asyncio.Task[None] | None = None
        self._stopped = False

    def stop(self) -> asyncio.Task[None] | None:
        """Announce nothing more; the publishing task, if any, for the caller to cancel."""
        self._stopped = True
        return self._publisher

    async def receive(self, agent: AgentState, message: WireReport) -> None:
        """Queue a report for the store's next batch without waiting for it (unless the
        backlog is full); it is counted and announced once committed (``_stored``).

        Which frames are held, and which thread is paused, is noted now, in message order,
        so that a ``Released`` or ``Resumed`` right behind it finds the note.
        """
        report = message.report
        if report["agent_id"] != agent.agent_id:
            report["agent_id"] = agent.agent_id  # an agent speaks for itself only
        self._registry.note_report(
            report["id"],
            agent.agent_id,
            paused=bool(report.get("paused")),
            holds=_holds_frames(report),
        )
        stored = self.store.queue_report(report)
        self._report_bytes += message.size
        stored.add_done_callback(functools.partial(self._stored, report, message.size))
        backlog = self.store.report_backlog
        if backlog >= _MAX_REPORT_BACKLOG or self._report_bytes >= _MAX_REPORT_BACKLOG_BYTES:
            await asyncio.wait({stored})  # the store is behind: stop reading until it catches up
        else:  # let the rest of the loop run (HTTP, committed batches): a storm never ends
            await asyncio.sleep(0)

    def _stored(self, report: dict[str, Any], size: int, stored: asyncio.Future[bool]) -> None:
        """A report's batch is committed (or failed): count it and tell the dashboards."""
        self._report_bytes -= size
        error = None if stored.cancelled() else stored.exception()
        if stored.cancelled() or error is not None:
            self.stats.not_stored += 1
            log.error("report %.100s could not be stored: %s", report["id"], error or "cancelled")
            self._registry.forget_report(report["id"], report["agent_id"])
            return
        if not stored.result():
            return  # already stored (sent again after a reconnect)
        self.stats.reports += 1
        self._events.append({"type": "report", "report": report_summary(report)})
        if not self._stopped and (self._publisher is None or self._publisher.done()):
            self._publisher = asyncio.get_running_loop().create_task(self._publish_reports())

    async def _publish_reports(self) -> None:
        """Announce stored reports in order: one task for all those committed meanwhile."""
        while self._events:
            events, self._events = self._events, []
            for event in events:
                await self.publish(event)


def _holds_frames(report: dict[str, Any]) -> bool:
    """Whether a wire report names a held frame (``frame_id`` set) in any exception."""
    return any(frame.get("frame_id") for frame in report_frames(report.get("exceptions")))
