"""Capture: chains and groups in CPython's print order, frames, columns, caps, hostile values."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.capture.hiding import is_library_file
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.protocol import ExceptionInfo, FrameInfo, Report, ReportMessage
from tests.agent.compat import ExceptionGroup, add_note, has_columns

OPTIONS = Options()


def caught(function: Callable[[], object]) -> BaseException:
    try:
        function()
    except BaseException as error:
        return error
    raise AssertionError("did not raise")


def capture(exc: BaseException, registry: FrameRegistry | None = None, **kw: Any) -> Report:
    options = kw.pop("options", OPTIONS)
    return build_report(
        exc, report_id="rep", agent_id="agent", options=options, registry=registry, **kw
    )


def all_frames(exceptions: tuple[ExceptionInfo, ...]) -> list[FrameInfo]:
    found: list[FrameInfo] = []
    for info in exceptions:
        found.extend(info.frames)
        found.extend(all_frames(info.exceptions))
    return found


# --- sample programs ----------------------------------------------------------------------


def parse_amount(text: str) -> int:
    password = "hunter2"  # noqa: F841 - a local that must be masked
    amount = int(text)
    return amount


def view_with_cause() -> None:
    try:
        parse_amount("abc")
    except ValueError as error:
        raise RuntimeError("could not parse") from error


def view_with_context() -> None:
    try:
        dict[str, int]()["missing"]
    except KeyError:
        raise TypeError("while handling")  # noqa: B904 - the implicit context is the point


def view_suppressed() -> None:
    try:
        dict[str, int]()["missing"]
    except KeyError:
        raise TypeError("clean") from None


def hidden_helper() -> None:
    __traceback_hide__ = True  # noqa: F841
    raise LookupError("hidden")


def call_hidden_helper() -> None:
    __traceback_hide__ = True  # noqa: F841
    parse_amount("not a number")


def recurse(n: int) -> None:
    if n == 0:
        raise ZeroDivisionError("bottom")
    recurse(n - 1)


# --- chains -------------------------------------------------------------------------------


def test_cause_chain_in_print_order() -> None:
    exc = caught(view_with_cause)
    report = capture(exc)
    assert [e.type_name for e in report.exceptions] == ["ValueError", "RuntimeError"]
    assert [e.chain for e in report.exceptions] == [None, "cause"]
    assert report.type_name == "RuntimeError" and report.message == "could not parse"
    assert report.text == "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    root = report.exceptions[0]
    assert root.module == "builtins"
    assert "invalid literal" in root.message
    assert [f.function for f in root.frames] == ["view_with_cause", "parse_amount"]


def test_context_and_suppressed_context() -> None:
    report = capture(caught(view_with_context))
    assert [(e.type_name, e.chain) for e in report.exceptions] == [
        ("KeyError", None),
        ("TypeError", "context"),
    ]
    suppressed = capture(caught(view_suppressed))
    assert [(e.type_name, e.chain) for e in suppressed.exceptions] == [("TypeError", None)]


def test_cycles_end() -> None:
    first, second = ValueError("first"), KeyError("second")
    first.__context__ = second
    second.__context__ = first
    report = capture(first)
    assert [e.type_name for e in report.exceptions] == ["KeyError", "ValueError"]
    assert report.text == "".join(traceback.format_exception(first))


# --- frames -------------------------------------------------------------------------------


def test_frame_details_and_registry() -> None:
    registry = FrameRegistry(max_reports=4, max_bytes=10**8)
    exc = caught(view_with_cause)
    report = capture(exc, registry)
    frames = all_frames(report.exceptions)
    assert [f.index for f in frames] == list(range(len(frames)))
    inner = report.exceptions[0].frames[-1]
    assert inner.filename == __file__ and inner.module == __name__
    assert inner.function == "parse_amount"
    assert inner.context[inner.lineno - inner.context_start].strip() == "amount = int(text)"
    assert len(inner.context) == 2 * OPTIONS.context_lines + 1
    assert not inner.is_library and not inner.hidden
    names = {v.name: v.value.text for v in inner.locals}
    assert names == {"text": "'abc'", "password": "'********************'"}
    assert inner.frame_id is not None
    held = registry.get(inner.frame_id)
    assert held is not None and held.frame.f_code.co_name == "parse_amount"
    # The same live frame, seen by two exceptions of the chain, is held once.
    outer_ids = {f.frame_id for f in frames if f.function == "view_with_cause"}
    assert len(outer_ids) == 1 and len(registry) == 3  # with caught()'s frame


@pytest.mark.skipif(not has_columns, reason="Python 3.10 code objects have no column positions")
def test_columns_point_at_the_failing_expression() -> None:
    report = capture(caught(view_with_cause))
    inner = report.exceptions[0].frames[-1]
    assert inner.colno is not None and inner.end_colno is not None
    assert inner.end_lineno == inner.lineno
    line = inner.context[inner.lineno - inner.context_start]
    assert line[inner.colno : inner.end_colno] == "int(text)"
    assert report.exceptions[0].frames[0].function == "view_with_cause"


def test_qualname_library_and_hidden() -> None:
    class Service:
        def run(self) -> None:
            json.loads("{not json")

    report = capture(caught(Service().run))
    frames = report.exceptions[-1].frames
    if sys.version_info >= (3, 11):
        assert frames[1].function.endswith("Service.run")
    else:  # 3.10 code objects have no co_qualname: the plain name, as its tracebacks show
        assert frames[1].function == "run"
    assert frames[-1].is_library and "json" in frames[-1].filename
    assert not frames[1].is_library
    assert is_library_file(json.__file__) and not is_library_file(__file__)
    assert is_library_file("/srv/venv/lib/python3.11/site-packages/x.py")
    frames = capture(caught(call_hidden_helper)).exceptions[-1].frames
    assert [f.function for f in frames if f.hidden] == ["call_hidden_helper"]
    # The error happened in the hidden frame itself: Paste then shows everything.
    innermost = capture(caught(hidden_helper)).exceptions[-1].frames[-1]
    assert not innermost.hidden


def test_frames_are_capped_keeping_the_innermost() -> None:
    report = capture(caught(lambda: recurse(50)), options=Options(max_frames=5))
    frames = report.exceptions[-1].frames
    assert len(frames) == 5
    assert frames[-1].function == "recurse"
    assert frames[-1].context[frames[-1].lineno - frames[-1].context_start].strip() == (
        'raise ZeroDivisionError("bottom")'
    )


def test_recursion_error_is_bounded() -> None:
    def forever(n: int) -> int:
        return forever(n + 1) + 1

    exc = caught(lambda: forever(0))
    started = time.monotonic()
    report = capture(exc, FrameRegistry(4, 10**8))
    assert time.monotonic() - started < 2
    assert len(report.exceptions[-1].frames) == OPTIONS.max_frames
    assert report.text == "".join(traceback.format_exception(exc))
    assert len(protocol.encode(ReportMessage(report=report))) < protocol.MAX_MESSAGE_BYTES


# --- groups and notes ---------------------------------------------------------------------


def test_nested_exception_group() -> None:
    def group() -> None:
        errors: list[Exception] = []
        for fn in (view_with_cause, lambda: parse_amount("x")):
            try:
                fn()
            except Exception as error:
                errors.append(error)
        try:
            raise ExceptionGroup("inner", [KeyError("k")])
        except Exception as inner:
            errors.append(inner)
        raise ExceptionGroup("outer", errors)

    exc = caught(group)
    report = capture(exc)
    assert report.text == "".join(traceback.format_exception(exc))
    [outer] = report.exceptions
    assert outer.type_name == "ExceptionGroup" and outer.message.startswith("outer")
    members = [(e.type_name, e.chain) for e in outer.exceptions]
    assert members == [
        ("ValueError", None),  # sub-exception 1: its cause first...
        ("RuntimeError", "cause"),  # ...then itself
        ("ValueError", None),  # sub-exception 2
        ("ExceptionGroup", None),  # sub-exception 3, a group
    ]
    [key_error] = outer.exceptions[-1].exceptions
    assert key_error.type_name == "KeyError" and key_error.frames == ()
    frames = all_frames(report.exceptions)
    assert [f.index for f in frames] == list(range(len(frames)))


def test_notes() -> None:
    def noted() -> None:
        error = ValueError("with notes")
        add_note(error, "first note")
        add_note(error, "second note")
        raise error

    exc = caught(noted)
    report = capture(exc)
    assert report.exceptions[-1].notes == ("first note", "second note")
    assert report.text == "".join(traceback.format_exception(exc))
    assert "second note" in report.text


# --- hostile values -----------------------------------------------------------------------


class SlowRepr:
    def __repr__(self) -> str:
        time.sleep(0.01)
        return "slow"


class HugeRepr:
    def __repr__(self) -> str:
        return "y" * 2_000_000


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    @property
    def __notes__(self) -> list[str]:
        raise RuntimeError("no notes")


def hostile_frame(depth: int) -> None:
    huge = HugeRepr()  # noqa: F841
    bad = BadRepr()  # noqa: F841
    slow = [SlowRepr() for _ in range(8)]  # noqa: F841
    loop: list[object] = []
    loop.append(loop)
    nested: list[object] = []
    for _ in range(500):
        nested = [nested]
    if depth:
        hostile_frame(depth - 1)
    raise BadStrError()


def test_hostile_locals_are_fast_and_bounded() -> None:
    exc = caught(lambda: hostile_frame(30))
    started = time.monotonic()
    report = capture(exc, FrameRegistry(4, 10**8))
    elapsed = time.monotonic() - started
    assert elapsed < 3
    frame = report.exceptions[-1].frames[-1]
    values = {v.name: v.value for v in frame.locals}
    assert values["bad"].kind == "broken"
    assert len(values["huge"].text) <= OPTIONS.repr_text + 3
    assert values["nested"].text == "<skipped: time budget>"  # slow used up the frame's time
    assert report.message == "<exception str() failed>"  # CPython's wording
    if sys.version_info >= (3, 13):  # 3.13 shows why the notes could not be read
        assert report.exceptions[-1].notes == (
            "Ignored error getting __notes__: RuntimeError('no notes')",
        )
        assert report.text == "".join(traceback.format_exception(exc))
    else:  # before 3.13 format_exception itself fails: no notes
        assert report.exceptions[-1].notes == ()
    payload = protocol.encode(ReportMessage(report=report))
    assert len(payload) < 2 * 1024 * 1024
    assert protocol.decode(payload) == ReportMessage(report=report)


def test_huge_message_is_cut() -> None:
    exc = caught(lambda: (_ for _ in ()).throw(ValueError("z" * 3_000_000)))
    report = capture(exc)
    assert len(report.exceptions[-1].message) <= 8_192
    assert len(report.text) < 1_100_000
    assert len(protocol.encode(ReportMessage(report=report))) < protocol.MAX_MESSAGE_BYTES


def test_exception_without_traceback() -> None:
    report = capture(ValueError("never raised"))
    assert report.exceptions[-1].frames == ()
    assert report.text == "ValueError: never raised\n"


def test_report_round_trip() -> None:
    request = protocol.RequestInfo(method="GET", url="http://x/y", headers=(("a", "b"),))
    report = capture(caught(view_with_cause), FrameRegistry(4, 10**8), request=request, app="shop")
    assert report.id == "rep" and report.agent_id == "agent" and report.app == "shop"
    assert report.pid > 0 and report.request == request
    message = ReportMessage(report=report)
    assert protocol.decode(protocol.encode(message)) == message


def test_source_context_follows_the_file_when_linecache_reads_it_again(tmp_path: Any) -> None:
    import importlib.util
    import linecache
    import os

    path = tmp_path / "context_module.py"
    path.write_text("# one\n# two\ndef fail():\n    raise KeyError('old')  # old line\n")
    os.utime(path, (1_000_000, 1_000_000))
    spec = importlib.util.spec_from_file_location("context_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def context() -> tuple[str, ...]:
        return capture(caught(module.fail)).exceptions[-1].frames[-1].context

    first = context()
    assert any("# old line" in line for line in first)
    assert context() == first  # the same lines: the same context (remembered)
    path.write_text("# one\n# two\ndef fail():\n    raise KeyError('old')  # new line\n")
    os.utime(path, (2_000_000, 2_000_000))
    linecache.checkcache(str(path))  # what a traceback print does: the new lines are read
    assert any("# new line" in line for line in context())


def connect_with_token(secrets: dict[str, str]) -> None:
    dsn = f"postgres://app:{secrets['db']}@db/app"  # a local the report masks by value
    try:
        raise KeyError(f"first api_key={secrets['key']}")
    except KeyError as error:
        refused = ConnectionError(f"refused token={secrets['token']} for {dsn}")
        add_note(refused, f"retry with password={secrets['password']}")
        raise refused from error


def test_messages_notes_and_their_lines_in_the_text_are_masked_by_value() -> None:
    # Made at run time: the source lines in the text hold only the expressions.
    secrets = {
        "db": "PASS" + "WORD",
        "key": "K3" + "Y",
        "token": "T0" + "K",
        "password": "hun" + "ter2",
    }
    report = capture(caught(lambda: connect_with_token(secrets)))
    for secret in secrets.values():
        assert secret not in report.text, secret
        assert secret not in repr(report), secret  # every field of the report
    assert report.message == "refused token=<masked> for postgres://app:<masked>@db/app"
    first, raised = report.exceptions
    assert first.message == "'first api_key=<masked>'"
    if raised.notes:  # notes print from 3.11 (or with the backport)
        assert raised.notes == ("retry with password=<masked>",)
        assert "retry with password=<masked>\n" in report.text
    assert f"ConnectionError: {report.message}\n" in report.text
    assert "KeyError: 'first api_key=<masked>'\n" in report.text
    # The stack's source lines are the file as it is.
    assert "raise KeyError(f\"first api_key={secrets['key']}\")" in report.text
    dsn = next(v for f in raised.frames for v in f.locals if v.name == "dsn")
    assert dsn.value.text == "'postgres://app:<masked>@db/app'"
