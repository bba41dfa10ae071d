"""The wire protocol: round trips, hostile bytes, and the dashboard's TypeScript mirror."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.protocol import (
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExceptionInfo,
    FrameInfo,
    Heartbeat,
    Hello,
    HelloRequest,
    Panel,
    Ping,
    ProtocolError,
    Refused,
    Report,
    ReportMessage,
    ReprNode,
    RequestInfo,
    Variable,
    Welcome,
)

TYPES_TS = Path(__file__).resolve().parents[2] / "frontend" / "src" / "api" / "types.ts"


def sample_report() -> Report:
    value = ReprNode(
        kind="list",
        type_name="list",
        children=(ReprNode(kind="number", type_name="int", text="1"),),
        omitted=9,
        more="m1",
    )
    frame = FrameInfo(
        index=0,
        frame_id="abc",
        filename="app.py",
        lineno=3,
        function="view",
        module="app",
        context_start=1,
        context=("def view():", "    x = [1]", "    1 / 0"),
        locals=(Variable(name="x", value=value),),
        colno=4,
        end_colno=9,
    )
    inner = ExceptionInfo(type_name="KeyError", module="builtins", message="'k'", frames=(frame,))
    outer = ExceptionInfo(
        type_name="ValueError",
        module="builtins",
        message="bad",
        frames=(),
        notes=("a note",),
        chain="cause",
    )
    return Report(
        id="r1",
        agent_id="a1",
        created=1.5,
        type_name="ValueError",
        message="bad",
        text="Traceback...\n",
        exceptions=(inner, outer),
        request=RequestInfo(method="GET", url="http://x/", headers=(("Accept", "*/*"),)),
        pid=7,
        host="h",
        app="app",
        panels=(Panel(title="Task", items=(("name", "tasks.add"), ("retries", "0"))),),
        tracebacklimit=3,
    )


MESSAGES: list[protocol.Message] = [
    Hello(
        agent_id="a",
        nonce="n",
        proof="p",
        pid=1,
        host="h",
        app="x",
        python="3.11",
        started=1.0,
        evalex=True,
    ),
    Welcome(dashboard_url="http://127.0.0.1:8780", proof="p"),
    Refused(reason="wrong secret"),
    HelloRequest(),
    Ping(),
    Heartbeat(held_frames=3, dropped_reports=1),
    Heartbeat(held_frames=3, held_reports=2, held_bytes=4096),
    protocol.Release(report_id="r1"),
    protocol.Step(report_id="r1", action="over"),
    protocol.Step(report_id="r1", action="until", line=12),
    protocol.Released(report_ids=("r1", "r2")),
    protocol.SetBreakpoints(),
    protocol.SetBreakpoints(
        breakpoints=(
            protocol.BreakpointSpec(id="b1", file="/app/views.py", line=12),
            protocol.BreakpointSpec(
                id="b2",
                file="/app/views.py",
                line=30,
                condition="n > 2",
                hit_count=3,
                enabled=False,
            ),
        )
    ),
    protocol.BreakpointStates(
        states=(
            protocol.BreakpointState(id="b1", status="armed", hits=2),
            protocol.BreakpointState(id="b2", status="refused", reason="no code on line 30"),
            protocol.BreakpointState(
                id="b3", status="error", reason="ZeroDivisionError", warning="file changed"
            ),
        )
    ),
    ReportMessage(report=sample_report()),
    EvalRequest(request_id="q", frame_id="f", code="x"),
    EvalResult(
        request_id="q", ok=True, output="hi\n", result=ReprNode(kind="none", type_name="NoneType")
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: protocol.Message) -> None:
    assert protocol.decode(protocol.encode(message)) == message


def test_wire_dicts_carry_the_kind_tag() -> None:
    wire = protocol.to_wire(Heartbeat(held_frames=2))
    assert wire == {
        "kind": "heartbeat",
        "held_frames": 2,
        "dropped_reports": 0,
        "held_reports": 0,
        "held_bytes": 0,
    }


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (msgpack.packb([1, 2]), "expected a map"),
        (msgpack.packb({"kind": "nope"}), "unknown message kind"),
        (msgpack.packb({"kind": "heartbeat"}), "held_frames"),
        (msgpack.packb({"kind": "heartbeat", "held_frames": "3"}), "expected an integer"),
        (msgpack.packb({"kind": "heartbeat", "held_frames": True}), "expected an integer"),
        (msgpack.packb({"kind": "report", "report": {"id": 1}}), "Report"),
        (b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_bad_payloads_raise_protocol_error(payload: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        protocol.decode(payload)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"breakpoints": [{"id": "b", "file": "f"}]}, "line"),
        ({"breakpoints": [{"id": "b", "file": "f", "line": "3"}]}, "expected an integer"),
        ({"breakpoints": "b"}, "expected"),
    ],
)
def test_bad_breakpoint_lists_raise_protocol_error(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        protocol.decode(msgpack.packb({"kind": "set_breakpoints", **fields}))


def test_a_breakpoint_state_outside_the_closed_set_is_refused() -> None:
    payload = msgpack.packb(
        {"kind": "breakpoint_states", "states": [{"id": "b", "status": "exploded"}]}
    )
    with pytest.raises(ProtocolError):
        protocol.decode(payload)


def test_deeply_nested_repr_is_refused_not_crashing() -> None:
    node: dict[str, Any] = {"kind": "str", "type_name": "str"}
    for _ in range(500):  # msgpack itself refuses to pack deeper than 511
        node = {"kind": "list", "type_name": "list", "children": [node]}
    payload = msgpack.packb({"kind": "eval_result", "request_id": "q", "ok": True, "result": node})
    with pytest.raises(ProtocolError):
        protocol.decode(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_escape_as_other_errors(payload: bytes) -> None:
    try:
        protocol.decode(payload)
    except ProtocolError:
        pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
wire_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(protocol.MESSAGE_TYPES)),
    st.dictionaries(
        st.sampled_from(
            [
                "agent_id",
                "secret",
                "pid",
                "report",
                "request_id",
                "ok",
                "result",
                "held_frames",
                "code",
            ]
        ),
        wire_values,
    ),
)
def test_structured_garbage_decodes_or_raises_protocol_error(
    kind: str, fields: dict[str, Any]
) -> None:
    try:
        message = protocol.decode(msgpack.packb({"kind": kind, **fields}))
    except ProtocolError:
        return
    assert type(message).kind == kind


def _field_maps(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Maps of some of ``cls``'s fields (and a stray key), each a scalar of any type."""
    names = [field.name for field in dataclasses.fields(cls)] + ["stray"]
    return st.dictionaries(st.sampled_from(names), scalars, max_size=len(names))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(protocol.MESSAGE_TYPES)).flatmap(
        lambda kind: st.tuples(st.just(kind), _field_maps(protocol.MESSAGE_TYPES[kind]))
    )
)
def test_decode_agrees_with_the_field_by_field_reference(case: tuple[str, dict[str, Any]]) -> None:
    """The shortcut for messages of plain fields (the agent's requests) accepts and builds
    exactly what the reference check does."""
    kind, fields = case
    try:
        expected: Any = protocol.from_wire(protocol.MESSAGE_TYPES[kind], fields)
    except ProtocolError:
        expected = ProtocolError
    try:
        decoded: Any = protocol.decode(msgpack.packb({"kind": kind, **fields}))
    except ProtocolError:
        decoded = ProtocolError
    assert decoded == expected


