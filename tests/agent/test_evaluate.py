"""Eval in held frames: persistence, echo and ``_``, captured output, errors, refusals."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from debugbroker.agent.evaluate import EVALEX_DISABLED, run_eval
from debugbroker.agent.frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.protocol import EvalRequest, EvalResult

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


def test_evalex_false_refuses(frame: tuple[FrameRegistry, str]) -> None:
    result = run(frame, "total", Options(evalex=False))
    assert result == EvalResult(request_id="q1", ok=False, error=EVALEX_DISABLED)


def test_released_frame(frame: tuple[FrameRegistry, str]) -> None:
    registry, _ = frame
    registry.release_report("report")
    result = run(frame, "total")
    assert not result.ok and result.error is not None
    assert result.error.startswith("frame released: the agent no longer holds this frame")
    assert "4 most recent reports" in result.error
    unknown = run_eval(registry, EvalRequest(request_id="q1", frame_id="nope", code="1"), OPTIONS)
    assert unknown.error == result.error
