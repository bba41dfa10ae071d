"""Text parity: a report's ``text`` is ``format_exception`` and its structure agrees with it.

The structure is compared with ``traceback.TracebackException`` walked the way ``format``
prints it: the same exceptions in the same order, with the same types, messages, notes, frame
lists and links. Random exception structures (chains, cycles, shared exceptions, groups,
notes, odd unicode) come from hypothesis. The fixed cases (some ported from CPython's
``Lib/test/test_traceback.py``) also go through a real broker on each capture path: a
report submitted directly, the WSGI middleware, a dying thread and a dying main program
(``install_excepthook``, in a child process).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import threading
import traceback
import types
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from debugbroker.agent.capture import chain
from debugbroker.agent.capture.exceptions import MAX_EXCEPTIONS, build_report
from debugbroker.agent.capture.plain_text import MAX_TEXT
from debugbroker.agent.hooks import install_excepthook, uninstall_excepthook
from debugbroker.agent.middleware import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import ExceptionInfo, Report
from tests.agent.compat import ExceptionGroup, add_note
from tests.conftest import Broker, wait_for

OPTIONS = Options()


def capture(exc: BaseException) -> Report:
    return build_report(exc, report_id="r", agent_id="a", options=OPTIONS, registry=None)


def expected_text(exc: BaseException) -> str:
    """What CPython prints, as the report must carry it (lone surrogates escaped for UTF-8)."""
    text = "".join(traceback.format_exception(exc))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- the shape CPython prints, and the shape of a report ------------------------------------


def cpython_notes(notes: object) -> list[str]:
    if notes is None:
        return []
    # Since 3.12 a str or bytes is one note, shown by its repr, not a sequence of notes.
    if isinstance(notes, Sequence) and not (
        sys.version_info >= (3, 12) and isinstance(notes, (str, bytes))
    ):
        out = []
        for note in notes:
            try:
                out.append(str(note))
            except Exception:
                out.append("<note str() failed>")
        return out
    return [repr(notes)]


def escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def te_shape(te: traceback.TracebackException, depth: int = 0) -> list[dict[str, Any]]:
    """``te``'s chain as ``TracebackException.format`` prints it (root cause first)."""
    found: list[tuple[traceback.TracebackException, str | None]] = []
    current: traceback.TracebackException | None = te
    while current is not None:
        if current.__cause__ is not None:
            following, link = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            following, link = current.__context__, "context"
        else:
            following, link = None, None
        found.append((current, link))
        current = following
    found.reverse()
    out = []
    for position, (entry, link) in enumerate(found):
        members = getattr(entry, "exceptions", None)
        with warnings.catch_warnings():  # 3.13 deprecates exc_type (for exc_type_str)
            warnings.simplefilter("ignore", DeprecationWarning)
            exc_type = entry.exc_type
        assert exc_type is not None
        shape: dict[str, Any] = {
            "type": exc_type.__qualname__,
            "module": exc_type.__module__,
            # The message as CPython formats it: TracebackException has no public name for it.
            "message": escaped(entry._str),  # type: ignore[attr-defined]  # noqa: SLF001
            "notes": [escaped(note) for note in cpython_notes(entry.__notes__)],  # type: ignore[attr-defined]
            "link": None if position == 0 else link,
            "frames": [(f.filename, f.lineno, f.name) for f in entry.stack],
            "members": [],
            "omitted": 0,
        }
        if members is not None:
            if depth > chain.MAX_GROUP_DEPTH:
                shape["frames"] = []
                shape["omitted"] = len(members)
            else:
                inner = max(depth, 1) + 1
                shape["members"] = [te_shape(m, inner) for m in members[: chain.MAX_GROUP_WIDTH]]
                shape["omitted"] = max(0, len(members) - chain.MAX_GROUP_WIDTH)
        out.append(shape)
    return out


