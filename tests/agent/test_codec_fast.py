"""The fast decoder accepts exactly what the thorough one accepts, and builds the same.

``protocol.decode`` first tries converters compiled per type (no error bookkeeping) and
falls back to the thorough ``_build`` only to explain a rejection; the two must agree on
every input, valid or not.
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from debugbroker.agent import protocol
from debugbroker.agent.protocol import ProtocolError
from tests.agent.test_protocol_fuzz import FUZZ, MESSAGE_TYPES, shaped


def _thorough(cls: type[Any], data: Any) -> bytes | None:
    try:
        return protocol.encode(protocol._build(cls, data, cls.__name__))
    except ProtocolError:
        return None


def _fast(cls: type[Any], data: Any) -> bytes | None:
    try:
        return protocol.encode(protocol._fast(cls)(data))
    except protocol._Mismatch:
        return None


def _agree(cls: type[Any], data: Any) -> None:
    assert _fast(cls, data) == _thorough(cls, data)  # as bytes: NaN != NaN


@FUZZ
@given(shaped)
def test_message_shaped_maps_decode_the_same_or_fail_in_both(value: dict[str, Any]) -> None:
    cls = protocol._MESSAGE_TYPES[value["kind"]]
    _agree(cls, msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False))


@FUZZ
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_valid_messages_decode_the_same(cls: type[Any], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        payload = protocol.encode(message)
    except (OverflowError, ValueError):  # an int beyond 64 bits: nothing a peer can send
        return
    wire = msgpack.unpackb(payload, raw=False)
    assert _fast(cls, wire) is not None
    _agree(cls, wire)


def test_near_misses_are_rejected_like_the_thorough_decoder() -> None:
    result = {"kind": "eval_result", "request_id": "r", "ok": True}
    for change in (
        {"ok": 1},  # an int is not a bool
        {"result": {"kind": "int", "type_name": "int", "omitted": True}},  # a bool, not an int
        {"chunks": [{"stream": "result", "value": None}, "text"]},
        {"chunks": {"stream": "stdout"}},  # a map, not a list
        {"request_id": None},
    ):
        _agree(protocol.EvalResult, result | change)
        assert _fast(protocol.EvalResult, result | change) is None
    heartbeat = {"held_frames": 1, "dropped_reports": 0}
    _agree(protocol.Heartbeat, heartbeat)
    _agree(
        protocol.Hello,
        {
            "agent_id": "a",
            "secret": "s",
            "pid": 1,
            "host": "h",
            "app": "x",
            "python": "3",
            "started": 1,
            "evalex": False,
        },
    )  # int as float
