"""The bounded store of live frames that evals run in: random ids, count and memory caps, LRU.

Werkzeug keeps every frame it ever showed, keyed by ``id()``; this registry keeps the frames
of the ``max_reports`` most recently used reports under unguessable ids, and releases whole
reports, least recently used first, when the count or an approximate memory estimate
(shallow ``sys.getsizeof`` of each frame's locals) goes over its cap. Request threads add
frames while the I/O thread reads them, so every method takes the registry's lock.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["FrameRegistry", "HeldFrame", "estimate_frame_size"]

_FRAME_OVERHEAD = 512  # the frame object itself and its bookkeeping here, roughly
_ID_BYTES = 8
_RANDOM_POOL = 4096  # bytes of os.urandom read at once: one syscall per 512 frame ids
_MAX_RELEASED = 1024  # released report ids waiting to be told to the broker


def estimate_frame_size(frame: FrameType) -> int:
    """Approximate bytes a frame keeps alive: shallow sizes of its locals (guarded)."""
    size = _FRAME_OVERHEAD
    try:
        if frame.f_locals is frame.f_globals:  # a module frame: its globals live on anyway
            return size
        values = list(frame.f_locals.values())
    except Exception:
        return size
    for value in values:
        try:
            size += sys.getsizeof(value)
        except Exception:
            size += 64
    return size


def _locals_copy(frame: FrameType) -> dict[str, object] | None:
    """A shallow copy of the frame's locals (None for a module frame: its globals live on)."""
    try:
        if frame.f_locals is frame.f_globals:
            return None
        return dict(frame.f_locals)
    except Exception:
        return None


class HeldFrame:
    """A live frame held for evals, with the namespace its evals share (made on first use).

    ``snapshot`` is a copy of the frame's locals taken at capture, for hosts that clear a
    failed frame once they have handled it (Celery's ``traceback_clear``) or frames that run
    on after a handled error was reported: evals then see the locals as they were.
    """

    __slots__ = ("frame_id", "report_id", "frame", "size", "snapshot", "_namespace", "_lock")

    def __init__(
        self,
        frame_id: str,
        report_id: str,
        frame: FrameType,
        size: int,
        snapshot: dict[str, object] | None = None,
    ) -> None:
        self.frame_id = frame_id
        self.report_id = report_id
        self.frame = frame
        self.size = size
        self.snapshot = snapshot
        self._namespace: dict[str, object] | None = None
        self._lock = threading.Lock()

    @property
    def frame_locals(self) -> dict[str, object]:
        """The locals evals see: the snapshot taken at capture, else the frame's own now."""
        if self.snapshot is not None:
            return self.snapshot
        frame_locals = self.frame.f_locals
        return frame_locals if isinstance(frame_locals, dict) else dict(frame_locals)

    def get_namespace(
        self, setup: Callable[[dict[str, object]], None] | None = None
    ) -> dict[str, object]:
        """The eval namespace: a copy of the frame's globals updated with its locals.

        ``setup`` runs once, when the namespace is first made (it installs eval helpers).
        """
        with self._lock:
            if self._namespace is None:
                namespace: dict[str, object] = dict(self.frame.f_globals)
                namespace.update(self.frame_locals)
                if setup is not None:
                    setup(namespace)
                self._namespace = namespace
            return self._namespace

    @property
    def namespace(self) -> dict[str, object]:
        """The eval namespace, made on first use."""
        return self.get_namespace()


class _HeldReport:
    __slots__ = ("frame_ids", "size")

    def __init__(self) -> None:
        self.frame_ids: list[str] = []
        self.size = 0


