"""The agent's compiled encoder (``agent/encoder.py``) against the reference one in
``protocol``: the agent sends ``encoder.encode``'s bytes, so they must be the reference's
bytes exactly. (The broker's decoder is checked in ``tests/broker/test_wire.py``.)
"""

from __future__ import annotations

import typing
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.protocol import encoder

from .test_protocol_fuzz import FUZZ

MESSAGE_TYPES: list[type[Any]] = list(typing.get_args(protocol.Message))


@settings(FUZZ, max_examples=80)
@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_encode_gives_the_reference_bytes(cls: type[Any], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls), label="message")
    try:
        expected = protocol.encode(message)
    except (OverflowError, ValueError):  # an int beyond 64 bits: nothing a peer can send
        assume(False)
    assert encoder.encode(message) == expected


def captured_report() -> protocol.Report:
    """A real report: a KeyError raised in ``fail`` with a list, a dict and a long string."""

    def fail(items: list[int], table: dict[str, float]) -> None:
        text = "x" * 300  # noqa: F841 - locals the report shows
        raise KeyError(items[0], table)

    try:
        fail([1, 2, 3], {"a": 1.5})
    except KeyError as error:
        return build_report(error, report_id="r1", agent_id="a1", options=Options(), registry=None)
    raise AssertionError("did not raise")


def test_a_captured_report_encodes_like_the_reference() -> None:
    message = protocol.ReportMessage(report=captured_report())
    payload = encoder.encode(message)
    assert payload == protocol.encode(message)
    assert encoder.to_wire(message) == protocol.to_wire(message)
