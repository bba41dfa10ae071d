"""The stepper (agent/stepping.py): where over, into, out and until stop, on this thread only."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from debugbroker.agent.stepping import Stepper, is_own_code
from debugbroker.protocol import Step, StepAction


def helper(value: int) -> int:
    doubled = value * 2
    return doubled + 1


def numbers() -> Iterator[int]:
    yield 1
    middle = 2
    yield middle


class Script:
    """Takes the steps it is given, one per stop, recording where each stop was."""

    def __init__(self, *steps: Step | None) -> None:
        self.steps = list(steps)
        self.stops: list[tuple[str, int, StepAction]] = []

    def on_stop(self, frame: FrameType, action: StepAction) -> Step | None:
        self.stops.append((frame.f_code.co_name, frame.f_lineno, action))
        return self.steps.pop(0) if self.steps else None


def line_of(function: object, text: str) -> int:
    """The line number of the first line of ``function``'s source containing ``text``."""
    import inspect

    lines, start = inspect.getsourcelines(function)  # type: ignore[arg-type]
    return start + next(i for i, line in enumerate(lines) if text in line)


def step(action: StepAction, line: int = 0) -> Step:
    return Step(report_id="r", action=action, line=line)


def run_view(script: Script, first: Step) -> int:
    """A view that pauses (as ``breakpoint()`` would) and then runs on, stepped."""

    def view() -> int:
        stepper = Stepper(script.on_stop)
        stepper.start(sys._getframe(), first)  # paused here
        total = 1
        total += helper(total)
        total += 10
        return total

    result = view()
    assert sys.gettrace() is None  # nothing stays traced after the last stop
    return result


def test_step_over_stops_at_each_next_line_of_the_frame_not_in_callees() -> None:
    script = Script(step("over"), step("over"), None)
    assert run_view(script, step("over")) == 14
    names = [(name, action) for name, _, action in script.stops]
    assert names == [("view", "over")] * 3
    lines = [line for _, line, _ in script.stops]
    assert lines[1] == lines[0] + 1 and lines[2] == lines[1] + 1


def test_step_into_stops_in_the_helper_and_out_returns_to_the_caller() -> None:
    script = Script(step("over"), step("into"), step("into"), step("out"), None)
    assert run_view(script, step("over")) == 14
    assert [name for name, _, _ in script.stops] == ["view", "view", "helper", "helper", "view"]
    assert script.stops[2][1] == line_of(helper, "doubled = value * 2")
    assert script.stops[3][1] == line_of(helper, "return doubled + 1")
    assert script.stops[4][2] == "out"  # back in the view, the line after the call
    assert script.stops[4][1] == script.stops[1][1] + 1


def test_step_over_the_last_line_stops_in_the_caller() -> None:
    def caller() -> int:
        stepper = Stepper(script.on_stop)
        result = inner(stepper)
        result += 1
        return result

    def inner(stepper: Stepper) -> int:
        stepper.start(sys._getframe(), step("over"))
        return 5

    script = Script(step("over"), None)
    assert caller() == 6
    assert [name for name, _, _ in script.stops] == ["inner", "caller"]
    assert script.stops[1][1] == line_of(caller, "result += 1")


def test_run_to_a_line_skips_the_lines_before_it() -> None:
    def view() -> int:
        stepper = Stepper(script.on_stop)
        stepper.start(sys._getframe(), step("until", target))
        total = 0
        for number in range(5):
            total += number
        return total

    target = line_of(view, "return total")
    script = Script(None)
    assert view() == 10
    assert script.stops == [("view", target, "until")]


def test_step_over_a_yield_waits_for_the_generator_to_resume_as_pdb_does() -> None:
    seen: list[int] = []

    def generator() -> Iterator[int]:
        stepper = Stepper(script.on_stop)
        stepper.start(sys._getframe(), step("over"))
        yield 1  # over this: the consumer's loop body runs untraced, then the next line here
        after = 2
        yield after

    script = Script(step("over"), step("over"), None)
    for value in generator():
        seen.append(value)
    assert seen == [1, 2]
    names = [name for name, _, _ in script.stops]
    assert names == ["generator", "generator", "generator"]
    assert script.stops[1][1] == line_of(generator, "after = 2")


def test_step_over_an_await_stops_at_the_next_line_of_the_same_coroutine() -> None:
    async def view() -> int:
        stepper = Stepper(script.on_stop)
        stepper.start(sys._getframe(), step("over"))
        await asyncio.sleep(0)  # other tasks run meanwhile, untraced
        value = 3
        return value

    async def other() -> None:
        others.append(1)

    async def main() -> int:
        result, _ = await asyncio.gather(view(), other())
        return result

    others: list[int] = []
    script = Script(step("over"), None)
    assert asyncio.run(main()) == 3
    assert others == [1]
    assert [name for name, _, _ in script.stops] == ["view", "view"]
    assert script.stops[1][1] == line_of(view, "value = 3")


def test_an_exception_out_of_the_frame_stops_in_the_caller_handler() -> None:
    def failing() -> None:
        stepper = Stepper(script.on_stop)
        stepper.start(sys._getframe(), step("over"))
        raise ValueError("no")

    def caller() -> str:
        try:
            failing()
        except ValueError:
            handled = "yes"
        return handled

    script = Script(step("over"), None)
    assert caller() == "yes"
    assert [name for name, _, _ in script.stops] == ["failing", "caller"]
    assert script.stops[1][1] == line_of(caller, "except ValueError")


def test_only_the_stepping_thread_is_traced() -> None:
    ready, done = threading.Event(), threading.Event()
    other_stops: list[str] = []

    def busy() -> None:
        ready.set()
        while not done.is_set():
            helper(1)
        other_stops.append("ran")

    thread = threading.Thread(target=busy)
    thread.start()
    ready.wait(5)
    script = Script(step("into"), step("into"), None)
    try:
        run_view(script, step("over"))
    finally:
        done.set()
        thread.join(5)
    assert other_stops == ["ran"]
    assert all(name in ("view", "helper") for name, _, _ in script.stops)


def test_the_agents_own_code_is_never_a_stop() -> None:
    assert is_own_code(Stepper.start.__code__)
    assert is_own_code(compile("1", "<console>", "eval"))
    assert not is_own_code(helper.__code__)


def test_a_failing_stop_handler_ends_stepping_and_the_code_runs_on() -> None:
    def broken(frame: FrameType, action: StepAction) -> Step | None:
        raise RuntimeError("boom")

    def view() -> int:
        Stepper(broken).start(sys._getframe(), step("over"))
        value = 4
        return value

    assert view() == 4
    assert sys.gettrace() is None


EVAL_THEN_TRACE = """
import sys
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.evals.evaluate import run_eval
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.protocol import EvalRequest

def failing():
    local = 41
    raise ValueError(local)

registry, options = FrameRegistry(10, 10**8), Options()
try:
    failing()
except ValueError as error:
    report = build_report(error, report_id="r", agent_id="a", options=options, registry=registry)
frame_id = report.exceptions[-1].frames[-1].frame_id
request = EvalRequest(request_id="q", frame_id=frame_id, code="local + 1")
result = run_eval(registry, request, options)
assert result.ok, result

def traced():
    return 1

def trace(frame, event, arg):
    return trace

sys.settrace(trace)
traced()
sys.settrace(None)
print("traced call returned")
"""


def test_a_traced_call_after_an_eval_returns() -> None:
    # Dropping a pending interrupt must not leave the eval breaker set: on 3.11 the next
    # traced call (a step, pdb) then looped forever at its first instruction.
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", EVAL_THEN_TRACE], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "traced call returned" in done.stdout
