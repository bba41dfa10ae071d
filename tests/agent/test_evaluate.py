"""Eval in held frames: persistence, echo and ``_``, captured output, errors, refusals."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import werkzeug.test

from debugbroker import protocol
from debugbroker.agent.evals import evaluate
from debugbroker.agent.evals.evaluate import (
    CONSOLE_DISABLED,
    EVALEX_DISABLED,
    interrupt,
    register_context_source,
    run_complete,
    run_eval,
)
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.interrupts import MAX_STUCK, running_evals, stuck_evals
from debugbroker.agent.evals.lookup import answer_expand
from debugbroker.agent.evals.loops import paused_thread
from debugbroker.agent.options import Options
from debugbroker.protocol import (
    CONSOLE_FRAME_ID,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    InterruptRequest,
    InterruptResult,
    format_node,
)
from tests.conftest import DEADLINE, wait_for

OPTIONS = Options()
MODULE_CONSTANT = "module level"


class Order:
    """A thing with attributes, for dump(obj)."""

    def __init__(self) -> None:
        self.quantity = 3
        self.price = 2.5


def checkout(items: list[int]) -> None:
    order = Order()  # noqa: F841
    total = sum(items)
    raise ValueError(f"bad total {total}")


@pytest.fixture
def frame() -> tuple[FrameRegistry, str]:
    """A registry holding the innermost frame of a real raised exception."""
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    try:
        checkout([1, 2, 3])
    except ValueError as error:
        tb = error.__traceback__
        assert tb is not None and tb.tb_next is not None
        return registry, registry.hold("report", tb.tb_next.tb_frame)
    raise AssertionError("did not raise")


def run(held: tuple[FrameRegistry, str], code: str, options: Options = OPTIONS) -> EvalResult:
    registry, frame_id = held
    result = run_eval(registry, EvalRequest(request_id="q1", frame_id=frame_id, code=code), options)
    assert result.request_id == "q1"
    return result


def test_expression_sees_locals_and_globals(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "total * 2")
    assert result.ok and result.result is not None
    assert (result.result.kind, result.result.text) == ("number", "12")
    assert run(frame, "MODULE_CONSTANT").result.text == "'module level'"  # type: ignore[union-attr]
    items = run(frame, "items").result
    assert items is not None and items.kind == "list" and len(items.children) == 3


def test_namespace_persists_and_underscore(frame: tuple[FrameRegistry, str]) -> None:
    assert run(frame, "extra = total + 1") == EvalResult(request_id="q1", ok=True)
    assert run(frame, "extra").result.text == "7"  # type: ignore[union-attr]
    assert run(frame, "_ + 1").result.text == "8"  # type: ignore[union-attr]
    assert run(frame, "None").result is None
    assert run(frame, "_").result.text == "8"  # type: ignore[union-attr]
    statements = run(frame, "a = 2\nb = a * 5\nb + 1")
    assert statements.result is not None and statements.result.text == "11"
    function = run(frame, "def double(x):\n    return x * 2\n")
    assert function.ok and function.result is None
    assert run(frame, "double(extra)").result.text == "14"  # type: ignore[union-attr]


def test_output_is_captured_and_streams_restored(frame: tuple[FrameRegistry, str]) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    result = run(frame, "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n42")
    assert result.output == "hello\noops\n"
    assert result.result is not None and result.result.text == "42"
    assert sys.stdout is stdout and sys.stderr is stderr


def test_other_threads_output_is_not_captured(
    frame: tuple[FrameRegistry, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stop = threading.Event()

    def noisy() -> None:
        while not stop.is_set():
            print("noise")
            time.sleep(0.001)

    thread = threading.Thread(target=noisy)
    thread.start()
    try:
        result = run(
            frame, "import time\nfor i in range(20):\n    print('signal')\n    time.sleep(0.002)"
        )
    finally:
        stop.set()
        thread.join()
    assert result.ok
    assert result.output == "signal\n" * 20
    printed = capsys.readouterr().out
    assert "noise" in printed and "signal" not in printed


def test_exceptions_show_the_users_traceback_only(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "print('before')\nitems[10]")
    assert not result.ok and result.output == "before\n"
    assert result.error is not None
    assert result.error.startswith("Traceback (most recent call last):\n")
    assert "IndexError: list index out of range" in result.error
    assert "items[10]" in result.error  # the eval's own source is shown
    assert "evaluate.py" not in result.error
    nested = run(frame, "def inner():\n    return 1 / 0\ninner()")
    assert nested.error is not None and "in inner" in nested.error
    assert "ZeroDivisionError" in nested.error
    exit_result = run(frame, "raise SystemExit(3)")
    assert not exit_result.ok and "SystemExit: 3" in (exit_result.error or "")


def test_syntax_errors_look_like_the_repl(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "1 +")
    assert not result.ok and result.error is not None
    assert result.error.splitlines()[-1] == "SyntaxError: invalid syntax"
    assert "    1 +" in result.error
    assert "Traceback" not in result.error


def test_result_is_a_safe_repr(frame: tuple[FrameRegistry, str]) -> None:
    code = "class Bad:\n    def __repr__(self):\n        raise ValueError('no')\nBad()"
    result = run(frame, code)
    assert result.ok and result.result is not None and result.result.kind == "broken"


def test_dump_and_help(frame: tuple[FrameRegistry, str]) -> None:
    dumped = run(frame, "dump()")
    assert dumped.ok
    assert "items = [1, 2, 3]" in dumped.output and "total = 6" in dumped.output
    details = run(frame, "dump(order)")
    assert "quantity = 3" in details.output and "price = 2.5" in details.output
    helped = run(frame, "help(Order)")
    assert "A thing with attributes, for dump(obj)." in helped.output
    assert "\b" not in helped.output
    no_keyboard = run(frame, "input('name? ')")
    assert no_keyboard.error is not None and no_keyboard.error.endswith(
        "EOFError: input() has no standard input in the debugbroker console\n"
    )


def test_evalex_false_refuses(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "total", Options(evalex=False))
    assert result == EvalResult(
        request_id="q1", ok=False, error=EVALEX_DISABLED, reason=protocol.DISABLED
    )
    nothing = run(frame, "1 + 1").reason  # code that ran (or raised) has no failure reason
    assert nothing is None and run(frame, "1/0").reason is None


def test_released_frame(frame: tuple[FrameRegistry, str]) -> None:
    registry, _ = frame
    registry.release_report("report")
    result = run(frame, "total")
    assert not result.ok and result.error is not None and result.reason == protocol.RELEASED
    assert result.error.startswith("frame released: the agent no longer holds this frame")
    assert "4 most recent reports" in result.error
    unknown = run_eval(registry, EvalRequest(request_id="q1", frame_id="nope", code="1"), OPTIONS)
    assert unknown.error == result.error


# --- console semantics ----------------------------------------------------------------------


def interactive(held: tuple[FrameRegistry, str], code: str) -> EvalResult:
    registry, frame_id = held
    request = EvalRequest(request_id="q1", frame_id=frame_id, code=code, interactive=True)
    return run_eval(registry, request, OPTIONS)


def chunks(result: EvalResult) -> list[tuple[str, str]]:
    return [(c.stream, c.text if c.value is None else format_node(c.value)) for c in result.chunks]


def test_incomplete_input_asks_for_more_lines(frame: tuple[FrameRegistry, str]) -> None:
    for code in (
        "for i in range(3):",
        "for i in range(3):\n    i",
        "@staticmethod",
        "def f():\n    return (1,",
        "with open('x') as f:",
        "x = [\n1,",
        "if total:\n    1\nelse:",
        "'''open",
    ):
        result = interactive(frame, code)
        assert result == EvalResult(request_id="q1", ok=True, incomplete=True), code
    assert run(frame, "marker = 1\nfor i in range(3):").incomplete
    assert run(frame, "marker").error is not None  # nothing of an incomplete input ran
    # An empty line ends the block, as in the interpreter; the loop echoes every value.
    done = interactive(frame, "for i in range(3):\n    i * 10\n")
    assert done.ok and not done.incomplete
    assert chunks(done) == [("result", "0"), ("result", "10"), ("result", "20")]
    # Without the REPL rule (API scripts), a finished block runs at once.
    assert run(frame, "for i in range(2):\n    print(i)").output == "0\n1\n"
    assert interactive(frame, "1 +").error is not None


def test_echo_rules_and_order_of_output(frame: tuple[FrameRegistry, str]) -> None:
    code = (
        "import sys\nprint('a')\n1\nprint('b', file=sys.stderr)\nNone\n"
        "def f():\n    5\n    return 6\nclass C:\n    7\nf()\n"
    )
    result = run(frame, code)
    assert result.ok, result.error
    assert chunks(result) == [
        ("stdout", "a\n"),
        ("result", "1"),
        ("stderr", "b\n"),
        ("result", "6"),
    ]
    assert result.output == "a\nb\n"
    assert result.result is not None and result.result.text == "6"
    assert run(frame, "_").result.text == "6"  # type: ignore[union-attr]
    # Only the running eval's own echo function is there; earlier ones were removed.
    hidden = run(frame, "[n for n in dir() if n.startswith('__debugbroker')]").result
    assert hidden is not None and len(hidden.children) == 1


def test_tracebacks_hide_the_console_machinery(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "def g():\n    raise KeyError('k')\n\ng()")
    assert result.error is not None
    assert result.error.startswith("Traceback (most recent call last):\n")
    assert "evaluate.py" not in result.error and "console.py" not in result.error
    assert "    raise KeyError('k')" in result.error and result.error.endswith("KeyError: 'k'\n")


def test_completion_of_names_and_attributes(frame: tuple[FrameRegistry, str]) -> None:
    registry, frame_id = frame

    def complete(text: str) -> CompleteResult:
        return run_complete(
            registry, CompleteRequest(request_id="c", frame_id=frame_id, text=text), OPTIONS
        )

    names = complete("x = tot")
    assert names.ok and names.replace == 3 and "total" in names.matches
    attributes = complete("print(order.qu")
    assert attributes.matches == ("order.quantity",) and attributes.replace == len("order.qu")
    assert any(m.startswith("order.__init__(") for m in complete("order.__in").matches)
    assert "print(" in complete("pri").matches  # builtins, callables with "("
    run(frame, "my_new_name = 1")
    assert complete("my_n").matches == ("my_new_name",)
    assert complete("").matches == () and complete("1.").matches == ()
    assert not any("__debugbroker" in m for m in complete("__").matches)
    gone = run_complete(
        registry, CompleteRequest(request_id="c", frame_id="nope", text="a"), OPTIONS
    )
    assert not gone.ok and gone.error is not None and gone.error.startswith("frame released")
    assert gone.reason == protocol.RELEASED


def start_eval(
    held: tuple[FrameRegistry, str], code: str, options: Options = OPTIONS
) -> tuple[threading.Thread, list[EvalResult]]:
    registry, frame_id = held
    answers: list[EvalResult] = []
    request = EvalRequest(request_id="q1", frame_id=frame_id, code=code)
    thread = threading.Thread(target=lambda: answers.append(run_eval(registry, request, options)))
    thread.start()
    return thread, answers


def test_interrupt_stops_an_endless_loop_and_the_frame_still_works(
    frame: tuple[FrameRegistry, str],
) -> None:
    registry, frame_id = frame
    thread, answers = start_eval(frame, "n = 0\nwhile True:\n    n += 1")
    # Other evals, in this frame too, keep answering while the loop runs.
    wait_for(lambda: run(frame, "n").ok, what="the loop to start")
    assert run(frame, "total").result.text == "6"  # type: ignore[union-attr]
    count = wait_for(
        lambda: interrupt(InterruptRequest(request_id="i", frame_id=frame_id)).interrupted,
        what="an interrupt to land",
    )
    assert count == 1
    thread.join(DEADLINE)
    assert answers and not answers[0].ok and answers[0].error is not None
    assert "KeyboardInterrupt" in answers[0].error
    assert "interrupted from the dashboard" in answers[0].error
    assert "evaluate.py" not in answers[0].error
    assert run(frame, "n > 0").result.text == "True"  # type: ignore[union-attr]
    nothing = interrupt(InterruptRequest(request_id="i", frame_id=frame_id))
    assert nothing == InterruptResult(request_id="i", interrupted=0)


def test_time_limit_interrupts_long_evals(frame: tuple[FrameRegistry, str]) -> None:
    limited = Options(eval_timeout_seconds=0.3)
    result = run(frame, "print('started')\nwhile True:\n    pass", limited)
    assert not result.ok and result.output == "started\n"
    assert (
        result.error is not None and "stopped after the time limit of 0.3 seconds" in result.error
    )
    assert run(frame, "total", limited).result.text == "6"  # type: ignore[union-attr]


def test_a_blocking_call_is_answered_and_stopped_when_it_returns(
    frame: tuple[FrameRegistry, str],
) -> None:
    limited = Options(eval_timeout_seconds=0.2)
    code = "import threading\nblocker = threading.Event()\nblocker.wait()\nafter = 1"
    result = run(frame, code, limited)
    assert not result.ok and result.error is not None
    assert "blocked in a call that cannot be interrupted" in result.error
    assert run(frame, "blocker.is_set()").result.text == "False"  # type: ignore[union-attr]
    run(frame, "blocker.set()")
    # Released, the thread gets the repeated interrupt before its next line.
    wait_for(lambda: not running_evals(frame[1]), what="the blocked eval to stop")
    assert stuck_evals() == 0
    assert run(frame, "'after' in dir()").result.text == "False"  # type: ignore[union-attr]


def test_top_level_await_on_a_fresh_loop(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "import asyncio\nawait asyncio.sleep(0)\nprint('hi')\ntotal + 1")
    assert result.ok, result.error
    assert chunks(result) == [("stdout", "hi\n"), ("result", "7")]


def test_a_coroutine_typed_alone_is_shown_not_awaited(frame: tuple[FrameRegistry, str]) -> None:
    assert run(frame, "async def five():\n    return 5\nc = five()").ok
    shown = run(frame, "c")
    assert shown.ok and shown.result is not None and "coroutine" in shown.result.text
    assert run(frame, "await c").result.text == "5"  # type: ignore[union-attr]


def uvloop_loop() -> asyncio.AbstractEventLoop:
    uvloop = pytest.importorskip("uvloop")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop_loop], ids=["asyncio", "uvloop"]
)
def test_top_level_await_runs_on_the_apps_running_loop(
    frame: tuple[FrameRegistry, str], new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    loop = new_loop()
    app_thread = threading.Thread(target=loop.run_forever, name="app-loop")
    app_thread.start()
    wait_for(loop.is_running, what="the app's loop to run")
    try:
        code = (
            "import asyncio, threading\nawait asyncio.sleep(0)\nprint('from the loop')\n"
            "(threading.current_thread().name, asyncio.get_running_loop() is app_loop)"
        )
        registry, frame_id = frame
        held = registry.get(frame_id)
        assert held is not None
        held.namespace["app_loop"] = loop
        result = run(frame, code)
        assert result.ok, result.error
        assert chunks(result) == [("stdout", "from the loop\n"), ("result", "('app-loop', True)")]
        failing = run(frame, "await asyncio.sleep(0)\n1 / 0")
        assert failing.error is not None and "ZeroDivisionError" in failing.error
        assert "1 / 0" in failing.error and "evaluate.py" not in failing.error
        # An endless await on the app's loop is cancelled by the interrupt.
        thread, answers = start_eval(frame, "await asyncio.sleep(3600)")
        wait_for(
            lambda: interrupt(InterruptRequest(request_id="i", frame_id=frame_id)).interrupted,
            what="the interrupt",
        )
        thread.join(DEADLINE)
        assert answers and answers[0].error and "KeyboardInterrupt" in answers[0].error

        async def other_tasks() -> int:
            return len(asyncio.all_tasks()) - 1

        def cancelled() -> bool:
            return asyncio.run_coroutine_threadsafe(other_tasks(), loop).result(DEADLINE) == 0

        wait_for(cancelled, what="the awaited task to be cancelled on the app's loop")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        app_thread.join(DEADLINE)
        loop.close()


async def _async_checkout(items: list[int]) -> None:
    basket = list(items)
    await asyncio.sleep(0)
    _sync_helper(basket)


def _sync_helper(basket: list[int]) -> None:
    raise LookupError(f"{len(basket)} items and no price")


@pytest.fixture
def app_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread named ``app-loop``, as a server's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="app-loop")
    thread.start()
    wait_for(loop.is_running, what="the app's loop to run")
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(DEADLINE)
    loop.close()


def _held_async_frames(
    loop: asyncio.AbstractEventLoop,
) -> tuple[FrameRegistry, dict[str, str]]:
    """The frames of an error raised in a task on ``loop``: the coroutine's and the sync
    helper it called, held by function name."""
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    future = asyncio.run_coroutine_threadsafe(_async_checkout([1, 2]), loop)
    with pytest.raises(LookupError) as caught:
        future.result(DEADLINE)
    held: dict[str, str] = {}
    tb = caught.value.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in ("_async_checkout", "_sync_helper"):
            held[name] = registry.hold("report", tb.tb_frame)
        tb = tb.tb_next
    assert set(held) == {"_async_checkout", "_sync_helper"}
    return registry, held


def test_every_line_of_an_async_frame_runs_on_the_apps_loop(
    frame: tuple[FrameRegistry, str], app_loop: asyncio.AbstractEventLoop
) -> None:
    """The documented rule (docs/frameworks.md): a frame that ran on the loop evaluates on it."""
    registry, held = _held_async_frames(app_loop)
    where = (
        "import asyncio, threading\n"
        "(threading.current_thread().name, asyncio.get_running_loop() is app_loop)"
    )
    for name in ("_async_checkout", "_sync_helper"):  # a coroutine, and a function it called
        target = (registry, held[name])
        registry.get(held[name]).namespace["app_loop"] = app_loop  # type: ignore[union-attr]
        result = run(target, where)
        assert result.ok, result.error
        assert chunks(result) == [("result", "('app-loop', True)")], name
        assert chunks(run(target, "basket")) == [("result", "[1, 2]")]
        printed = run(target, "print('on the loop')\nawait asyncio.sleep(0, result=len(basket))")
        assert chunks(printed) == [("stdout", "on the loop\n"), ("result", "2")]
    # A frame that did not run on a loop still evaluates on the eval thread.
    off = run(frame, "import asyncio\nasyncio.get_running_loop()")
    assert not off.ok and off.error is not None and "no running event loop" in off.error

    target = (registry, held["_sync_helper"])
    failing = run(target, "1 / 0")
    assert failing.error is not None and "ZeroDivisionError" in failing.error
    assert "1 / 0" in failing.error and "evaluate.py" not in failing.error
    # SystemExit and an interrupt end the line, never the app's loop.
    assert "SystemExit" in (run(target, "raise SystemExit(3)").error or "")
    # n is bound before the loop starts: the interrupt may land on the line's first bytecode.
    assert run(target, "n = 0").ok
    thread, answers = start_eval(target, "while True:\n    n += 1")
    wait_for(
        lambda: (
            interrupt(InterruptRequest(request_id="i", frame_id=held["_sync_helper"])).interrupted
        ),
        what="the interrupt to land on the loop's thread",
    )
    thread.join(DEADLINE)
    assert answers and answers[0].error and "KeyboardInterrupt" in answers[0].error
    assert app_loop.is_running()

    async def alive() -> str:
        return "still serving"

    assert asyncio.run_coroutine_threadsafe(alive(), app_loop).result(DEADLINE) == "still serving"
    after = run(target, "n >= 0")  # the frame's state outlived the interrupted line
    assert after.result is not None and after.result.text == "True", after.error


def test_a_line_for_a_loop_paused_by_the_agent_runs_off_it(
    app_loop: asyncio.AbstractEventLoop,
) -> None:
    """While breakpoint() holds the loop's thread, a line there could never run: it runs on
    the eval thread instead, as before."""
    registry, held = _held_async_frames(app_loop)
    release = threading.Event()
    entered = threading.Event()

    def hold_the_loop() -> None:
        with paused_thread():
            entered.set()
            release.wait(DEADLINE)

    app_loop.call_soon_threadsafe(hold_the_loop)
    try:
        assert entered.wait(DEADLINE)
        result = run(
            (registry, held["_async_checkout"]), "import threading\nthreading.current_thread().name"
        )
        assert result.ok, result.error
        assert result.result is not None and result.result.text != "'app-loop'"
    finally:
        release.set()


class ContextSource:
    """Stands in for the middleware: contexts preserved per report id."""

    def __init__(self, contexts: tuple[object, ...]) -> None:
        self.contexts = contexts

    def preserved_contexts(self, report_id: str) -> tuple[object, ...]:
        return self.contexts if report_id == "report" else ()


def test_evals_run_inside_a_real_flask_request_context() -> None:
    import flask

    app = flask.Flask("shop")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/orders/<int:number>")
    def order(number: int) -> str:
        raise LookupError(number)

    preserved: list[object] = []
    environ = werkzeug.test.EnvironBuilder("/orders/7").get_environ()
    environ["werkzeug.debug.preserve_context"] = preserved.append
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    with pytest.raises(LookupError) as caught:
        app.wsgi_app(environ, lambda *args: lambda data: None)
    tb = caught.value.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_name != "order":
        tb = tb.tb_next
    assert tb is not None and len(preserved) == 2
    frame_id = registry.hold("report", tb.tb_frame)
    source = ContextSource(tuple(preserved))
    register_context_source(source.preserved_contexts)
    result = run(
        (registry, frame_id),
        "from flask import request, current_app\n(request.path, current_app.name, number)",
    )
    assert result.ok, result.error
    assert result.result is not None and format_node(result.result) == "('/orders/7', 'shop', 7)"
    assert not flask.has_request_context()  # popped again, and only in the eval's thread
    del source  # a collected source is forgotten (weak reference)


def test_process_console(frame: tuple[FrameRegistry, str]) -> None:
    registry, _ = frame
    request = EvalRequest(request_id="q1", frame_id=CONSOLE_FRAME_ID, code="import os\nos.getpid()")
    refused = run_eval(registry, request, OPTIONS)
    assert refused.error == CONSOLE_DISABLED and refused.reason == protocol.DISABLED
    console = Options(console=True)
    result = run_eval(registry, request, console)
    assert result.ok and result.result is not None and result.result.text == str(os.getpid())
    again = EvalRequest(request_id="q1", frame_id=CONSOLE_FRAME_ID, code="dump()")
    assert "os = <module 'os'" in run_eval(registry, again, console).output


def test_stuck_evals_are_capped(frame: tuple[FrameRegistry, str]) -> None:
    limited = Options(eval_timeout_seconds=0.1)
    run(frame, "import threading\ngate = threading.Event()")
    for _ in range(MAX_STUCK):
        stuck = run(frame, "gate.wait()", limited)
        assert stuck.error is not None and "cannot be interrupted" in stuck.error
    refused = run(frame, "1 + 1", limited)
    assert refused.error is not None
    assert refused.error.startswith(f"{MAX_STUCK} evals are still blocked")
    assert refused.reason == protocol.BUSY and stuck.reason is None  # the stuck one ran
    gate = frame[0].get(frame[1])
    assert gate is not None
    event = gate.namespace["gate"]
    assert isinstance(event, threading.Event)
    event.set()  # from here: the stuck threads return, get their interrupt and end
    wait_for(lambda: stuck_evals() == 0, what="the stuck evals to end")
    assert run(frame, "1 + 1", limited).result.text == "2"  # type: ignore[union-attr]


class SlowAttributes:
    """An object whose attribute lookup hangs: completion must not hang with it."""

    def __dir__(self) -> list[str]:
        time.sleep(5)
        return []


def test_completion_is_bounded_in_time(frame: tuple[FrameRegistry, str]) -> None:
    registry, frame_id = frame
    held = registry.get(frame_id)
    assert held is not None
    held.namespace["slow"] = SlowAttributes()
    request = CompleteRequest(request_id="c", frame_id=frame_id, text="slow.x")
    answer = run_complete(registry, request, OPTIONS)
    assert answer == CompleteResult(
        request_id="c", ok=False, error="completion took too long", reason=protocol.TIMEOUT
    )


def test_a_cut_result_can_be_expanded_while_the_frame_is_held(
    frame: tuple[FrameRegistry, str],
) -> None:
    registry, frame_id = frame
    result = run(frame, "numbers = list(range(130))\nnumbers\nitems")
    long, short = (chunk.value for chunk in result.chunks)
    assert long is not None and short is not None
    assert len(long.children) == evaluate.RESULT_ITEMS  # a result's limit, not a local's
    assert long.omitted == 130 - len(long.children) and long.more is not None
    assert short.more is None  # nothing cut: nothing kept
    request = ExpandRequest(
        request_id="e", frame_id=frame_id, handle=long.more, offset=len(long.children)
    )
    page = answer_expand(registry, request, OPTIONS)
    assert page.ok and page.node is not None
    assert [child.text for child in page.node.children][:2] == ["100", "101"]
    run(frame, "numbers.clear()")  # the handle names the object shown: changed, it shows so
    kept = answer_expand(registry, request, OPTIONS)
    assert kept.node is not None and kept.node.children == ()
    for _ in range(evaluate.KEPT_RESULTS):  # only the last results stay alive
        run(frame, "list(range(130))")
    gone = answer_expand(registry, request, OPTIONS)
    assert not gone.ok and gone.error is not None


def test_printed_output_results_and_errors_are_masked_by_value(
    frame: tuple[FrameRegistry, str],
) -> None:
    code = (
        "import sys\n"
        "dsn = 'postgres://u:' + 'DB' + 'PASS@h/db'\n"
        "print(dsn)\n"
        "print('token=' + 'T0', end='')\n"
        "print('K and more')\n"  # a secret written in two pieces
        "print('api_key=' + 'ERR', file=sys.stderr)\n"
        "{'password': 'hun' + 'ter2', b'pin': 1234}\n"
    )
    result = run(frame, code)
    assert result.ok, result.error
    assert (
        result.output == "postgres://u:<masked>@h/db\ntoken=<masked> and more\napi_key=<masked>\n"
    )
    assert result.result is not None
    assert format_node(result.result) == (
        "{'password': '********************', b'pin': '********************'}"
    )
    failed = run(frame, "raise ValueError('bad token=' + 'T0K')")
    assert not failed.ok and failed.error is not None
    # The exception's line is masked; the console input's source line is shown as typed.
    assert "ValueError: bad token=<masked>\n" in failed.error
    assert "raise ValueError('bad token=' + 'T0K')" in failed.error


@pytest.mark.parametrize(
    "code", ["-" * 90_000 + "1", "+".join(["1"] * 40_000)], ids=["unary", "sum"]
)
def test_input_too_deep_for_the_parser_is_answered_plainly(
    frame: tuple[FrameRegistry, str], code: str
) -> None:
    result = run(frame, code)
    assert not result.ok and result.error is not None
    assert "nested too deeply for Python's parser" in result.error
    assert run(frame, "total").result.text == "6"  # type: ignore[union-attr]
