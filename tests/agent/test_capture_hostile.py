"""Hostile values never break capture, and every report stays within docs/limits.md.

Each case puts one hostile value where user code can put it (a local, an exception's message
or notes, a variable name) and checks that capture finishes, shows the value as what it is,
and that the encoded report respects the documented limits.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgpack
import pytest

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import (
    MAX_FRAME_LOCALS_BYTES,
    MAX_STRUCTURE_BYTES,
    build_report,
)
from debugbroker.agent.capture.plain_text import MAX_TEXT
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import ReportMessage, ReprNode, Variable, to_wire
from tests.agent.compat import ExceptionGroup
from tests.conftest import Broker, wait_for

OPTIONS = Options()
MIB = 1024 * 1024


def fail_with_local(value: object) -> BaseException:
    """An error raised in a frame whose only local, ``value``, holds ``value``."""

    def frame_with(value: object) -> None:
        raise RuntimeError("hostile local")

    try:
        frame_with(value)
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def capture(exc: BaseException) -> protocol.Report:
    return build_report(
        exc, report_id="r", agent_id="a", options=OPTIONS, registry=FrameRegistry(4, 10**8)
    )


def encoded_size(report: protocol.Report) -> int:
    payload = protocol.encode(ReportMessage(report=report))
    assert protocol.decode(payload) == ReportMessage(report=report)
    return len(payload)


def assert_within_limits(report: protocol.Report) -> None:
    assert len(report.text) <= MAX_TEXT + 100
    structure = protocol.encode(ReportMessage(report=dataclasses.replace(report, text="")))
    assert len(structure) <= MAX_STRUCTURE_BYTES * 1.1
    assert encoded_size(report) <= protocol.MAX_MESSAGE_BYTES
    for info in report.exceptions:
        for frame in info.frames:
            frame_locals = msgpack.packb(to_wire(frame.locals), use_bin_type=True)
            assert len(frame_locals) <= MAX_FRAME_LOCALS_BYTES * 1.1


def local_node(report: protocol.Report) -> ReprNode:
    frame = report.exceptions[-1].frames[-1]
    [found] = [v for v in frame.locals if v.name == "value"]
    return found.value


# --- hostile values -------------------------------------------------------------------------


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class ExitingRepr:
    def __repr__(self) -> str:
        raise SystemExit(3)


class MegabyteRepr:
    def __repr__(self) -> str:
        return "m" * (20 * MIB)


class NonStringRepr:
    def __repr__(self) -> Any:
        return 42


class RecursiveRepr:
    def __repr__(self) -> str:
        return repr(self)


class BrokenClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")


class BrokenGetattr:
    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class EverythingGetattr:
    def __getattr__(self, name: str) -> Any:
        return self


class HostileMeta(type):
    def __repr__(cls) -> str:
        raise RuntimeError("metaclass repr")

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("metaclass name")


class HostileClass(metaclass=HostileMeta):
    pass


class LyingList(list[int]):
    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("iter")


class RaisingMapping(Mapping[str, int]):
    def __getitem__(self, key: str) -> int:
        raise KeyError(key)

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("iter")


class MutatingRepr:
    """Its repr changes the dict being shown."""

    def __init__(self, target: dict[str, object]) -> None:
        self.target = target

    def __repr__(self) -> str:
        for n in range(100):
            self.target[f"new{n}"] = n
        return "mutated"


def self_referencing() -> object:
    loop: list[object] = []
    loop.append(loop)
    table: dict[str, object] = {"self": None}
    table["self"] = table
    loop.append(table)
    return loop


def nested(levels: int) -> object:
    value: object = []
    for _ in range(levels):
        value = [value, {"k": value}]
    return value


def mutating() -> object:
    target: dict[str, object] = {"a": 1}
    target["m"] = MutatingRepr(target)
    return target


HOSTILE: dict[str, Callable[[], object]] = {
    "repr raises": RaisingRepr,
    "repr raises SystemExit": ExitingRepr,
    "repr returns megabytes": MegabyteRepr,
    "repr returns a non-str": NonStringRepr,
    "repr recurses forever": RecursiveRepr,
    "self-referencing containers": self_referencing,
    "500-level nesting": lambda: nested(500),
    "broken __class__": BrokenClass,
    "broken __getattribute__": BrokenGetattr,
    "__getattr__ returns itself": EverythingGetattr,
    "hostile metaclass": lambda: HostileClass,
    "list subclass with raising len and iter": lambda: LyingList([1, 2, 3]),
    "mapping that raises": RaisingMapping,
    "repr mutates its container": mutating,
    "huge int (too many digits for str)": lambda: 10**5000,
    "huge int (millions of bits)": lambda: 1 << 5_000_000,
    "ten million items": lambda: list(range(10_000_000)),
    "huge bytes": lambda: b"\xff" * (20 * MIB),
    "huge str with surrogates": lambda: "\ud800x" * MIB,
    "ten thousand keys": lambda: {f"key{n}": n for n in range(10_000)},
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_local(name: str) -> None:
    value = HOSTILE[name]()
    report = capture(fail_with_local(value))
    node = local_node(report)
    assert node.kind in {
        "broken",
        "object",
        "list",
        "dict",
        "number",
        "bytes",
        "str",
        "recursion",
    }
    assert_within_limits(report)
    if name.startswith("repr raises"):
        assert node.kind == "broken" and "<broken repr" in node.text


def test_hostile_values_are_shown_as_what_they_are() -> None:
    def node_of(value: object) -> ReprNode:
        return local_node(capture(fail_with_local(value)))

    assert "repr exploded" in node_of(RaisingRepr()).text
    assert "SystemExit" in node_of(ExitingRepr()).text
    megabytes = node_of(MegabyteRepr())
    assert megabytes.kind == "object" and len(megabytes.text) <= OPTIONS.repr_text + 3
    assert "RecursionError" in node_of(RecursiveRepr()).text
    loop = node_of(self_referencing())
    assert loop.children[0].kind == "recursion"
    assert node_of(10**5000).kind == "broken"  # CPython refuses to print it: said so
    assert node_of(1 << 5_000_000).text == "<int of 5000001 bits>"
    items = node_of(list(range(10_000_000)))
    assert len(items.children) == OPTIONS.repr_items and items.omitted == 10_000_000 - 8
    deep = node_of(nested(500))
    depth = 0
    while deep.children:
        deep, depth = deep.children[0], depth + 1
    assert depth <= OPTIONS.repr_depth + 1


def test_slow_reprs_use_up_the_time_budget_and_the_rest_is_skipped() -> None:
    class Slow:
        calls = 0

        def __repr__(self) -> str:
            Slow.calls += 1
            time.sleep(OPTIONS.repr_budget_seconds)
            return "slow"

    report = capture(fail_with_local([Slow() for _ in range(50)]))
    node = local_node(report)
    skipped = [child for child in node.children if child.text.startswith("<skipped")]
    assert Slow.calls < 8 and skipped == [] and len(node.children) < 8


def test_a_slow_repr_in_one_frame_leaves_other_frames_a_budget() -> None:
    class Slow:
        def __repr__(self) -> str:
            time.sleep(OPTIONS.repr_budget_seconds * 2)
            return "slow"

    def outer() -> None:
        fast = "shown"  # noqa: F841
        inner()

    def inner() -> None:
        slow = Slow()  # noqa: F841
        after = "skipped"  # noqa: F841
        raise ValueError("x")

    try:
        outer()
    except ValueError as error:
        report = capture(error)
    frames = {f.function.rsplit(".", 1)[-1]: f for f in report.exceptions[-1].frames}
    inner_values = {v.name: v.value.text for v in frames["inner"].locals}
    assert inner_values["slow"] == "slow" and inner_values["after"] == "<skipped: time budget>"
    assert {v.name: v.value.text for v in frames["outer"].locals}["fast"] == "'shown'"


# --- hostile exceptions ----------------------------------------------------------------------


class HugeMessageError(Exception):
    def __str__(self) -> str:
        return "e" * (5 * MIB)


class ManyNotesError(Exception):
    pass


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as error:
        return error


def test_huge_message_and_notes_stay_within_limits() -> None:
    error = raised(HugeMessageError())
    error.__notes__ = ["n" * 65_536] * 200  # type: ignore[attr-defined]
    report = capture(error)
    assert len(report.exceptions[-1].message) <= 8_192
    assert len(report.exceptions[-1].notes) <= 32
    assert report.text.endswith("more characters cut]\n")
    assert_within_limits(report)


# The most bytes per character a report can carry: an emoji is 4 bytes of UTF-8 (and counts
# as one character of the text's cap); a lone surrogate is escaped to 6 ASCII characters.
WORST = "\U0001f600\ud800"


def worst_text(length: int, chars: str = WORST) -> str:
    return (chars * (length // len(chars) + 1))[:length]


def worst_chain(length: int, notes: int, chars: str = WORST) -> BaseException:
    """``length`` chained errors, each with a 9,000-character message and ``notes`` notes of
    8,192 characters, all of the worst characters (about 12 MB encoded before the caps)."""
    error: BaseException | None = None
    for n in range(length):
        outer = raised(ValueError(f"{n} " + worst_text(9_000, chars)))
        outer.__notes__ = [worst_text(8_192, chars)] * notes  # type: ignore[attr-defined]
        outer.__cause__ = error
        error = outer
    assert error is not None
    return error


@pytest.mark.parametrize("chars", [WORST, "\U0001f600"])
@pytest.mark.parametrize(("length", "notes"), [(250, 0), (40, 32), (250, 32)])
def test_worst_case_messages_and_notes_fit_the_wire(length: int, notes: int, chars: str) -> None:
    """Messages and notes are cut by the size budget like frames and locals, so every report
    fits the protocol's message cap; the raised exception keeps its whole message."""
    error = worst_chain(length, notes, chars)
    report = capture(error)
    assert_within_limits(report)
    raised_info = report.exceptions[-1]
    assert raised_info.message.startswith(f"{length - 1} ") and len(raised_info.message) >= 8_192
    assert "more characters cut: report size]" in report.exceptions[0].message
    if notes:  # 32 notes of escaped surrogates alone are over the budget: cut too
        whole = worst_text(8_192, chars).encode("utf-8", "backslashreplace").decode()
        assert raised_info.notes[0] == whole
        all_kept = len(raised_info.notes) == notes and raised_info.notes[-1] == whole
        assert all_kept or raised_info.notes[-1].endswith("cut: report size]")
        assert report.exceptions[0].notes[-1].endswith("cut: report size]")


