"""The wire protocol between agents and the broker, the one place both sides agree on.

``report`` is the model of a captured error, ``messages`` the frozen, slotted dataclasses
tagged with a ``kind`` (``Message`` is their union), ``codec`` the reference msgpack codec,
``encoder`` the agent's generated encoder, ``limits`` what both sides refuse, and ``keys``
what both sides derive from the shared secret (CurveZMQ keys, hello and welcome proofs).
The broker stores and serves the same wire dicts as JSON, so the dashboard's TypeScript
types mirror these classes (``tests/agent/test_protocol.py`` checks ``frontend/src/api/types.ts``).

Importing it loads msgpack and nothing else of debugbroker: no zmq, asyncio or sqlite.
"""

from __future__ import annotations

from debugbroker.protocol import keys
from debugbroker.protocol.codec import (
    decode,
    encode,
    fields_of,
    from_wire,
    to_wire,
    unpack_message,
)
from debugbroker.protocol.limits import (
    MAX_GROUP_NESTING,
    MAX_MESSAGE_BYTES,
    MAX_REPR_NESTING,
    ProtocolError,
    check_nesting,
)
from debugbroker.protocol.messages import (
    CONSOLE_FRAME_ID,
    MAX_HELD_IDS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Bye,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    ExpandResult,
    Heartbeat,
    Hello,
    HelloRequest,
    InterruptRequest,
    InterruptResult,
    Message,
    OutputChunk,
    Ping,
    Refused,
    Release,
    Released,
    ReportMessage,
    Resume,
    Resumed,
    SourceRequest,
    SourceResult,
    Stored,
    Welcome,
)
from debugbroker.protocol.report import (
    BRACKETS,
    ExceptionInfo,
    FrameInfo,
    Panel,
    Report,
    ReprNode,
    RequestInfo,
    Variable,
    format_node,
)

__all__ = [
    "keys",
    "ReprNode",
    "Variable",
    "FrameInfo",
    "ExceptionInfo",
    "RequestInfo",
    "Panel",
    "Report",
    "BRACKETS",
    "format_node",
    "PROTOCOL_VERSION",
    "MAX_HELD_IDS",
    "CONSOLE_FRAME_ID",
    "Hello",
    "Welcome",
    "Refused",
    "HelloRequest",
    "Ping",
    "Heartbeat",
    "ReportMessage",
    "Stored",
    "EvalRequest",
    "EvalResult",
    "OutputChunk",
    "CompleteRequest",
    "CompleteResult",
    "InterruptRequest",
    "InterruptResult",
    "Bye",
    "Resume",
    "Resumed",
    "Release",
    "Released",
    "ExpandRequest",
    "ExpandResult",
    "SourceRequest",
    "SourceResult",
    "Message",
    "MESSAGE_TYPES",
    "MAX_MESSAGE_BYTES",
    "MAX_REPR_NESTING",
    "MAX_GROUP_NESTING",
    "ProtocolError",
    "check_nesting",
    "encode",
    "decode",
    "unpack_message",
    "to_wire",
    "from_wire",
    "fields_of",
]
