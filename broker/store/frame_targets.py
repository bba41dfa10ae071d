"""Which agent holds a report's frames and the frame id of each frame index, cached.

A console eval names a frame by its report and index (``reports/{id}/frames/{index}``);
the agent needs the frame's id. Finding it means reading and parsing the whole report
(every frame's locals), which costs far more than the eval itself, so the answer is kept
in a bounded LRU. A stored report never changes (reports are only ever inserted), so an
entry never goes stale; only reports that exist are cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FrameTargets", "FrameCache", "frame_targets", "report_frames"]

_CACHED_REPORTS = 2_000


@dataclass(frozen=True, slots=True)
class FrameTargets:
    """A report's agent and, per frame index, the held frame's id ("" when not kept)."""

    agent_id: str
    frame_ids: Mapping[int, str]


def report_frames(exceptions: object) -> Iterator[dict[str, Any]]:
    """Every frame of a report's ``exceptions`` (wire dicts), group members included.

    Print order: each exception's frames, then those of its sub-exceptions. Entries that
    are not maps are skipped, so a malformed stored report cannot make a handler fail.
    """
    if not isinstance(exceptions, (list, tuple)):  # stored JSON, or a decoded report
        return
    for info in exceptions:
        if isinstance(info, dict):
            yield from (frame for frame in info.get("frames") or () if isinstance(frame, dict))
            yield from report_frames(info.get("exceptions"))


def frame_targets(report: dict[str, Any]) -> FrameTargets:
    """The frame targets of a report (its wire dict); the first frame of an index wins."""
    frame_ids: dict[int, str] = {}
    for frame in report_frames(report.get("exceptions")):
        index = frame.get("index")
        if isinstance(index, int) and index not in frame_ids:
            frame_id = frame.get("frame_id")
            frame_ids[index] = frame_id if isinstance(frame_id, str) else ""
    return FrameTargets(agent_id=str(report["agent_id"]), frame_ids=frame_ids)


class FrameCache:
    """A bounded LRU of report id -> ``FrameTargets`` (used from the event loop only)."""

    def __init__(self, capacity: int = _CACHED_REPORTS) -> None:
        self.capacity = max(capacity, 1)
        self._entries: OrderedDict[str, FrameTargets] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, report_id: str) -> FrameTargets | None:
        """The cached targets of a report (now the most recently used), or None."""
        targets = self._entries.get(report_id)
        if targets is not None:
            self._entries.move_to_end(report_id)
        return targets

    def put(self, report_id: str, targets: FrameTargets) -> None:
        """Remember a report's targets, forgetting the least recently used beyond capacity."""
        self._entries[report_id] = targets
        self._entries.move_to_end(report_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, report_id: str) -> None:
        """Drop a deleted report's targets."""
        self._entries.pop(report_id, None)

    def clear(self) -> None:
        """Drop every cached entry (reports were deleted)."""
        self._entries.clear()
