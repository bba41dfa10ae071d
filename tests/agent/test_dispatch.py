"""The eval dispatcher: on the calling thread, a bounded number at once, one answer each."""

from __future__ import annotations

import queue
import threading

from debugbroker.agent.evals.dispatch import MAX_EVALS, EvalDispatcher
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.interrupts import running_evals, stuck_evals
from debugbroker.agent.options import Options
from debugbroker.protocol import (
    EvalRequest,
    EvalResult,
    InterruptRequest,
    InterruptResult,
    Message,
)
from tests.conftest import DEADLINE, wait_for


def eval_answer(answers: queue.Queue[Message]) -> EvalResult:
    answer = answers.get(timeout=DEADLINE)
    assert isinstance(answer, EvalResult)
    return answer


def held_gate(registry: FrameRegistry, gate: threading.Event) -> str:
    """Hold a real frame whose locals have ``gate``; its frame id."""
    try:
        raise ValueError(gate)
    except ValueError as error:
        assert error.__traceback__ is not None
        return registry.hold("report", error.__traceback__.tb_frame)


def handle_on_a_thread(dispatcher: EvalDispatcher, request: EvalRequest) -> threading.Thread:
    """``handle`` runs the request on the calling thread (the I/O thread, which hands its loop
    over when it runs long): one thread each, as after such handovers."""
    thread = threading.Thread(target=dispatcher.handle, args=(request,), daemon=True)
    thread.start()
    return thread


def test_evals_past_the_limit_are_refused_at_once_and_each_is_answered_once() -> None:
    answers: queue.Queue[Message] = queue.Queue()
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    dispatcher = EvalDispatcher(registry, Options(eval_timeout_seconds=0), answers.put)
    gate = threading.Event()
    frame_id = held_gate(registry, gate)

    def ask(request_id: str, code: str) -> None:
        dispatcher.handle(EvalRequest(request_id=request_id, frame_id=frame_id, code=code))

    running = []
    try:
        for number in range(MAX_EVALS):  # no time limit: they wait for the gate
            request = EvalRequest(request_id=f"e{number}", frame_id=frame_id, code="gate.wait()")
            running.append(handle_on_a_thread(dispatcher, request))
        assert wait_for(lambda: running_evals(frame_id) == MAX_EVALS, what="every slot taken")
        ask("over", "1")
        refused = answers.get(timeout=DEADLINE)
        assert isinstance(refused, EvalResult) and refused.request_id == "over"
        assert refused.error is not None and f"already running {MAX_EVALS} evals" in refused.error
        dispatcher.handle(InterruptRequest(request_id="i", frame_id="no such frame"))
        assert answers.get(timeout=DEADLINE) == InterruptResult(request_id="i", interrupted=0)
    finally:
        gate.set()
    done = sorted(eval_answer(answers).request_id for _ in range(MAX_EVALS))
    for thread in running:
        thread.join(DEADLINE)
    assert done == sorted(f"e{number}" for number in range(MAX_EVALS))
    ask("after", "2")  # every slot is free again
    after = answers.get(timeout=DEADLINE)
    assert isinstance(after, EvalResult) and after.ok and after.request_id == "after"
    assert answers.empty()  # one answer each


def test_a_stuck_eval_is_answered_and_frees_its_slot() -> None:
    answers: queue.Queue[Message] = queue.Queue()
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    dispatcher = EvalDispatcher(registry, Options(eval_timeout_seconds=0.1), answers.put)
    gate = threading.Event()
    frame_id = held_gate(registry, gate)
    try:
        handle_on_a_thread(
            dispatcher, EvalRequest(request_id="stuck", frame_id=frame_id, code="gate.wait()")
        )
        stuck = answers.get(timeout=DEADLINE)  # from the timer: the thread still waits
        assert isinstance(stuck, EvalResult) and stuck.request_id == "stuck"
        assert stuck.error is not None and "cannot be interrupted" in stuck.error
        dispatcher.handle(EvalRequest(request_id="next", frame_id=frame_id, code="1 + 1"))
        following = answers.get(timeout=DEADLINE)
        assert isinstance(following, EvalResult) and following.ok
    finally:
        gate.set()
    assert wait_for(lambda: stuck_evals() == 0, what="the stuck eval to end")
    assert answers.empty()  # its thread ended, and answered nobody a second time