def split_members(infos: Sequence[ExceptionInfo]) -> list[list[ExceptionInfo]]:
    """A group's flat ``exceptions`` as one chain per sub-exception."""
    chains: list[list[ExceptionInfo]] = []
    for info in infos:
        if info.chain is None or not chains:
            chains.append([])
        chains[-1].append(info)
    return chains


def info_shape(infos: Sequence[ExceptionInfo]) -> list[dict[str, Any]]:
    return [
        {
            "type": info.type_name,
            "module": info.module,
            "message": info.message,
            "notes": list(info.notes),
            "link": info.chain,
            "frames": [(f.filename, f.lineno, f.function.rsplit(".", 1)[-1]) for f in info.frames],
            "members": [info_shape(member) for member in split_members(info.exceptions)],
            "omitted": info.omitted,
        }
        for info in infos
    ]


def within_caps(shape: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A top-level chain as a report keeps it (docs/limits.md): the last ``MAX_EXCEPTIONS``
    exceptions, the innermost ``max_frames`` frames of each."""
    kept = [dict(entry) for entry in shape[-MAX_EXCEPTIONS:]]
    for entry in kept:
        entry["frames"] = entry["frames"][-OPTIONS.max_frames :]
    kept[0]["link"] = None
    return kept


def assert_parity(exc: BaseException) -> Report:
    report = capture(exc)
    assert report.text == expected_text(exc)
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    assert info_shape(report.exceptions) == within_caps(te_shape(te))
    return report


# --- fixed cases ----------------------------------------------------------------------------


def raised(exc: BaseException, depth: int = 1) -> BaseException:
    """``exc`` after being raised through ``depth`` nested calls (so it has real frames)."""

    def level(n: int) -> None:
        if n <= 0:
            raise exc
        level(n - 1)

    try:
        level(depth)
    except BaseException as error:
        return error
    raise AssertionError("unreachable")


def plain() -> BaseException:
    return raised(ValueError("plain message"), 3)


def chained_cause() -> BaseException:
    try:
        int("abc")
    except ValueError as error:
        try:
            raise RuntimeError("could not parse") from error
        except RuntimeError as outer:
            return outer
    raise AssertionError("unreachable")


def implicit_context() -> BaseException:
    try:
        try:
            dict[str, int]()["missing"]
        except KeyError:
            raise TypeError("while handling")  # noqa: B904 - the implicit context is the point
    except TypeError as error:
        return error
    raise AssertionError("unreachable")


def suppressed_context() -> BaseException:
    try:
        try:
            dict[str, int]()["missing"]
        except KeyError:
            raise TypeError("clean") from None
    except TypeError as error:
        return error
    raise AssertionError("unreachable")


def with_notes() -> BaseException:
    error = ValueError("noted")
    error.__notes__ = ["first note", "two\nlines", "ünïcødé ✓"]  # type: ignore[attr-defined]
    return raised(error)


def nested_groups() -> BaseException:
    inner = ExceptionGroup("inner", [raised(KeyError("k")), raised(OSError(2, "gone"))])
    add_note(inner, "inner note")
    middle = ExceptionGroup("middle", [raised(inner), chained_cause()])
    return raised(ExceptionGroup("outer", [raised(middle), implicit_context(), plain()]))


def wide_group() -> BaseException:
    return raised(ExceptionGroup("wide", [raised(ValueError(str(n))) for n in range(20)]))


def deep_groups() -> BaseException:
    exc: BaseException = raised(ValueError("bottom"))
    for level in range(13):
        exc = raised(ExceptionGroup(f"level {level}", [exc, raised(KeyError(level))]))
    return exc


def shared_and_cyclic() -> BaseException:
    shared = raised(KeyError("shared"))
    first = raised(ValueError("first"))
    second = raised(RuntimeError("second"))
    first.__context__ = shared
    second.__cause__ = shared
    group = raised(ExceptionGroup("g", [first, second, shared]))
    shared.__context__ = group  # a cycle through the group
    return group


# --- cases ported from CPython's Lib/test/test_traceback.py (3.11), and issue 17 -------------


def caught(function: Callable[[], object]) -> BaseException:
    try:
        function()
    except BaseException as error:  # noqa: BLE001 - the errors under test
        return error
    raise AssertionError("did not fail")


def cause_recursive() -> BaseException:
    """``test_cause_recursive``: a ZeroDivisionError re-raised from the KeyError it caused."""

    def inner_raise() -> None:
        try:
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError as e:
                z = e
                raise KeyError from e
        except KeyError as e:
            raise z from e

    def outer_raise() -> None:
        inner_raise()  # Marker

    return caught(outer_raise)


def cause_and_context() -> BaseException:
    """``test_cause_and_context``: an explicit cause hides the context."""

    def inner_raise() -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            raise KeyError from ValueError("cause")

    return caught(inner_raise)


def long_context_chain() -> BaseException:
    """``test_long_context_chain``: a context chain deeper than the recursion limit."""

    def f() -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            f()

    return caught(f)


def unhashable() -> BaseException:
    """``test_unhashable``: exceptions equal to everything are still told apart by identity."""

    class UnhashableError(Exception):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = None  # type: ignore[assignment]

    ex1, ex2 = UnhashableError("ex1"), UnhashableError("ex2")

    def raise_both() -> None:
        try:
            raise ex2 from ex1
        except UnhashableError:
            raise ex1  # noqa: B904

    return caught(raise_both)


def bad_str() -> BaseException:
    """``test_exception_bad__str__``."""

    class X(Exception):
        def __str__(self) -> str:
            raise ZeroDivisionError

    return raised(X())


def invalid_notes() -> BaseException:
    """``test_exception_with_invalid_notes``: notes that are not strings, or unprintable."""

    class BadThing:
        def __str__(self) -> str:
            return "bad str"

        def __repr__(self) -> str:
            return "bad repr"

    class Unprintable:
        def __repr__(self) -> str:
            raise ValueError("bad value")

    error = raised(ValueError(123))
    error.__notes__ = [BadThing(), Unprintable(), "", "Final Note"]  # type: ignore[attr-defined]
    return error


def qualname_and_module() -> BaseException:
    """``test_exception_qualname`` / ``test_exception_modulename``."""

    class A:
        class B:
            class X(Exception):
                def __str__(self) -> str:
                    return "I am X"

    A.B.X.__module__ = "some.module"
    return raised(A.B.X())


def syntax_error_offsets() -> BaseException:
    """``test_syntax_error_various_offsets``: offsets before, inside and past the line."""
    members = [
        SyntaxError("msg", ("file.py", 1, offset + add, " " * add + f"text{offset}"))
        for offset in (-5, 0, 1, 6, 9)
        for add in (0, 2)
    ]
    return raised(ExceptionGroup("offsets", members))


def group_cause() -> BaseException:
    """``test_exception_group_cause``."""

    def exc() -> None:
        try:
            raise ExceptionGroup("eg1", [ValueError(1), TypeError(2)])
        except Exception as e:
            raise ExceptionGroup("eg2", [ValueError(3), TypeError(4)]) from e

    return caught(exc)


def group_context_with_context() -> BaseException:
    """``test_exception_group_context_with_context``."""

    def exc() -> None:
        try:
            try:
                raise ExceptionGroup("eg1", [ValueError(1), TypeError(2)])
            except Exception:
                raise ExceptionGroup("eg2", [ValueError(3), TypeError(4)])  # noqa: B904
        except Exception:
            raise ImportError(5)  # noqa: B904

    return caught(exc)


def group_with_multiple_notes() -> BaseException:
    """``test_exception_group_with_multiple_notes``."""
    inner = [raised(ValueError(n)) for n in range(3)]
    for n, error in enumerate(inner):
        add_note(error, f"the {n} note")
        add_note(error, "and another")
    group = raised(ExceptionGroup("eg", inner))
    add_note(group, "group note 1")
    add_note(group, "group note 2")
    return group


def caret_unicode() -> BaseException:
    """``test_caret_for_binary_operators_with_unicode`` and ``..._subscript_unicode``."""

    def f_with_binary_operator() -> float:
        áóí = 20
        return 10 + áóí / 0 + 30

    def f_with_subscript() -> object:
        some_dict: dict[str, Any] = {"ó": {"á": {"í": {"theta": 1}}}}
        return some_dict["ó"]["á"]["í"]["beta"]

    return raised(
        ExceptionGroup("carets", [caught(f_with_binary_operator), caught(f_with_subscript)])
    )


class ListGroup(ExceptionGroup):  # type: ignore[misc]
    """A group whose ``exceptions`` property returns a list (CPython iterates it)."""

    @property
    def exceptions(self) -> list[BaseException]:
        return list(super().exceptions)


def list_members_group() -> BaseException:
    return raised(ListGroup("listed", [raised(ValueError(1)), chained_cause()]))


def hand_built_traceback() -> BaseException:
    """A traceback whose ``tb_lineno`` disagrees with its instruction: CPython prints the
    instruction's line (3.11+)."""
    error = raised(ValueError("hand built"), 2)
    tb = error.__traceback__
    assert tb is not None
    rebuilt = None
    items = []
    while tb is not None:
        items.append(tb)
        tb = tb.tb_next
    for item in reversed(items):
        rebuilt = types.TracebackType(rebuilt, item.tb_frame, item.tb_lasti, item.tb_lineno + 7)
    return error.with_traceback(rebuilt)


def big_group_with_causes() -> BaseException:
    """5,000 members, each with a cause: over the link cap, the first members keep theirs."""
    members = []
    for n in range(5_000):
        member = ValueError(n)
        member.__cause__ = KeyError(n)
        members.append(member)
    return raised(ExceptionGroup("big", members))


CASES: dict[str, Callable[[], BaseException]] = {
    "cause_recursive": cause_recursive,
    "cause_and_context": cause_and_context,
    "long_context_chain": long_context_chain,
    "unhashable": unhashable,
    "bad_str": bad_str,
    "invalid_notes": invalid_notes,
    "qualname_and_module": qualname_and_module,
    "syntax_error_offsets": syntax_error_offsets,
    "group_cause": group_cause,
    "group_context_with_context": group_context_with_context,
    "group_with_multiple_notes": group_with_multiple_notes,
    "caret_unicode": caret_unicode,
    "list_members_group": list_members_group,
    "hand_built_traceback": hand_built_traceback,
    "big_group_with_causes": big_group_with_causes,
    "plain": plain,
    "cause": chained_cause,
    "context": implicit_context,
    "suppressed": suppressed_context,
    "notes": with_notes,
    "nested_groups": nested_groups,
    "wide_group": wide_group,
    "deep_groups": deep_groups,
    "shared_and_cyclic": shared_and_cyclic,
}


@pytest.mark.parametrize("name", list(CASES))
def test_fixed_cases(name: str) -> None:
    report = assert_parity(CASES[name]())
    if name == "suppressed":
        assert [e.chain for e in report.exceptions] == [None]
    if name == "wide_group":
        assert report.exceptions[-1].omitted == 5 and len(report.exceptions[-1].exceptions) == 15
    if name == "deep_groups":
        assert "max_group_depth is 10" in report.text


def test_tracebacklimit_cuts_the_text_but_not_the_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented choice (docs/limits.md): the text is CPython's, the frames all kept."""
    exc = plain()
    monkeypatch.setattr(sys, "tracebacklimit", 1, raising=False)
    report = capture(exc)
    assert report.text == expected_text(exc)
    assert report.text.count('  File "') == 1
    assert len(report.exceptions[-1].frames) == 5  # plain(): raised() -> level x 4
    assert report.tracebacklimit == 1  # the dashboard says the text was limited


@pytest.mark.parametrize(("limit", "expected"), [(None, None), (5, None), (4, 4), (-3, 0)])
def test_tracebacklimit_is_reported_only_when_it_cut_the_text(
    monkeypatch: pytest.MonkeyPatch, limit: int | None, expected: int | None
) -> None:
    exc = plain()  # 5 frames
    if limit is None:
        monkeypatch.delattr(sys, "tracebacklimit", raising=False)
    else:
        monkeypatch.setattr(sys, "tracebacklimit", limit, raising=False)
    report = capture(exc)
    assert report.text == expected_text(exc)
    assert report.tracebacklimit == expected


def test_tracebacklimit_cut_in_a_cause_or_a_group_member_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the cause is deeper than the limit: the text still left frames out."""
    try:
        try:
            raise plain()
        except ValueError as inner:
            raise KeyError("outer") from inner
    except KeyError as error:
        outer = error
    monkeypatch.setattr(sys, "tracebacklimit", 2, raising=False)
    assert capture(outer).tracebacklimit == 2
    group = ExceptionGroup("g", [plain()])  # never raised: no frames of its own
    monkeypatch.setattr(sys, "tracebacklimit", 5, raising=False)
    assert capture(group).tracebacklimit is None
    monkeypatch.setattr(sys, "tracebacklimit", 4, raising=False)
    assert capture(group).tracebacklimit == 4


def test_falsy_exception_ends_the_chain_like_cpython() -> None:
    class Empty(Exception):
        def __len__(self) -> int:
            return 0

    error = raised(Empty("falsy"))
    error.__context__ = raised(KeyError("never printed"))
    report = assert_parity(error)
    assert len(report.exceptions) == 1


# --- random structures ----------------------------------------------------------------------


class OddError(Exception):
    """An exception whose type names are unusual."""


OddError.__qualname__ = "Wëird.Ünïcode"
OddError.__module__ = "some.module"


class BrokenStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class FalsyError(Exception):
    def __bool__(self) -> bool:
        return False


class UnprintableNote:
    def __str__(self) -> str:
        raise ValueError("no note")


TYPES: list[type[Exception]] = [
    ValueError,
    KeyError,
    RuntimeError,
    OSError,
    OddError,
    BrokenStrError,
    FalsyError,
]
MESSAGES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\ud800 lone", "nul\x00", "a\r\nb", "\u202eltr", "😀" * 3, "x" * 300]),
)
NOTES = st.one_of(
    st.none(),
    st.lists(st.one_of(MESSAGES, st.just(UnprintableNote())), max_size=3),
    st.sampled_from([42, "a str is a Sequence", ("tuple", "notes")]),
)


@dataclass
class Spec:
    """One exception of a random structure; links are indexes into the structure."""

    type_index: int
    message: str
    depth: int
    notes: object
    members: list[int]
    cause: int | None
    context: int | None
    suppress: bool


@st.composite
def structures(draw: st.DrawFn) -> list[Spec]:
    count = draw(st.integers(1, 7))
    specs = []
    for index in range(count):
        later = list(range(index + 1, count))
        is_group = bool(later) and draw(st.booleans())
        members = draw(st.lists(st.sampled_from(later), min_size=1, max_size=4)) if is_group else []
        link = st.one_of(st.none(), st.integers(0, count - 1))
        specs.append(
            Spec(
                type_index=draw(st.integers(0, len(TYPES) - 1)),
                message=draw(MESSAGES),
                depth=draw(st.integers(0, 3)),
                notes=draw(NOTES),
                members=members,
                cause=draw(link),
                context=draw(link),
                suppress=draw(st.booleans()),
            )
        )
    return specs


def build(specs: list[Spec]) -> BaseException:
    """Make and raise every exception (members before their groups), then link them."""
    made: dict[int, BaseException] = {}
    for index in reversed(range(len(specs))):
        spec = specs[index]
        if spec.members:
            exc: BaseException = ExceptionGroup(spec.message, [made[m] for m in spec.members])
        else:
            exc = TYPES[spec.type_index](spec.message)
        made[index] = raised(exc, spec.depth)
    for index, spec in enumerate(specs):
        exc = made[index]
        exc.__cause__ = None if spec.cause is None else made[spec.cause]
        exc.__context__ = None if spec.context is None else made[spec.context]
        exc.__suppress_context__ = spec.suppress
        if spec.notes is not None:
            exc.__notes__ = spec.notes  # type: ignore[attr-defined]
    return made[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures())
def test_random_structures_match_traceback_exception(specs: list[Spec]) -> None:
    exc = build(specs)
    expected = expected_text(exc)
    if len(expected) <= MAX_TEXT:
        assert_parity(exc)
        return
    # Groups that share members and links back print over a megabyte: the text is cut at
    # MAX_TEXT, saying so, and the rest of the report keeps to its size budget (docs/limits.md).
    report = capture(exc)
    assert (
        report.text == expected[:MAX_TEXT] + f"\n[{len(expected) - MAX_TEXT} more characters cut]\n"
    )


# --- through a real broker ------------------------------------------------------------------


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = Transport(
        Options(broker_url=broker.zmq_url, secret=broker.secret, heartbeat_seconds=0.2),
        eval_dispatcher,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def text_through_broker(broker: Broker, agent: Transport, exc: BaseException) -> bytes:
    """``exc`` captured, sent by a real agent, and its ``/text`` as the broker answers it."""
    report = build_report(
        exc,
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
    )
    agent.submit_report(report)
    path = f"/api/reports/{report.id}/text"
    wait_for(lambda: broker.get(path).status == 200, what=f"report {report.id}")
    answer = broker.get(path)
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    return answer.body


def test_identical_functions_in_two_files_through_a_broker(
    broker: Broker, agent: Transport, tmp_path: Path
) -> None:
    """Two plugins scaffolded alike, one call site: each report's text names its own file."""
    modules = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "plugin.py"
        path.write_text('def handler():\n    raise ValueError("boom")\n')
        spec = importlib.util.spec_from_file_location(f"plugin_{folder}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append((module, str(path)))

    def call_site(module: Any) -> None:
        module.handler()

    for module, filename in modules * 2:
        try:
            call_site(module)
        except ValueError as error:
            exc = error
        body = text_through_broker(broker, agent, exc)
        assert body == "".join(traceback.format_exception(exc)).encode("utf-8")
        assert f'File "{filename}"'.encode() in body


def test_text_endpoint_is_byte_for_byte(broker: Broker, agent: Transport) -> None:
    cases = dict(CASES)
    cases["odd_unicode"] = lambda: raised(OddError("tab\t nul\x00 cr\r emoji 😀 rtl \u202e"))
    for name, make in cases.items():
        exc = make()
        report = build_report(
            exc,
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
        agent.submit_report(report)
        path = f"/api/reports/{report.id}/text"
        wait_for(lambda: broker.get(path).status == 200, what=f"the {name} report")  # noqa: B023
        answer = broker.get(path)
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.body == "".join(traceback.format_exception(exc)).encode("utf-8"), name


def broker_text(broker: Broker, report_id: str, name: str) -> bytes:
    path = f"/api/reports/{report_id}/text"
    wait_for(lambda: broker.get(path).status == 200, what=f"the {name} report")
    return broker.get(path).body


def test_every_case_through_the_wsgi_middleware(broker: Broker, agent: Transport) -> None:
    """Each case raised inside a request: the report's text is ``format_exception``'s."""
    current: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise current[-1]

    wrapped = DebuggedApplication(app, options=agent.options)
    for name, make in CASES.items():
        current.append(make())
        env = EnvironBuilder(path=f"/{name}", headers=[("Accept", "text/plain")]).get_environ()
        env["wsgi.errors"] = io.StringIO()
        seen: list[dict[str, str]] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(dict(headers))  # noqa: B023 - read before the next case
            return lambda data: None

        b"".join(wrapped(env, start_response))
        report_id = seen[-1]["X-Debugbroker-Report"].rsplit("/", 1)[1]
        expected = "".join(traceback.format_exception(current[-1])).encode()
        assert broker_text(broker, report_id, name) == expected, name


# The threads die on purpose; the hook before ours (pytest's) would warn about each.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_every_case_through_a_dying_thread(broker: Broker, agent: Transport) -> None:
    """Each case killing a thread, reported by ``install_excepthook``."""
    install_excepthook(options=agent.options)
    try:
        for name, make in CASES.items():
            before = {r["id"] for r in broker.reports()}
            exc = make()

            def die() -> None:
                raise exc  # noqa: B023 - the thread runs before the next case

            thread = threading.Thread(target=die, name=f"case-{name}")
            with contextlib.redirect_stderr(io.StringIO()):  # the previous hook prints it
                thread.start()
                thread.join()

            def new_report() -> str | None:
                fresh = [r["id"] for r in broker.reports() if r["id"] not in before]  # noqa: B023
                return fresh[0] if fresh else None

            report_id = wait_for(new_report, what=f"the {name} thread's report")
            expected = "".join(traceback.format_exception(exc)).encode()
            assert broker_text(broker, report_id, name) == expected, name
    finally:
        uninstall_excepthook()


_DYING_MAIN = """
import sys, traceback
from debugbroker.agent.hooks import install_excepthook
from tests.agent.test_text_parity import CASES

def printed(kind, error, tb):  # the hook before ours: what the terminal would show
    sys.stdout.write("".join(traceback.format_exception(error)))
    sys.stdout.flush()

sys.excepthook = printed
install_excepthook()
raise CASES[sys.argv[1]]()
"""


@pytest.mark.e2e  # a child process per case
def test_every_case_through_a_dying_main_program(broker: Broker, tmp_path: Path) -> None:
    """Each case ending a child's main program: its report's text is what it printed."""
    env = broker.agent_env()
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env["PYTHONPATH"]]
    )
    for name in CASES:
        before = {r["id"] for r in broker.reports()}
        done = subprocess.run(
            [sys.executable, "-c", _DYING_MAIN, name],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr.decode()

        def new_report() -> str | None:
            fresh = [r["id"] for r in broker.reports() if r["id"] not in before]  # noqa: B023
            return fresh[0] if fresh else None

        report_id = wait_for(new_report, what=f"the {name} program's report")
        assert broker_text(broker, report_id, name) == done.stdout, name


# --- Python 3.10 without the backport's patch -------------------------------------------------

_UNPATCHED = """
import traceback
from exceptiongroup import ExceptionGroup
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options

try:
    error = KeyError("k")
    error.__notes__ = ["a note"]
    raise ExceptionGroup("many", [error, ValueError("v")])
except ExceptionGroup as group:
    report = build_report(
        group, report_id="r", agent_id="a", options=Options(), registry=None
    )
    text = "".join(traceback.format_exception(type(group), group, group.__traceback__))
assert report.text == text and "+-+---" not in text, text
[info] = report.exceptions
assert info.type_name == "ExceptionGroup" and info.exceptions == () and info.notes == ()
print("plain")
"""


@pytest.mark.skipif(
    sys.version_info >= (3, 11), reason="the exceptiongroup backport patches traceback only on 3.10"
)
def test_unpatched_traceback_shows_groups_as_plain_exceptions_on_310() -> None:
    """With ``EXCEPTIONGROUP_NO_PATCH=1`` 3.10 prints a group as one exception: so does a report."""
    env = os.environ | {"EXCEPTIONGROUP_NO_PATCH": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _UNPATCHED], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "plain\n", done.stderr
