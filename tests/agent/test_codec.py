"""The compiled codec (``agent/codec.py``) against the reference one in ``protocol``.

The broker stores ``codec.decode_wire``'s dicts and the agent sends ``codec.encode``'s
bytes, so both must agree with ``protocol`` exactly: same bytes out, same inputs accepted,
same wire dicts (compared as msgpack bytes: NaN != NaN).
"""

from __future__ import annotations

import typing
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from debugbroker.agent import codec, protocol
from debugbroker.agent.capture import capture_exception
from debugbroker.agent.options import Options
from debugbroker.agent.protocol import ProtocolError

from .test_protocol_fuzz import FUZZ, shaped, structures

MESSAGE_TYPES: list[type[Any]] = list(typing.get_args(protocol.Message))


def agree(payload: bytes) -> None:
    """``decode_wire`` and ``decode_message`` accept what ``decode`` accepts; the first
    returns its wire dict, the second the same wire dict for reports and eval and
    completion results, and the same message for every other kind."""
    try:
        reference = protocol.decode(payload)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            codec.decode_wire(payload)
        with pytest.raises(ProtocolError):
            codec.decode_message(payload)
        return
    cls, wire = codec.decode_wire(payload)
    assert cls is type(reference)
    expected = protocol.encode(reference)
    assert msgpack.packb(wire, use_bin_type=True) == expected
    decoded = codec.decode_message(payload)
    if isinstance(decoded, codec.WireReport):
        assert cls is protocol.ReportMessage and decoded.size == len(payload)
        assert msgpack.packb({"kind": "report", "report": decoded.report}) == expected
    elif isinstance(decoded, codec.WireResult):
        assert cls in (protocol.EvalResult, protocol.CompleteResult) and decoded.cls is cls
        assert decoded.request_id == wire["request_id"]
        assert msgpack.packb(decoded.wire, use_bin_type=True) == expected
    else:
        assert cls not in (protocol.ReportMessage, protocol.EvalResult, protocol.CompleteResult)
        assert protocol.encode(decoded) == expected


