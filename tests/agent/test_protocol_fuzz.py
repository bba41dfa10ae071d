"""Property-based fuzzing of the protocol decoder: whatever arrives, only ProtocolError escapes.

Both sides decode bytes from the network with ``protocol.decode``; the relay and the agent
catch ``ProtocolError`` and count the message as malformed. Any other exception would
reach code that does not expect it, so these properties must hold for every input.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import msgpack
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.protocol import ProtocolError

MESSAGE_TYPES: list[type[Any]] = list(typing.get_args(protocol.Message))
KINDS = [cls.kind for cls in MESSAGE_TYPES]
FIELD_NAMES = sorted(
    {field.name for cls in MESSAGE_TYPES for field in dataclasses.fields(cls)}
    | {
        field.name
        for cls in (protocol.Report, protocol.FrameInfo, protocol.ReprNode)
        for field in dataclasses.fields(cls)
    }
)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=50),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES + ["kind"]), st.text(max_size=10))
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=25,
)
# Dicts that look like messages: a real kind, real field names, values of any type.
shaped = st.builds(
    lambda kind, fields: {**fields, "kind": kind},
    st.sampled_from(KINDS),
    st.dictionaries(st.sampled_from(FIELD_NAMES), structures, max_size=8),
)


def decode_or_protocol_error(payload: bytes) -> protocol.Message | None:
    """Decode; ProtocolError is the one allowed failure (anything else fails the test)."""
    try:
        message = protocol.decode(payload)
    except ProtocolError:
        return None
    # What decodes is a real, typed message that survives a round trip.
    assert type(message) in MESSAGE_TYPES
    encoded = protocol.encode(message)  # compared as bytes: NaN != NaN
    assert protocol.encode(protocol.decode(encoded)) == encoded
    return message


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_protocol_error(payload: bytes) -> None:
    decode_or_protocol_error(payload)


@FUZZ
@given(structures)
def test_arbitrary_msgpack_structures_raise_only_protocol_error(value: Any) -> None:
    decode_or_protocol_error(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(shaped)
def test_message_shaped_maps_with_wrong_field_types_raise_only_protocol_error(
    value: dict[str, Any],
) -> None:
    decode_or_protocol_error(msgpack.packb(value, use_bin_type=True))


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_mutated_valid_messages_raise_only_protocol_error(
    cls: type[Any], data: st.DataObject
) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        payload = bytearray(protocol.encode(message))
    except (OverflowError, ValueError):  # an int beyond 64 bits: nothing a peer can send
        assume(False)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        position = data.draw(st.integers(0, max(len(payload) - 1, 0)), label="position")
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="action")
        if action == "flip" and payload:
            payload[position] ^= data.draw(st.integers(1, 255), label="bits")
        elif action == "cut":
            del payload[position:]
        else:
            payload[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    decode_or_protocol_error(bytes(payload))


def test_deep_nesting_and_oversize_raise_protocol_error() -> None:
    for payload in (
        b"\x91" * 200_000 + b"\xc0",  # lists 200k deep
        b"\x81\xa1a" * 100_000 + b"\xc0",  # maps 100k deep
        b"\xdd\xff\xff\xff\xff",  # claims 4 billion items
        b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1),
    ):
        try:
            protocol.decode(payload)
        except ProtocolError:
            continue
        raise AssertionError(f"decoded {payload[:10]!r}...")