def test_worst_case_reports_arrive_at_a_real_broker(broker: Broker) -> None:
    """The report URL the agent prints must answer: no report is dropped for its size."""
    transport = Transport(
        Options(broker_url=broker.zmq_url, secret=broker.secret, heartbeat_seconds=0.2),
        eval_dispatcher,
    )
    try:
        assert transport.wait_connected(20), "the agent was not welcomed"
        ids = []
        for chars in (WORST, "\U0001f600"):
            report = build_report(
                worst_chain(250, 32, chars),
                report_id=uuid.uuid4().hex,
                agent_id=transport.agent_id,
                options=transport.options,
                registry=transport.registry,
            )
            transport.submit_report(report)
            ids.append(report.id)
        for report_id in ids:
            path = f"/api/reports/{report_id}"
            wait_for(lambda: broker.get(path).status == 200, 60, what=f"report {report_id}")  # noqa: B023
        assert transport.dropped_reports == 0
    finally:
        transport.close()


def test_many_locals_and_huge_names() -> None:
    namespace = {f"v{n}": n for n in range(10_000)}
    namespace["x" * MIB] = 1

    def many(**kwargs: object) -> None:
        raise ValueError("many")

    try:
        many(**namespace)
    except ValueError as error:
        report = capture(error)
    assert_within_limits(report)


