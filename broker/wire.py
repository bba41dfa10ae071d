"""Agent messages as the broker reads them: decoded and checked in C by msgspec.

In an error storm every report passes through here. ``protocol.decode`` walks the type
hints in Python, and more work turns the result into the JSON the store keeps; msgspec
checks the same dataclasses in C for a fraction of that (BENCHMARKS.md's storm section),
so the broker uses it for every message:

- msgspec decodes the payload straight into the protocol's dataclasses.
- Anything msgspec refuses goes to ``protocol.decode``, which accepts it or raises
  ``ProtocolError`` saying exactly why. So the broker accepts what the reference decoder
  accepts, with one difference: msgspec skips a field the protocol does not know without
  reading it, so a broken UTF-8 string there is ignored with the field, where msgpack
  refuses the whole message. ``tests/broker/test_wire.py`` checks that with hypothesis.
- An eval's or completion's answer comes as a wire dict (``WireResult``): the console
  answers and stores it as JSON, so it never needs the dataclass. It holds the data of
  ``protocol.to_wire``, but with tuples where it has lists (``msgspec.to_builtins`` keeps
  tuples, faster than making lists): both are JSON arrays.
- A report comes as its checked dataclass (``WireReport``): the store keeps it as JSON,
  which ``wire_json`` writes straight from the dataclass (the same text as from its wire
  dict: msgspec writes a dataclass's fields in order, as ``to_builtins`` makes the dict's
  keys). Turning the whole report into dicts first was a fifth of the event loop's time
  in a storm (BENCHMARKS.md section 8); what the relay reads of it (its list row,
  fingerprint, held frames) comes from ``report_view``, a small wire dict that the broker's
  walks over a report (``frames.report_frames``, ``grouping``) take as they take the full one.

The agent never imports this module: it stays on stdlib, pyzmq and msgpack.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import msgspec

from debugbroker import protocol
from debugbroker.protocol import (
    CompleteResult,
    EvalResult,
    ExceptionInfo,
    Message,
    ProtocolError,
    Report,
    ReportMessage,
)

__all__ = ["decode_message", "report_view", "wire_json", "WireReport", "WireResult"]


@dataclasses.dataclass(frozen=True, slots=True)
class WireReport:
    """A report message as the broker takes it: the checked report (``wire_json`` gives
    the JSON the store keeps) and the size of the message that carried it."""

    report: Report
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class WireResult:
    """An eval's or a completion's answer as the broker takes it: its class (``EvalResult``
    or ``CompleteResult``), its request id, its failure reason (``protocol.FAILURE_REASONS``,
    None when the request was carried out) and its checked wire dict, ``kind``,
    ``request_id`` and ``reason`` included (``protocol.to_wire`` of the message, tuples for
    lists). The console answers and stores that dict as JSON, so it never needs the dataclass."""

    cls: type[EvalResult] | type[CompleteResult]
    request_id: str
    reason: str | None
    wire: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Kind:
    """The one field every message has; msgspec skips the rest without building it."""

    kind: str


_KIND = msgspec.msgpack.Decoder(_Kind)
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    cls.kind: msgspec.msgpack.Decoder(cls) for cls in typing.get_args(Message)
}
_JSON = msgspec.json.Encoder()


def _decode(payload: bytes) -> Message:
    """The message in ``payload``, checked; ``ProtocolError`` for what ``decode`` refuses."""
    if len(payload) > protocol.MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds {protocol.MAX_MESSAGE_BYTES}")
    try:
        decoder = _DECODERS.get(_KIND.decode(payload).kind)
        if decoder is not None:
            message: Message = decoder.decode(payload)
    except Exception:  # noqa: BLE001 - msgspec refused it (DecodeError, UnicodeDecodeError,
        return protocol.decode(payload)  # RecursionError): the reference judges, says why
    if decoder is None:
        return protocol.decode(payload)  # an unknown kind: refused, with the reason
    protocol.check_nesting(message)  # as deep as the reference decoder allows, no deeper
    protocol.check_repeats(message)  # counts the store can add exactly
    return message


def decode_message(payload: bytes) -> Message | WireReport | WireResult:
    """``protocol.decode`` (same inputs accepted, ``ProtocolError`` for the rest), except
    that a report comes as a ``WireReport`` and an eval's or completion's answer as a
    ``WireResult``."""
    message = _decode(payload)
    if isinstance(message, ReportMessage):
        return WireReport(report=message.report, size=len(payload))
    if isinstance(message, (EvalResult, CompleteResult)):
        wire: dict[str, Any] = {"kind": message.kind, **msgspec.to_builtins(message)}
        return WireResult(
            cls=type(message), request_id=message.request_id, reason=message.reason, wire=wire
        )
    return message


def report_view(report: Report) -> dict[str, Any]:
    """What the relay reads of a report, as its wire dict has it: its list row's fields,
    pause and step, the request's URL alone, and of each exception its type, module, frames
    (their index, frame id, file, function and flags: no source, no locals) and
    sub-exceptions. ``report_summary``, ``fingerprint`` and ``report_frames`` give the same
    from it as from the whole wire dict."""
    request = report.request
    return {
        "id": report.id,
        "agent_id": report.agent_id,
        "created": report.created,
        "type_name": report.type_name,
        "message": report.message,
        "exceptions": _exceptions_view(report.exceptions),
        "request": None if request is None else {"url": request.url},
        "pid": report.pid,
        "host": report.host,
        "app": report.app,
        "paused": report.paused,
        "step_of": report.step_of,
    }


def _exceptions_view(exceptions: tuple[ExceptionInfo, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type_name": info.type_name,
            "module": info.module,
            "frames": [
                {
                    "index": frame.index,
                    "frame_id": frame.frame_id,
                    "filename": frame.filename,
                    "function": frame.function,
                    "is_library": frame.is_library,
                    "hidden": frame.hidden,
                }
                for frame in info.frames
            ],
            "exceptions": _exceptions_view(info.exceptions) if info.exceptions else [],
        }
        for info in exceptions
    ]


def wire_json(value: Any) -> str:
    """``value`` (a wire dict, or any JSON-able data) as compact JSON text, non-ASCII kept.

    Like ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, except that a
    float that is not finite (which only a hostile agent sends) becomes ``null``, which
    browsers can parse, where ``json`` writes ``NaN``, which they cannot."""
    return _JSON.encode(value).decode("utf-8")