class FrameRegistry:
    """Live frames grouped by report, bounded by report count and approximate memory."""

    def __init__(self, max_reports: int, max_bytes: int) -> None:
        self.max_reports = max_reports
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._frames: dict[str, HeldFrame] = {}
        self._reports: OrderedDict[str, _HeldReport] = OrderedDict()
        self._bytes = 0
        self.released_reports = 0
        self.last_used = 0.0  # ``time.monotonic()`` of the last ``get`` that found a frame
        # Ids of released reports the broker has not been told about yet (oldest dropped
        # first: a reconnect's hello lists what is still held, which corrects the broker).
        self._released: deque[str] = deque(maxlen=_MAX_RELEASED)
        self._random = b""  # unused os.urandom bytes, taken under the lock
        self._random_used = 0
        self._random_pid = 0

    def hold(self, report_id: str, frame: FrameType, snapshot: bool = False) -> str:
        """Hold ``frame`` for ``report_id`` and return its new random frame id.

        ``snapshot``: keep a copy of its locals as they are now (``HeldFrame.snapshot``).
        Older reports are released to make room; a frame that would take its report over
        ``max_bytes`` on its own is not held (``frame_id in registry`` tells).
        """
        return self.hold_many(report_id, [frame], snapshot)[0][0]

    def hold_many(
        self, report_id: str, frames: Sequence[FrameType], snapshot: bool = False
    ) -> list[tuple[str, bool]]:
        """``hold`` each of ``frames`` in order, under one lock: each frame's new id, and
        whether it is held (capture holds a traceback's frames at once, innermost first, so
        those are the ones kept when the report is too big)."""
        sized = [
            (frame, estimate_frame_size(frame), _locals_copy(frame) if snapshot else None)
            for frame in frames
        ]
        held: list[tuple[str, bool]] = []
        with self._lock:
            report = self._reports.get(report_id)
            for (frame, size, copy), frame_id in zip(sized, self._new_ids(len(sized)), strict=True):
                if (report.size if report else 0) + size > self.max_bytes:
                    held.append((frame_id, False))  # this report alone would not fit
                    continue
                if report is None:
                    report = self._reports[report_id] = _HeldReport()
                self._frames[frame_id] = HeldFrame(frame_id, report_id, frame, size, copy)
                report.frame_ids.append(frame_id)
                report.size += size
                self._bytes += size
                held.append((frame_id, True))
            if report is not None:
                self._reports.move_to_end(report_id)
                self._evict(keep=report_id)
        return held

    def _new_ids(self, count: int) -> list[str]:
        """``count`` random frame ids (each like ``secrets.token_hex(8)``); the caller holds
        the lock.

        Capture holds every frame of a traceback, so the random bytes come from a pool:
        one ``os.urandom`` call per few hundred ids instead of one per frame, and one slice
        and ``hex()`` for a whole traceback's ids.
        """
        width = _ID_BYTES * 2
        pid = os.getpid()  # a forked child must not reuse its parent's pool
        ids: list[str] = []
        while len(ids) < count:
            if self._random_used + _ID_BYTES > len(self._random) or pid != self._random_pid:
                self._random = os.urandom(_RANDOM_POOL)
                self._random_used = 0
                self._random_pid = pid
            start = self._random_used
            take = min(count - len(ids), (len(self._random) - start) // _ID_BYTES)
            self._random_used = start + take * _ID_BYTES
            text = self._random[start : self._random_used].hex()
            ids += [text[i : i + width] for i in range(0, len(text), width)]
        return ids

    def _evict(self, keep: str) -> None:
        """Release least recently used reports (never ``keep``) until within the caps."""
        while len(self._reports) > max(self.max_reports, 1) or self._bytes > self.max_bytes:
            oldest = next(iter(self._reports))
            if oldest == keep:  # the newest report is last, so it is the only one left
                return
            self._release_locked(oldest)

    def _release_locked(self, report_id: str) -> None:
        report = self._reports.pop(report_id, None)
        if report is None:
            return
        for frame_id in report.frame_ids:
            self._frames.pop(frame_id, None)
        self._bytes -= report.size
        self.released_reports += 1
        self._released.append(report_id)

    def get(self, frame_id: str) -> HeldFrame | None:
        """The held frame with this id (marking its report as recently used), or None."""
        with self._lock:
            held = self._frames.get(frame_id)
            if held is not None:
                self.last_used = time.monotonic()
                if held.report_id in self._reports:
                    self._reports.move_to_end(held.report_id)
            return held

    def release_report(self, report_id: str) -> None:
        """Drop every frame of a report, so the memory they keep alive can be freed."""
        with self._lock:
            self._release_locked(report_id)

    def let_go(self, report_id: str, frame_ids: Sequence[str]) -> None:
        """Drop these frames of a report that is still held (capture held more frames than
        its report could show); the report stays, with its other frames."""
        with self._lock:
            report = self._reports.get(report_id)
            if report is None:
                return
            for frame_id in frame_ids:
                held = self._frames.pop(frame_id, None)
                if held is None or held.report_id != report_id:
                    continue
                report.frame_ids.remove(frame_id)
                report.size -= held.size
                self._bytes -= held.size

    def take_released(self) -> tuple[str, ...]:
        """The ids of reports released since the last call (by LRU, cap or request)."""
        with self._lock:
            released = tuple(self._released)
            self._released.clear()
            return released

    @property
    def has_released(self) -> bool:
        """Whether some released report ids wait to be taken (cheap, no lock)."""
        return bool(self._released)

    def held_reports(self) -> tuple[str, ...]:
        """The ids of the reports whose frames are held, least recently used first."""
        with self._lock:
            return tuple(self._reports)

    @property
    def report_count(self) -> int:
        """How many reports have frames held."""
        with self._lock:
            return len(self._reports)

    @property
    def held_bytes(self) -> int:
        """The current memory estimate of all held frames."""
        with self._lock:
            return self._bytes

    def __contains__(self, frame_id: object) -> bool:
        with self._lock:
            return frame_id in self._frames

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)
