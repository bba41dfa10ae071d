"""Breakpoints set from the dashboard (agent/breakpoints.py): arming, refusing, hits, conditions.

On 3.12+ they run on ``sys.monitoring``, on 3.10 and 3.11 on a ``sys.settrace`` hook of the
threads that serve requests (here: the test's thread, hooked as a middleware hooks it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType

import pytest

from debugbroker.agent import breakpoints as breakpoints_module
from debugbroker.agent.breakpoints import Breakpoints, armed_code, trace_this_thread
from debugbroker.protocol import BreakpointSpec, BreakpointState, SetBreakpoints

SAMPLE = """\
import math

LIMIT = 3


def view(n):
    total = 0
    for i in range(n):
        total += i  # line 9
    # a comment: no code here
    return total + helper(n)


def helper(n):
    return n * 2  # line 15


def other(n):
    return n + 1  # line 19
"""


class Recorder:
    """Stands for the agent's pause: records each pause with the frame's locals."""

    def __init__(self) -> None:
        self.pauses: list[tuple[str, int, dict[str, object], str]] = []

    def __call__(self, frame: FrameType, origin: str) -> None:
        self.pauses.append((frame.f_code.co_name, frame.f_lineno, dict(frame.f_locals), origin))


@pytest.fixture
def sample(tmp_path: Path) -> Iterator[ModuleType]:
    path = tmp_path / "sample_views.py"
    path.write_text(SAMPLE, encoding="utf-8")
    old = time.time() - 60
    os.utime(path, (old, old))  # written before the agent "started"
    spec = importlib.util.spec_from_file_location("sample_views", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


@pytest.fixture
def recorder() -> Iterator[tuple[Breakpoints, Recorder]]:
    record = Recorder()
    points = Breakpoints(evalex=True, started=time.time(), pause=record)
    yield points, record
    points.clear()
    trace_this_thread()  # unhook this thread (3.10/3.11)
    assert sys.gettrace() is None


def arm(points: Breakpoints, *specs: BreakpointSpec) -> dict[str, BreakpointState]:
    points.apply(SetBreakpoints(breakpoints=specs))
    trace_this_thread()  # what the middlewares do per request on 3.10/3.11
    return {state.id: state for state in points.states()}


def spec(module: ModuleType, line: int, **fields: object) -> BreakpointSpec:
    return BreakpointSpec(id=f"b{line}", file=str(module.__file__), line=line, **fields)  # type: ignore[arg-type]


def test_a_hit_pauses_with_the_frame_and_its_locals(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    states = arm(points, spec(sample, 15))
    assert states["b15"].status == "armed", states
    assert states["b15"].warning == ""
    assert sample.view(2) == 5
    assert record.pauses == [("helper", 15, {"n": 2}, "breakpoint at sample_views.py:15")]
    assert points.states()[0].hits == 1
    assert points.take_states() is not None and points.take_states() is None


def test_hit_counts_alone_are_sent_at_most_once_a_second(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, _ = recorder
    arm(points, spec(sample, 15, hit_count=100))
    assert points.take_states() is not None  # the new list: at once
    sample.view(1)
    assert points.states()[0].hits == 1
    assert points.take_states() is None  # a count only: it waits
    arm(points, spec(sample, 15, hit_count=100, condition="1 / 0"))
    assert points.take_states() is not None  # a new list again: at once
    sample.view(1)
    states = points.take_states()  # a new status (the condition's error): at once
    assert states is not None and states.states[0].status == "error"


def test_code_without_a_breakpoint_is_not_monitored(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    arm(points, spec(sample, 15))
    armed = armed_code()
    assert armed == {sample.helper.__code__}
    assert sample.other(1) == 2
    assert record.pauses == []


def test_a_condition_is_evaluated_in_the_frame(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    arm(points, spec(sample, 9, condition="i == 2 and total == 1"))
    sample.view(4)
    assert [(line, local["i"]) for _, line, local, _ in record.pauses] == [(9, 2)]


def test_the_hit_count_pauses_from_the_nth_hit_on(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    arm(points, spec(sample, 9, hit_count=3))
    sample.view(5)
    assert [local["i"] for _, _, local, _ in record.pauses] == [2, 3, 4]
    assert points.states()[0].hits == 5


def test_a_condition_that_raises_does_not_pause_and_says_why(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    arm(points, spec(sample, 15, condition="1 / 0"))
    assert sample.view(1) == 2
    assert record.pauses == []
    state = points.states()[0]
    assert state.status == "error"
    assert "ZeroDivisionError" in state.reason


def test_a_condition_that_loops_forever_is_stopped_and_switched_off(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    arm(points, spec(sample, 15, condition="all(True for _ in iter(int, 1))"))
    started = time.monotonic()
    assert sample.view(1) == 2  # the app's code goes on, with the right answer
    assert time.monotonic() - started < breakpoints_module.CONDITION_SECONDS + 3
    state = points.states()[0]
    assert state.status == "refused" and "ran over" in state.reason, state
    started = time.monotonic()
    assert sample.view(1) == 2  # switched off: no second wait
    assert time.monotonic() - started < breakpoints_module.CONDITION_SECONDS
    assert record.pauses == []


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (10, "no code on line 10"),  # a comment
        (5, "no code on line 5"),  # a blank line
        (3, "runs only when its module or class is first run"),  # module level
        (500, "no code on line 500"),
        (0, "no line 0"),
    ],
)
def test_a_line_that_cannot_stop_is_refused_with_the_reason(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder], line: int, why: str
) -> None:
    points, _ = recorder
    state = arm(points, spec(sample, line))[f"b{line}"]
    assert state.status == "refused"
    assert why in state.reason


def test_own_code_console_code_and_bad_conditions_are_refused(
    recorder: tuple[Breakpoints, Recorder],
) -> None:
    points, _ = recorder
    own = BreakpointSpec(id="own", file=breakpoints_module.__file__, line=120)
    console = BreakpointSpec(id="console", file="<console>", line=1)
    bad = BreakpointSpec(id="bad", file=__file__, line=30, condition="x ==")
    states = arm(points, own, console, bad)
    assert states["own"].status == "refused" and "inside debugbroker" in states["own"].reason
    assert states["console"].status == "refused"
    assert "without a file" in states["console"].reason
    assert states["bad"].status == "refused" and "not an expression" in states["bad"].reason
    assert armed_code() == frozenset()


def test_evalex_false_refuses_every_breakpoint(sample: ModuleType) -> None:
    record = Recorder()
    points = Breakpoints(evalex=False, started=time.time(), pause=record)
    state = arm(points, spec(sample, 15))["b15"]
    assert state.status == "refused" and "evalex=False" in state.reason
    sample.view(1)
    assert record.pauses == [] and armed_code() == frozenset()


def test_disabled_and_removed_breakpoints_do_not_pause(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    assert arm(points, spec(sample, 15, enabled=False))["b15"].status == "disabled"
    sample.view(1)
    arm(points, spec(sample, 15))
    arm(points)  # the broker's list is empty now
    sample.view(1)
    assert record.pauses == []
    assert armed_code() == frozenset()


def test_a_file_changed_on_disk_arms_with_a_warning(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    path = Path(str(sample.__file__))
    path.write_text("# a new first line\n" + SAMPLE, encoding="utf-8")
    state = arm(points, spec(sample, 15))["b15"]
    assert state.status == "armed"
    assert "changed on disk" in state.warning
    sample.view(1)
    assert [line for _, line, _, _ in record.pauses] == [15]  # the loaded code's line 15


def test_a_file_loaded_later_is_pending_then_armed(
    tmp_path: Path, recorder: tuple[Breakpoints, Recorder]
) -> None:
    points, record = recorder
    path = tmp_path / "later_views.py"
    path.write_text(SAMPLE, encoding="utf-8")
    pending = BreakpointSpec(id="later", file=str(path), line=15)
    state = arm(points, pending)["later"]
    assert state.status == "pending" and "not loaded" in state.reason
    module_spec = importlib.util.spec_from_file_location("later_views", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    points.tick(time.monotonic() + 60)
    trace_this_thread()
    assert points.states()[0].status == "armed"
    module.helper(4)
    assert [(name, line) for name, line, _, _ in record.pauses] == [("helper", 15)]


@pytest.mark.skipif(breakpoints_module.USES_MONITORING, reason="3.10/3.11: the settrace hook")
def test_threads_started_while_armed_are_traced_unless_they_are_the_agents(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    """On 3.11 a traced thread loops at its next call while an interrupt waits on a thread
    blocked in C: the agent's own threads (the timers that answer "still blocked") must not
    carry the hook that threading.settrace gives every new thread."""
    import threading

    points, record = recorder
    arm(points, spec(sample, 15))
    hooks: dict[str, object] = {}

    def look() -> None:
        sample.other(1)  # a first call: the start hook has replaced itself
        hooks[threading.current_thread().name] = sys.gettrace()

    for name in ("debugbroker-timers", "app-worker"):
        thread = threading.Thread(target=look, name=name)
        thread.start()
        thread.join(10)
    assert hooks["debugbroker-timers"] is None
    assert hooks["app-worker"] is not None
    assert record.pauses == []


def test_a_hit_on_an_agent_thread_never_pauses(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    import threading

    points, record = recorder
    arm(points, spec(sample, 15))
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(sample.helper(1)), name="debugbroker-x")
    thread.start()
    thread.join(10)
    assert done == [2] and record.pauses == []


def test_a_step_that_stops_on_a_breakpoints_line_pauses_there_once(
    sample: ModuleType, recorder: tuple[Breakpoints, Recorder]
) -> None:
    """As pdb: a step onto a line that holds a breakpoint stops there once, and Continue runs
    on (on 3.12+ the step's trace function sees the line before sys.monitoring does); the
    line still pauses the next time it runs."""
    from debugbroker.agent.stepping import Stepper
    from debugbroker.protocol import Step, StepAction

    points, _ = recorder
    stops: list[tuple[int, str]] = []

    def on_stop(frame: FrameType, taken: StepAction) -> Step | None:
        stops.append((frame.f_lineno, f"step {taken}"))
        return None  # Continue

    def pause(frame: FrameType, origin: str) -> None:
        stops.append((frame.f_lineno, origin))
        if frame.f_lineno == 7:  # step over from the first breakpoint, as the dashboard does
            Stepper(on_stop).start(frame, Step(report_id="r", action="over"))

    points.pause = pause
    arm(points, spec(sample, 7), spec(sample, 8))
    assert sample.view(1) == 2
    assert stops == [
        (7, "breakpoint at sample_views.py:7"),
        (8, "step over"),  # the step's stop, not the breakpoint's too
        (8, "breakpoint at sample_views.py:8"),  # the loop's next turn
    ]