# --- the dashboard's TypeScript types mirror the dataclasses --------------------------------

MIRRORED = [
    ReprNode,
    Variable,
    FrameInfo,
    ExceptionInfo,
    RequestInfo,
    Panel,
    Report,
    EvalResult,
    CompleteResult,
    protocol.BreakpointState,
]


def typescript_interfaces(source: str) -> dict[str, dict[str, bool]]:
    """Interface name → {field: optional} from `export interface X { a: T; b?: U; }` blocks."""
    interfaces: dict[str, dict[str, bool]] = {}
    for match in re.finditer(
        r"export interface (\w+)(?: extends [^{]+)?\s*\{(.*?)\n\}", source, re.S
    ):
        fields: dict[str, bool] = {}
        for line in match.group(2).splitlines():
            field = re.match(r"\s*(?:readonly\s+)?(\w+)(\??):", line)
            if field:
                fields[field.group(1)] = bool(field.group(2))
        interfaces[match.group(1)] = fields
    return interfaces


@pytest.mark.parametrize("cls", MIRRORED, ids=lambda c: c.__name__)
def test_typescript_types_match_the_protocol(cls: type[Any]) -> None:
    interfaces = typescript_interfaces(TYPES_TS.read_text(encoding="utf-8"))
    assert cls.__name__ in interfaces, f"types.ts lacks `export interface {cls.__name__}`"
    ts_fields = interfaces[cls.__name__]
    py_fields = {f.name for f in dataclasses.fields(cls)}
    if cls in (EvalResult, CompleteResult):  # the HTTP API drops the routing fields
        py_fields -= {"request_id"}
    if cls is protocol.BreakpointState:  # kept per agent under the breakpoint, with a time
        py_fields -= {"id"}
    missing = py_fields - set(ts_fields)
    assert not missing, f"{cls.__name__}: types.ts lacks {sorted(missing)}"
    added = {"kind", "highlight", "agent_alive", "resumable", "frames_held", "frames_released"}
    added |= {"stepped_by", "next_pause", "at"}
    unknown = set(ts_fields) - py_fields - added
    assert not unknown, f"{cls.__name__}: types.ts has fields the protocol lacks: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("build", "cls"),
    [
        (protocol.new_node, protocol.ReprNode),
        (protocol.new_variable, Variable),
        (protocol.new_frame_info, protocol.FrameInfo),
    ],
)
def test_fast_constructors_take_exactly_the_fields(build: Any, cls: type[Any]) -> None:
    """``new_node``/``new_variable``/``new_frame_info`` set slots directly: a field added to
    the class must be added to them too, with the same default."""
    parameters = inspect.signature(build).parameters
    fields = dataclasses.fields(cls)
    assert list(parameters) == [field.name for field in fields]
    for field in fields:
        default = parameters[field.name].default
        assert default == (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )


@given(
    st.text(max_size=5),
    st.text(max_size=5),
    st.text(max_size=5),
    st.integers(0, 10),
    st.none() | st.text(max_size=5),
)
def test_fast_constructors_make_the_same_objects(
    kind: str, type_name: str, text: str, omitted: int, more: str | None
) -> None:
    child = protocol.ReprNode(kind="number", type_name="int", text="1")
    made = protocol.new_node(kind, type_name, text, (child,), omitted, more)
    expected = protocol.ReprNode(
        kind=kind, type_name=type_name, text=text, children=(child,), omitted=omitted, more=more
    )
    assert type(made) is protocol.ReprNode
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert protocol.to_wire(made) == protocol.to_wire(expected)
    variable = protocol.new_variable(text, made)
    assert variable == Variable(name=text, value=expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.text = "changed"  # type: ignore[misc]


@given(
    st.integers(0, 100),
    st.none() | st.text(max_size=5),
    st.text(max_size=5),
    st.none() | st.integers(0, 10),
    st.booleans(),
)
def test_new_frame_info_makes_the_same_objects(
    index: int, frame_id: str | None, text: str, column: int | None, flag: bool
) -> None:
    variable = Variable(name="x", value=protocol.ReprNode(kind="number", type_name="int", text="1"))
    fields: dict[str, Any] = {
        "frame_id": frame_id,
        "filename": text,
        "lineno": index + 1,
        "function": text,
        "module": text,
        "context_start": index,
        "context": (text,),
        "locals": (variable,),
        "end_lineno": column,
        "colno": column,
        "end_colno": column,
        "is_library": flag,
        "hidden": not flag,
    }
    made = protocol.new_frame_info(index, **fields)
    expected = protocol.FrameInfo(index=index, **fields)
    assert type(made) is protocol.FrameInfo
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert protocol.to_wire(made) == protocol.to_wire(expected)
    short = protocol.new_frame_info(index, frame_id, text, 1, text, text, 1, (), ())
    assert short == protocol.FrameInfo(
        index=index,
        frame_id=frame_id,
        filename=text,
        lineno=1,
        function=text,
        module=text,
        context_start=1,
        context=(),
        locals=(),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.lineno = 2  # type: ignore[misc]