def test_deep_recursion_with_big_locals_stays_within_limits() -> None:
    def dig(n: int, payload: list[str]) -> None:
        if n == 0:
            raise RecursionError("deep")
        dig(n - 1, payload)

    payload = ["p" * 60] * 8
    try:
        dig(200, payload)
    except RecursionError as error:
        caught = error
    report = capture(caught)
    assert len(report.exceptions[-1].frames) == OPTIONS.max_frames
    assert report.text == "".join(traceback.format_exception(caught))
    assert_within_limits(report)


def test_a_huge_exception_chain_is_capped() -> None:
    error: BaseException = raised(ValueError("root"))
    for n in range(1_000):
        outer = raised(KeyError(n))
        outer.__cause__ = error
        error = outer
    report = capture(error)
    assert len(report.exceptions) <= 200
    assert report.exceptions[-1].message == "999"
    assert_within_limits(report)


def test_a_huge_group_is_capped() -> None:
    members = [raised(ValueError("v" * 5_000)) for _ in range(2_000)]
    group = raised(ExceptionGroup("many", members))
    report = capture(group)
    assert report.exceptions[-1].omitted == 2_000 - 15
    assert_within_limits(report)


def test_variable_nodes_round_trip() -> None:
    variable = Variable(name="x", value=ReprNode(kind="str", type_name="str", text="'x'"))
    assert protocol.from_wire(Variable, to_wire(variable)) == variable


