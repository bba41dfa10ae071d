"""The broker's decoder (``broker/wire.py``, msgspec) against the reference one in
``protocol``: it must accept exactly what ``protocol.decode`` accepts and give the same
messages, and the same wire dicts for reports and answers (compared as msgpack bytes,
where NaN equals NaN and a tuple its list)."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.broker import wire
from debugbroker.broker.store.frame_targets import report_frames
from debugbroker.broker.store.grouping import fingerprint_parts
from debugbroker.broker.store.store import report_summary
from debugbroker.protocol import ProtocolError, encoder

from ..agent.test_codec import captured_report
from ..agent.test_protocol_fuzz import FUZZ, shaped, structures

MESSAGE_TYPES: list[type[Any]] = list(typing.get_args(protocol.Message))
_AS_WIRE = (protocol.ReportMessage, protocol.EvalResult, protocol.CompleteResult)
_FRAME_VIEW = ("index", "frame_id", "filename", "function", "is_library", "hidden")


def packed(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def agree(payload: bytes) -> None:
    """``wire.decode_message`` accepts what ``protocol.decode`` accepts; it gives the same
    wire dict for reports and eval and completion results, the same message otherwise."""
    try:
        reference = protocol.decode(payload)
    except ProtocolError as refused:
        try:
            decoded = wire.decode_message(payload)
        except ProtocolError:
            return
        # msgspec skips unknown fields unread: a broken UTF-8 string there is all it takes
        # that msgpack refuses. Read that way, the reference decoder must agree.
        assert "UnicodeDecodeError" in str(refused)
        lenient = msgpack.unpackb(payload, unicode_errors="surrogateescape")
        cls = next(c for c in MESSAGE_TYPES if c.kind == lenient["kind"])
        reference = protocol.from_wire(cls, lenient)
    else:
        decoded = wire.decode_message(payload)
    expected = protocol.encode(reference)
    if isinstance(decoded, wire.WireReport):
        assert isinstance(reference, protocol.ReportMessage) and decoded.size == len(payload)
        as_dict = msgspec.to_builtins(decoded.report)
        assert packed({"kind": "report", "report": as_dict}) == expected
        # The JSON the store keeps is written from the dataclass: the same as from the dict,
        # and what the relay reads of it (``report_view``) is what it would read of the dict.
        assert wire.wire_json(decoded.report) == wire.wire_json(as_dict)
        view = wire.report_view(decoded.report)
        assert fingerprint_parts(view) == fingerprint_parts(as_dict)
        frames = [
            {key: frame[key] for key in _FRAME_VIEW}
            for frame in report_frames(as_dict["exceptions"])
        ]
        assert list(report_frames(view["exceptions"])) == frames
        for key in ("paused", "step_of"):
            assert view[key] == as_dict[key]
        try:
            summary = report_summary(as_dict)
        except (KeyError, TypeError, ValueError):
            return
        assert packed(report_summary(view)) == packed(summary)  # NaN equals NaN there
    elif isinstance(decoded, wire.WireResult):
        assert type(reference) in _AS_WIRE and decoded.cls is type(reference)
        assert decoded.request_id == decoded.wire["request_id"]
        assert packed(decoded.wire) == expected
        assert list(decoded.wire) == list(protocol.to_wire(reference))  # same key order
    else:
        assert type(reference) not in _AS_WIRE
        assert protocol.encode(decoded) == expected


@settings(FUZZ, max_examples=80)
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_every_message_decodes_like_the_reference(cls: type[Any], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        payload = protocol.encode(message)
    except (OverflowError, ValueError):  # an int beyond 64 bits: nothing a peer can send
        assume(False)
    agree(payload)


@FUZZ
@given(structures)
def test_arbitrary_structures_are_judged_alike(value: Any) -> None:
    agree(packed(value))


@FUZZ
@given(shaped)
def test_message_shaped_maps_are_judged_alike(value: dict[str, Any]) -> None:
    agree(packed(value))


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


def test_a_captured_report_decodes_to_its_wire_dict() -> None:
    report = captured_report()
    payload = encoder.encode(protocol.ReportMessage(report=report))
    decoded = wire.decode_message(payload)
    assert isinstance(decoded, wire.WireReport)
    reference = protocol.to_wire(report)
    stored = json.loads(wire.wire_json(decoded.report))
    assert stored == reference
    assert list(stored) == list(reference)  # same key order in the stored JSON
    # What the relay reads of it matches what the store and the API read from stored JSON.
    view = wire.report_view(decoded.report)
    assert fingerprint_parts(view) == fingerprint_parts(reference)
    assert any(part.endswith("fail") for part in fingerprint_parts(view))
    assert report_summary(view) == report_summary(reference)
    held = dataclasses.replace(report.exceptions[-1].frames[-1], frame_id="f1")
    exceptions = (dataclasses.replace(report.exceptions[-1], frames=(held,)),)
    payload = encoder.encode(
        protocol.ReportMessage(report=dataclasses.replace(report, exceptions=exceptions))
    )
    holding = wire.decode_message(payload)
    assert isinstance(holding, wire.WireReport)
    frames = report_frames(wire.report_view(holding.report)["exceptions"])
    assert [frame["frame_id"] for frame in frames] == ["f1"]


def test_missing_fields_defaults_unknown_keys_and_odd_keys() -> None:
    sparse = {"kind": "heartbeat", "held_frames": 3, "surplus": [1, 2]}
    assert wire.decode_message(packed(sparse)) == protocol.Heartbeat(held_frames=3)
    with pytest.raises(ProtocolError, match="held_frames"):
        wire.decode_message(packed({"kind": "heartbeat"}))
    node = {"kind": "eval_result", "request_id": "r", "ok": True, "result": {"kind": "str"}}
    with pytest.raises(ProtocolError, match="type_name"):
        wire.decode_message(packed(node))
    with pytest.raises(ProtocolError, match="expected an integer"):
        wire.decode_message(packed({"kind": "heartbeat", "held_frames": "many"}))
    # A bytes key is no field: msgspec refuses the map, the reference ignores the key.
    odd = packed({"kind": "heartbeat", "held_frames": 3, b"held_bytes": 9})
    assert wire.decode_message(odd) == protocol.Heartbeat(held_frames=3)
    with pytest.raises(ProtocolError, match="unknown message kind"):
        wire.decode_message(packed({"kind": "nonsense"}))
    with pytest.raises(ProtocolError, match="expected a map"):
        wire.decode_message(packed([1, 2]))
    with pytest.raises(ProtocolError, match="malformed msgpack"):
        wire.decode_message(b"\xc1")


def test_deep_nesting_and_oversize_raise_protocol_error() -> None:
    pack = msgpack.packb
    level = b"\x83" + pack("kind") + pack("list") + pack("type_name") + pack("list")
    level += pack("children") + b"\x91"  # a one-item list holding the next level
    head = b"\x84" + pack("kind") + pack("eval_result") + pack("request_id") + pack("r")
    head += pack("ok") + pack(True) + pack("result")
    deep = head + level * 510 + pack({"kind": "str", "type_name": "str"})
    for payload in (
        deep,  # too deep for both decoders
        b"\x81\xa1a" * 100_000 + b"\xc0",
        b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1),
    ):
        with pytest.raises(ProtocolError):
            wire.decode_message(payload)
        agree(payload)


def _nested(levels: int) -> protocol.ReprNode:
    node = protocol.ReprNode(kind="str", type_name="str", text="'x'")
    for _ in range(levels - 1):
        node = protocol.ReprNode(kind="list", type_name="list", children=(node,))
    return node


def _group(levels: int) -> protocol.ExceptionInfo:
    info = protocol.ExceptionInfo(type_name="E", module="m", message="", frames=())
    for _ in range(levels - 1):
        info = protocol.ExceptionInfo(
            type_name="ExceptionGroup", module="builtins", message="", frames=(), exceptions=(info,)
        )
    return info


def test_nesting_has_one_limit_whatever_the_python_and_the_decoder() -> None:
    """The reference decoder's depth once depended on CPython's recursion limit (3.12
    changed it) and msgspec's on its own: both now refuse exactly past the protocol's
    limits, and accept up to them."""
    deepest = protocol.MAX_REPR_NESTING
    for levels, accepted in ((deepest, True), (deepest + 1, False)):
        result = protocol.EvalResult(request_id="q", ok=True, result=_nested(levels))
        chunk = protocol.OutputChunk(stream="result", value=_nested(levels))
        for message in (result, protocol.EvalResult(request_id="q", ok=True, chunks=(chunk,))):
            payload = protocol.encode(message)
            if accepted:
                assert protocol.decode(payload) == message
                assert isinstance(wire.decode_message(payload), wire.WireResult)
            else:
                for decode in (protocol.decode, wire.decode_message):
                    with pytest.raises(ProtocolError, match="nested over"):
                        decode(payload)
    report = captured_report()
    for levels, accepted in ((protocol.MAX_GROUP_NESTING, True), (33, False)):
        grouped = dataclasses.replace(report, exceptions=(_group(levels),))
        payload = protocol.encode(protocol.ReportMessage(report=grouped))
        if accepted:
            assert isinstance(wire.decode_message(payload), wire.WireReport)
        else:
            for decode in (protocol.decode, wire.decode_message):
                with pytest.raises(ProtocolError, match="groups nested over"):
                    decode(payload)


def test_the_deepest_value_an_agent_writes_is_accepted() -> None:
    deep: object = "bottom"
    for level in range(200):  # dicts and lists, deeper than any cap
        deep = {"key": deep} if level % 2 else [deep]
    options = Options(repr_depth=10_000)  # the renderer still stops at its own cap

    def fail(value: object) -> None:
        raise ValueError("deep")

    try:
        fail(deep)
    except ValueError as error:
        report = build_report(error, report_id="d", agent_id="a", options=options, registry=None)
    payload = encoder.encode(protocol.ReportMessage(report=report))
    assert isinstance(wire.decode_message(payload), wire.WireReport)
    assert protocol.decode(payload) == protocol.ReportMessage(report=report)


def test_results_come_as_wire_dicts_the_rest_as_messages() -> None:
    beat = protocol.Heartbeat(held_frames=2)
    assert wire.decode_message(protocol.encode(beat)) == beat
    node = protocol.ReprNode(kind="number", type_name="int", text="3")
    chunk = protocol.OutputChunk(stream="result", value=node)
    result = protocol.EvalResult(request_id="q1", ok=True, result=node, chunks=(chunk,))
    decoded = wire.decode_message(protocol.encode(result))
    assert isinstance(decoded, wire.WireResult)
    assert (decoded.cls, decoded.request_id) == (protocol.EvalResult, "q1")
    assert json.loads(wire.wire_json(decoded.wire)) == protocol.to_wire(result)
    sparse = packed({"kind": "complete_result", "request_id": "q2", "ok": True})
    completion = wire.decode_message(sparse)
    assert isinstance(completion, wire.WireResult) and completion.cls is protocol.CompleteResult
    expected = protocol.to_wire(protocol.CompleteResult(request_id="q2", ok=True))
    assert json.loads(wire.wire_json(completion.wire)) == expected
    for hostile in (  # wrong types, a missing field, a broken node: refused like decode
        {"kind": "eval_result", "request_id": "q", "ok": "yes"},
        {"kind": "eval_result", "ok": True},
        {"kind": "eval_result", "request_id": 7, "ok": True},
        {"kind": "eval_result", "request_id": "q", "ok": True, "result": {"kind": "int"}},
        {"kind": "eval_result", "request_id": "q", "ok": True, "chunks": [{"text": "x"}]},
        {"kind": "eval_result", "request_id": "q", "ok": True, "chunks": "abc"},
        {"kind": "complete_result", "request_id": "q", "ok": True, "matches": [1]},
        {"kind": "report", "report": {"id": 1}},
    ):
        with pytest.raises(ProtocolError):
            protocol.decode(packed(hostile))
        with pytest.raises(ProtocolError):
            wire.decode_message(packed(hostile))


def test_wire_json_writes_what_browsers_parse() -> None:
    value = {"created": math.nan, "big": math.inf, "text": "naïve ✓", "items": ("a", 1)}
    text = wire.wire_json(value)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"created": None, "big": None, "text": "naïve ✓", "items": ["a", 1]}
    assert "naïve ✓" in text  # non-ASCII kept, as the store has always written it
