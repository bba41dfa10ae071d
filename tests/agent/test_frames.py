"""The frame registry: random ids, LRU by report, count and memory caps, thread safety."""

from __future__ import annotations

import gc
import re
import threading
import weakref
from types import FrameType

from debugbroker.agent.evals.held_frames import FrameRegistry


class Payload:
    """Something a frame's locals keep alive, observable through a weak reference."""

    def __init__(self, size: int = 0) -> None:
        self.data = b"x" * size


def failing(payload: Payload) -> None:
    blob = payload.data  # noqa: F841 - a local the frame keeps alive
    raise ValueError("boom")


def dead_frame(payload: Payload | None = None) -> FrameType:
    """The innermost frame of a real raised exception, after the exception is gone."""
    try:
        failing(payload or Payload())
    except ValueError as error:
        tb = error.__traceback__
        assert tb is not None and tb.tb_next is not None
        return tb.tb_next.tb_frame
    raise AssertionError("did not raise")


def test_hold_and_get() -> None:
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    frame = dead_frame()
    frame_id = registry.hold("r1", frame)
    assert re.fullmatch(r"[0-9a-f]{16}", frame_id)
    assert frame_id != str(id(frame))
    held = registry.get(frame_id)
    assert held is not None
    assert held.frame is frame and held.report_id == "r1" and held.frame_id == frame_id
    assert len(registry) == 1 and frame_id in registry
    assert registry.held_reports() == ("r1",)
    assert registry.get("0000000000000000") is None


def test_namespace_is_lazy_and_made_once() -> None:
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    held = registry.get(registry.hold("r1", dead_frame()))
    assert held is not None
    calls: list[int] = []
    namespace = held.get_namespace(lambda ns: calls.append(1))
    assert isinstance(namespace["payload"], Payload)
    assert namespace["Payload"] is Payload  # globals are there too
    assert held.get_namespace(lambda ns: calls.append(1)) is namespace
    assert held.namespace is namespace
    assert calls == [1]


def test_least_recently_used_report_is_released() -> None:
    registry = FrameRegistry(max_reports=2, max_bytes=10**8)
    first = registry.hold("r1", dead_frame())
    registry.hold("r1", dead_frame())
    second = registry.hold("r2", dead_frame())
    assert registry.get(first) is not None  # r1 becomes the most recently used
    registry.hold("r3", dead_frame())
    assert registry.held_reports() == ("r1", "r3")
    assert registry.get(second) is None
    assert len(registry) == 3
    assert registry.released_reports == 1


def test_memory_cap_releases_old_reports() -> None:
    registry = FrameRegistry(max_reports=100, max_bytes=250_000)
    old = registry.hold("r1", dead_frame(Payload(100_000)))
    registry.hold("r2", dead_frame(Payload(100_000)))
    assert len(registry) == 2
    registry.hold("r3", dead_frame(Payload(100_000)))
    assert old not in registry
    assert registry.held_reports() == ("r2", "r3")
    assert registry.held_bytes <= 250_000


def test_a_frame_too_big_alone_is_not_held() -> None:
    registry = FrameRegistry(max_reports=100, max_bytes=50_000)
    kept = registry.hold("r1", dead_frame(Payload(1_000)))
    frame_id = registry.hold("r2", dead_frame(Payload(100_000)))
    assert frame_id not in registry and registry.get(frame_id) is None
    assert registry.held_reports() == ("r1",)  # nothing was released for it
    assert kept in registry and len(registry) == 1


def test_release_frees_memory() -> None:
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    payload = Payload()
    alive = weakref.ref(payload)
    registry.hold("r1", dead_frame(payload))
    del payload
    gc.collect()
    assert alive() is not None  # the held frame keeps its locals alive
    registry.release_report("r1")
    gc.collect()
    assert alive() is None
    assert len(registry) == 0 and registry.held_reports() == ()
    registry.release_report("unknown")  # harmless


def test_threads_hold_and_get_concurrently() -> None:
    registry = FrameRegistry(max_reports=5, max_bytes=10**8)
    frame = dead_frame()
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def add(worker: int) -> None:
        try:
            for i in range(200):
                frame_id = registry.hold(f"w{worker}-{i // 3}", frame)
                with lock:
                    ids.append(frame_id)
        except BaseException as error:
            errors.append(error)

    def read() -> None:
        try:
            for _ in range(2000):
                with lock:
                    some = ids[-10:]
                for frame_id in some:
                    registry.get(frame_id)
                len(registry)
                registry.held_reports()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == len(ids) == 1200
    assert len(registry.held_reports()) == 5
    assert 5 <= len(registry) <= 15
    held = [frame_id for frame_id in ids if frame_id in registry]
    assert len(held) == len(registry)


def test_a_traceback_is_held_at_once_innermost_first_within_the_cap() -> None:
    registry = FrameRegistry(max_reports=100, max_bytes=250_000)
    frames = [dead_frame(Payload(100_000)) for _ in range(3)]  # innermost first
    held = registry.hold_many("r1", frames)
    assert [kept for _, kept in held] == [True, True, False]  # the third would not fit
    ids = [frame_id for frame_id, _ in held]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert ids[2] not in registry and registry.held_bytes <= 250_000
    assert [registry.get(i).frame for i in ids[:2]] == frames[:2]  # type: ignore[union-attr]


def test_frame_ids_stay_unique_across_the_random_pool() -> None:
    registry = FrameRegistry(max_reports=10, max_bytes=10**9)
    frame = dead_frame()
    ids = [frame_id for frame_id, _ in registry.hold_many("r1", [frame] * 700)]  # > one pool
    ids += [frame_id for frame_id, _ in registry.hold_many("r2", [frame] * 300)]
    assert len(set(ids)) == 1000 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert len(registry) == 1000


def test_frames_a_report_leaves_out_are_let_go() -> None:
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    payload = Payload()
    alive = weakref.ref(payload)
    (kept, _), (dropped, _) = registry.hold_many("r1", [dead_frame(), dead_frame(payload)])
    size = registry.held_bytes
    del payload
    registry.let_go("r1", [dropped])
    gc.collect()
    assert alive() is None and dropped not in registry
    assert kept in registry and registry.held_reports() == ("r1",)
    assert registry.held_bytes < size
    registry.let_go("r1", [dropped, "0000000000000000"])  # harmless
    registry.let_go("unknown", [kept])
    assert kept in registry