def test_frames_left_out_by_the_size_budget_are_not_held() -> None:
    def dig(n: int, payload: list[Any]) -> None:
        if n == 0:
            raise RecursionError("deep")
        dig(n - 1, payload)

    # Four levels of 8 strings of 70 characters: about 300 KB of reprs in every frame.
    payload = [[[["q" * 70 + str(i)] * 8] * 8] * 8 for i in range(8)]
    try:
        dig(60, payload)
    except RecursionError as error:
        caught = error
    registry = FrameRegistry(4, 10**9)
    # Time enough for every value on a loaded machine: only the size budget decides.
    options = dataclasses.replace(OPTIONS, repr_budget_seconds=5.0)
    report = build_report(caught, report_id="r", agent_id="a", options=options, registry=registry)
    frames = report.exceptions[-1].frames
    shown = [frame.frame_id for frame in frames if frame.frame_id is not None]
    assert 0 < len(frames) < 61  # the outer frames are left out
    assert len(registry) == len(shown)  # and not kept alive for nothing
    assert all(frame_id in registry for frame_id in shown)
    assert_within_limits(report)


def test_handles_under_a_long_name_count_toward_the_size_budget() -> None:
    # Every "+" handle under a variable starts with its name: a 200-character name over
    # deeply nested lists made a report of 9 MB, over the 8 MB a message may be (it was
    # dropped, the error lost), when handles were not counted.
    name = "n" * 200
    namespace: dict[str, Any] = {"DATA": [[[[[0] * 8] * 8] * 8] * 8] * 8}
    exec(  # a function whose only local besides n has that name
        f"def dig(n):\n    {name} = DATA\n    if n == 0:\n"
        "        raise RecursionError('deep')\n    dig(n - 1)\n",
        namespace,
    )
    try:
        namespace["dig"](60)
    except RecursionError as error:
        caught = error
    # Time enough for every value on a loaded machine: only the size budget decides.
    options = dataclasses.replace(OPTIONS, repr_budget_seconds=5.0)
    report = build_report(
        caught, report_id="r", agent_id="a", options=options, registry=FrameRegistry(4, 10**9)
    )
    node = report.exceptions[-1].frames[-1].locals[-1].value
    while node.children:  # down to a list cut at the depth cap: its handle has the name
        node = node.children[0]
    assert node.more is not None and name in node.more
    assert_within_limits(report)