@settings(FUZZ, max_examples=80)
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_encode_gives_the_reference_bytes(cls: type[Any], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        expected = protocol.encode(message)
    except (OverflowError, ValueError):  # an int beyond 64 bits: nothing a peer can send
        assume(False)
    assert codec.encode(message) == expected
    agree(expected)


@FUZZ
@given(structures)
def test_arbitrary_structures_are_judged_alike(value: Any) -> None:
    agree(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(shaped)
def test_message_shaped_maps_are_judged_alike(value: dict[str, Any]) -> None:
    agree(msgpack.packb(value, use_bin_type=True))


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_mutated_messages_are_judged_alike(cls: type[Any], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        payload = bytearray(protocol.encode(message))
    except (OverflowError, ValueError):
        assume(False)
    position = data.draw(st.integers(0, max(len(payload) - 1, 0)), label="position")
    payload[position] ^= data.draw(st.integers(1, 255), label="bits")
    agree(bytes(payload))


def test_a_captured_report_round_trips() -> None:
    def fail(items: list[int], table: dict[str, float]) -> None:
        text = "x" * 300  # noqa: F841 - locals the report shows
        raise KeyError(items[0], table)

    try:
        fail([1, 2, 3], {"a": 1.5})
    except KeyError as error:
        report = capture_exception(
            error, report_id="r1", agent_id="a1", options=Options(), registry=None
        )
    message = protocol.ReportMessage(report=report)
    payload = codec.encode(message)
    assert payload == protocol.encode(message)
    cls, wire = codec.decode_wire(payload)
    assert cls is protocol.ReportMessage
    assert wire == protocol.to_wire(message)
    assert list(wire["report"]) == list(protocol.to_wire(report))  # same key order


def test_missing_fields_defaults_and_unknown_keys() -> None:
    sparse = {"kind": "heartbeat", "held_frames": 3, "surplus": [1, 2]}
    cls, wire = codec.decode_wire(msgpack.packb(sparse))
    assert cls is protocol.Heartbeat
    assert wire == protocol.to_wire(protocol.Heartbeat(held_frames=3))
    with pytest.raises(ProtocolError, match="held_frames"):
        codec.decode_wire(msgpack.packb({"kind": "heartbeat"}))
    node = {"kind": "eval_result", "request_id": "r", "ok": True, "result": {"kind": "str"}}
    with pytest.raises(ProtocolError, match="type_name"):
        codec.decode_wire(msgpack.packb(node))
    with pytest.raises(ProtocolError, match="expected an integer"):
        codec.decode_wire(msgpack.packb({"kind": "heartbeat", "held_frames": "many"}))


def test_deep_nesting_and_oversize_raise_protocol_error() -> None:
    pack = msgpack.packb
    level = b"\x83" + pack("kind") + pack("list") + pack("type_name") + pack("list")
    level += pack("children") + b"\x91"  # a one-item list holding the next level
    head = b"\x84" + pack("kind") + pack("eval_result") + pack("request_id") + pack("r")
    head += pack("ok") + pack(True) + pack("result")
    # 510 levels: msgpack still unpacks them (it stops at 512 here), and checking them passes
    # Python's recursion limit on 3.10 to 3.13 (3.12+ use fewer frames per level: 450 pass).
    deep = head + level * 510 + pack({"kind": "str", "type_name": "str"})
    for payload in (
        deep,  # unpacks, but too deep to check
        b"\x81\xa1a" * 100_000 + b"\xc0",
        b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1),
    ):
        with pytest.raises(ProtocolError):
            codec.decode_wire(payload)
        agree(payload)


def test_decode_message_gives_reports_and_results_as_wire_dicts_the_rest_as_messages() -> None:
    report = protocol.Report(
        id="r", agent_id="a", created=1.0, type_name="E", message="m", text="t", exceptions=()
    )
    payload = protocol.encode(protocol.ReportMessage(report=report))
    decoded = codec.decode_message(payload)
    assert isinstance(decoded, codec.WireReport)
    assert decoded.report == protocol.to_wire(report) and decoded.size == len(payload)
    beat = protocol.Heartbeat(held_frames=2)
    assert codec.decode_message(protocol.encode(beat)) == beat
    node = protocol.ReprNode(kind="number", type_name="int", text="3")
    chunk = protocol.OutputChunk(stream="result", value=node)
    result = protocol.EvalResult(request_id="q1", ok=True, result=node, chunks=(chunk,))
    decoded = codec.decode_message(protocol.encode(result))
    assert decoded == codec.WireResult(protocol.EvalResult, "q1", protocol.to_wire(result))
    assert list(decoded.wire) == list(protocol.to_wire(result))  # same key order in JSON
    sparse = msgpack.packb({"kind": "complete_result", "request_id": "q2", "ok": True})
    completion = protocol.to_wire(protocol.CompleteResult(request_id="q2", ok=True))
    assert codec.decode_message(sparse) == codec.WireResult(
        protocol.CompleteResult, "q2", completion
    )
    for hostile in (  # wrong types, a missing field, a broken node: refused like decode
        {"kind": "eval_result", "request_id": "q", "ok": "yes"},
        {"kind": "eval_result", "ok": True},
        {"kind": "eval_result", "request_id": 7, "ok": True},
        {"kind": "eval_result", "request_id": "q", "ok": True, "result": {"kind": "int"}},
        {"kind": "eval_result", "request_id": "q", "ok": True, "chunks": [{"text": "x"}]},
        {"kind": "eval_result", "request_id": "q", "ok": True, "chunks": "abc"},
        {"kind": "complete_result", "request_id": "q", "ok": True, "matches": [1]},
    ):
        with pytest.raises(ProtocolError):
            protocol.decode(msgpack.packb(hostile))
        with pytest.raises(ProtocolError):
            codec.decode_message(msgpack.packb(hostile))
    broken = msgpack.packb({"kind": "report", "report": {"id": 1}})
    with pytest.raises(ProtocolError):
        codec.decode_message(broken)
