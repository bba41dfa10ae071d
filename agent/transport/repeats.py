"""The storm policy: an error that repeats past its budget is counted, not captured.

A full capture (every frame's locals as reprs, the frames held for evals) costs the worker
about 0.4 ms of CPU, and the broker then decodes and stores a report its group keeps only
to let it go again (docs/limits.md: a group keeps its first and latest ten). So before
the capture the middleware asks ``RepeatBudget.take`` with a cheap key of the error: the
types of its exception chain and the code object and line number of every frame of each
traceback, the exact same failing path. Per key and process a token bucket (``burst``
full reports at once, ``per_second`` more each second) decides: a token left, the error
is captured in full (and, once queued, its report becomes the key's representative);
none left, it is counted against the key's last full report, with its time.

The counts go to the broker in a ``protocol.Repeats`` (the link sends them at most once a
second, after the reports they name, and before its bye), which adds them to that
report's group: its total and hourly histogram stay exact. ``burst=0`` turns the policy
off (every error captured). Nothing here blocks or raises into the app: one lock, a few
dict operations.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

from debugbroker.protocol import MAX_REPEAT_COUNTS, RepeatCount

__all__ = ["RepeatBudget", "RepeatKey", "repeat_key"]

_MAX_KEYS = 1024  # keys remembered per process (the least recently seen is forgotten)
_MAX_CHAIN = 32  # exceptions of a chain looked at for the key
_MAX_FRAMES = 200  # frames of one traceback looked at for the key
_HOUR = 3600

RepeatKey = tuple[int, ...]


def repeat_key(error: BaseException) -> tuple[RepeatKey, list[object]]:
    """The key of ``error``'s failing path, and the objects whose ids it holds.

    Ids are cheap to hash (a code object hashes its whole contents); the objects are kept
    alive with the key's entry, so no id is reused while the entry lives.
    """
    parts: list[int] = []
    kept: list[object] = []
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        kind = type(current)
        kept.append(kind)
        parts.append(id(kind))
        tb: TracebackType | None = current.__traceback__
        frames = 0
        while tb is not None and frames < _MAX_FRAMES:
            code = tb.tb_frame.f_code
            kept.append(code)
            parts.append(id(code))
            parts.append(tb.tb_lineno)
            tb = tb.tb_next
            frames += 1
        parts.append(-1)  # the end of one exception's frames
        cause = current.__cause__
        current = cause if cause is not None else current.__context__
    return tuple(parts), kept


class _Bucket:
    """One key's budget: tokens left, when they were last refilled, its representative."""

    __slots__ = ("tokens", "refilled", "report_id", "kept")

    def __init__(self, tokens: float, now: float, kept: list[object]) -> None:
        self.tokens = tokens
        self.refilled = now
        self.report_id: str | None = None  # the key's last full report, once queued
        self.kept = kept


class RepeatBudget:
    """Per process: each key's token bucket, and the counts not yet sent to the broker.

    Exact: every ``take`` that answers a report id adds one to ``counted`` and to the
    pending counts, which ``take_counts`` hands to the link and ``restore`` takes back
    when they could not be sent.
    """

    def __init__(
        self,
        burst: int,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` refills the buckets, ``wall_clock`` dates the counts (tests pass
        their own)."""
        self._clock = clock
        self._wall_clock = wall_clock
        self.burst = max(0, burst)
        self.per_second = max(0.0, per_second)
        self.counted = 0  # errors counted, not captured, since the process started
        self._buckets: OrderedDict[RepeatKey, _Bucket] = OrderedDict()
        # (report id, hour) -> [count, first, last], in the order they were first counted.
        self._pending: dict[tuple[str, int], list[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether errors past their budget are counted (``burst`` > 0)."""
        return self.burst > 0

    @property
    def pending(self) -> int:
        """Counted errors not yet handed to the link."""
        with self._lock:
            return int(sum(entry[0] for entry in self._pending.values()))

    def take(self, error: BaseException) -> tuple[RepeatKey | None, str | None]:
        """Spend a token of ``error``'s key: ``(key, None)`` when it is to be captured in
        full (then ``represent(key, report_id)`` once its report is queued), ``(key,
        report_id)`` when it was counted against that report instead. ``(None, None)``
        when the policy is off."""
        if not self.burst:
            return None, None
        key, kept = repeat_key(error)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now, kept)
                if len(self._buckets) > _MAX_KEYS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                refill = (now - bucket.refilled) * self.per_second
                bucket.tokens = min(float(self.burst), bucket.tokens + refill)
                bucket.refilled = now
            if bucket.tokens >= 1.0 or bucket.report_id is None:
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return key, None
            self._count(bucket.report_id, self._wall_clock())
            return key, bucket.report_id

    def represent(self, key: RepeatKey | None, report_id: str) -> None:
        """``report_id`` (a full report of ``key``, queued) is the one its repeats count
        against from now on."""
        if key is None:
            return
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.report_id = report_id

    def _count(self, report_id: str, now: float) -> None:
        """One repeat of ``report_id`` at ``now`` (the caller holds the lock). One slot per
        report and clock hour: no process raises ``protocol.MAX_REPEATS`` (10^9) errors
        in an hour."""
        self.counted += 1
        slot = (report_id, int(now // _HOUR))
        entry = self._pending.get(slot)
        if entry is None:
            self._pending[slot] = [1, now, now]
        else:
            entry[0] += 1
            entry[2] = now

    def take_counts(self) -> list[RepeatCount]:
        """The pending counts, at most ``MAX_REPEAT_COUNTS``, taken off (oldest first)."""
        with self._lock:
            slots = list(self._pending)[:MAX_REPEAT_COUNTS]
            taken = [(slot[0], self._pending.pop(slot)) for slot in slots]
        return [
            RepeatCount(report_id=report_id, count=int(count), first=first, last=last)
            for report_id, (count, first, last) in taken
        ]

    def restore(self, counts: list[RepeatCount]) -> None:
        """Put counts back that could not be sent (they go with the next ``take_counts``)."""
        with self._lock:
            for entry in counts:
                slot = (entry.report_id, int(entry.first // _HOUR))
                found = self._pending.get(slot)
                if found is None:
                    self._pending[slot] = [entry.count, entry.first, entry.last]
                else:
                    found[0] += entry.count
                    found[1] = min(found[1], entry.first)
                    found[2] = max(found[2], entry.last)
