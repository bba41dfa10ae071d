"""The messages agents and the broker exchange, each a frozen dataclass tagged with a ``kind``.

``Message`` is their union. A report's contents are the model in ``report``; the msgpack
codec is in ``codec``; the package ``debugbroker.protocol`` exports all of them.

This module imports no zmq, asyncio or sqlite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

from debugbroker.protocol.report import Report, ReprNode

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_HELD_IDS",
    "CONSOLE_FRAME_ID",
    "RELEASED",
    "BUSY",
    "DISABLED",
    "TIMEOUT",
    "GONE",
    "STOPPING",
    "BAD_ANSWER",
    "NOT_PAUSED",
    "FAILURE_REASONS",
    "Hello",
    "Welcome",
    "Refused",
    "HelloRequest",
    "Ping",
    "Heartbeat",
    "ReportMessage",
    "Stored",
    "RepeatCount",
    "Repeats",
    "MAX_REPEAT_COUNTS",
    "MAX_REPEATS",
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
    "StepAction",
    "STEP_ACTIONS",
    "Step",
    "Release",
    "Released",
    "ExpandRequest",
    "ExpandResult",
    "SourceRequest",
    "SourceResult",
    "BreakpointSpec",
    "SetBreakpoints",
    "BreakpointStatus",
    "BREAKPOINT_STATUSES",
    "BreakpointState",
    "BreakpointStates",
    "MAX_BREAKPOINTS",
    "Message",
    "MESSAGE_TYPES",
]

# 2: the secret no longer crosses the wire (proofs in hello and welcome; ``keys``).
PROTOCOL_VERSION = 2
# Breakpoints in one ``SetBreakpoints`` or ``BreakpointStates``: the receiver reads no more.
MAX_BREAKPOINTS = 256
# Report ids in one hello's ``held`` or one ``Released``: the receiver reads no more.
MAX_HELD_IDS = 1024
# Entries in one ``Repeats``, and the largest ``count`` of one entry.
MAX_REPEAT_COUNTS = 1024
MAX_REPEATS = 1_000_000_000

# Why a request was not carried out: the ``reason`` of the answers that can fail (set by the
# agent where it refuses) and of the broker's own failures and HTTP error answers
# (docs/api.md). ``None`` means the request was carried out: an eval whose code raised has
# ``ok=False`` and no reason. The set is closed; the broker answers any other string an agent
# sends as ``BAD_ANSWER``.
RELEASED = "released"  # the agent no longer holds the frame (or never kept it): 409
BUSY = "busy"  # too many evals are running or stuck; try again when one ends: 503
DISABLED = "disabled"  # code execution is off (evalex=False), or no process console: 403
TIMEOUT = "timeout"  # no answer within the time limit (broker's wait, agent's completion): 504
GONE = "gone"  # the agent's process exited or its connection closed: 410
STOPPING = "stopping"  # the broker is shutting down: 503 (broker only)
BAD_ANSWER = "bad_answer"  # the agent answered with the wrong kind of message: 502 (broker only)
NOT_PAUSED = "not_paused"  # Continue on a report whose thread already went on: 409 (broker only)
FAILURE_REASONS = (RELEASED, BUSY, DISABLED, TIMEOUT, GONE, STOPPING, BAD_ANSWER, NOT_PAUSED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """Agent → broker, first message on (re)connect: who this process is, and its proof.

    ``proof`` is ``keys.hello_proof`` of the agent id and ``nonce`` (fresh per hello): it shows
    the agent holds the shared secret without sending it. Both default to empty only so that
    a hello of protocol 1 (which carried the secret itself) decodes and gets a clear refusal.
    """

    kind: ClassVar[str] = "hello"
    agent_id: str
    nonce: str = ""
    proof: str = ""
    pid: int
    host: str
    app: str
    python: str
    started: float
    evalex: bool
    protocol: int = PROTOCOL_VERSION
    console: bool = False  # offers a console on the live process (CONSOLE_FRAME_ID)
    eval_timeout: float = 0.0  # the agent's own time limit per eval (0: none)
    paused: tuple[str, ...] = ()  # reports whose thread waits at breakpoint() for Continue
    held: tuple[str, ...] = ()  # reports whose frames it still holds (at most MAX_HELD_IDS)
    breakpoints: int = 0  # breakpoints in the last list a broker gave it (SetBreakpoints)


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """Broker → agent: hello accepted; the dashboard URL for links in 500 pages.

    ``proof`` is ``keys.welcome_proof`` of the hello's agent id and nonce and the URL: the
    agent trusts the broker (sends reports, runs requests) only once it matches.
    """

    kind: ClassVar[str] = "welcome"
    dashboard_url: str
    proof: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """Broker → agent: hello refused (wrong secret, protocol mismatch)."""

    kind: ClassVar[str] = "refused"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloRequest:
    """Broker → agent: the broker does not know this agent (it restarted); say hello again."""

    kind: ClassVar[str] = "hello_request"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Broker → agent: are you there? The agent answers with a heartbeat at once.

    The broker pings an agent while it waits for its eval: a send to a process whose
    connection is gone fails at once, so an eval never waits on a dead worker.
    """

    kind: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Agent → broker, every few seconds: still alive, and how many frames it holds."""

    kind: ClassVar[str] = "heartbeat"
    held_frames: int
    dropped_reports: int = 0
    held_reports: int = 0  # reports whose frames are held
    held_bytes: int = 0  # the registry's memory estimate of the held frames


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMessage:
    """Agent → broker: a captured error."""

    kind: ClassVar[str] = "report"
    report: Report


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """Broker → agent: these reports are committed to the broker's store (the report
    acknowledgement). Sent only after the commit, so a report named here survives the
    broker being killed; a report never named here may have been lost with it. At most
    ``MAX_HELD_IDS`` ids per message.
    """

    kind: ClassVar[str] = "stored"
    report_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatCount:
    """Errors an agent counted, not captured (its storm policy, docs/limits.md): ``count``
    repeats of the error whose last full report it sent is ``report_id``, the first at
    ``first`` and the last at ``last`` (times of one clock hour: the group's histogram)."""

    report_id: str
    count: int  # 1 to MAX_REPEATS
    first: float
    last: float  # first <= last, in the same hour (int(t // 3600))


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeats:
    """Agent → broker, at most once a second and before its bye: the repeats it counted
    since the last one (``limits.check_repeats`` says what the broker accepts). Sent only
    once the reports they name are sent, so the broker knows those first."""

    kind: ClassVar[str] = "repeats"
    counts: tuple[RepeatCount, ...]  # at most MAX_REPEAT_COUNTS


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalRequest:
    """Broker → agent: run ``code`` in the held frame ``frame_id``."""

    kind: ClassVar[str] = "eval"
    request_id: str
    frame_id: str
    code: str
    # The dashboard's REPL mode: a compound statement (for, def, with…) ends with an empty
    # line, so the answer is ``incomplete`` until then.
    interactive: bool = False


# ``frame_id`` of the process console (``DebuggedApplication(app, console=True)``): evals,
# completions and interrupts addressed to it run in a namespace of the live process.
CONSOLE_FRAME_ID = "console"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputChunk:
    """One piece of an eval's output, in the order it happened.

    ``stream`` is ``stdout``, ``stderr`` (``text`` holds what was written) or ``result``
    (``value`` holds an echoed expression's value, as the interpreter would print it).
    """

    stream: str
    text: str = ""
    value: ReprNode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """Agent → broker: what an eval printed and returned, or why it failed.

    ``ok`` is False when the code raised (``error`` holds the formatted traceback) or
    could not run at all (``reason`` is one of ``FAILURE_REASONS``: ``released``,
    ``disabled``, ``busy``…, and ``error`` says it for people). ``incomplete`` means the
    input needs more lines and nothing ran. ``output`` is all stdout and stderr text,
    ``result`` the last echoed value, ``chunks`` both in order.
    """

    kind: ClassVar[str] = "eval_result"
    request_id: str
    ok: bool
    output: str = ""
    result: ReprNode | None = None
    error: str | None = None
    incomplete: bool = False
    chunks: tuple[OutputChunk, ...] = ()
    reason: str | None = None  # why nothing ran (FAILURE_REASONS); None when the code ran


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRequest:
    """Broker → agent: completions for the name ending ``text`` in frame ``frame_id``."""

    kind: ClassVar[str] = "complete"
    request_id: str
    frame_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteResult:
    """Agent → broker: each match replaces the last ``replace`` characters of the text;
    when ``ok`` is False, ``reason`` (``FAILURE_REASONS``) and ``error`` say why."""

    kind: ClassVar[str] = "complete_result"
    request_id: str
    ok: bool
    matches: tuple[str, ...] = ()
    replace: int = 0
    error: str | None = None
    reason: str | None = None  # FAILURE_REASONS


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptRequest:
    """Broker → agent: raise KeyboardInterrupt in every eval running in ``frame_id``."""

    kind: ClassVar[str] = "interrupt"
    request_id: str
    frame_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptResult:
    """Agent → broker: how many running evals were interrupted."""

    kind: ClassVar[str] = "interrupt_result"
    request_id: str
    interrupted: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye:
    """Agent → broker, as its process exits: mark it gone now, not after the heartbeat timeout."""

    kind: ClassVar[str] = "bye"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Broker → agent: let the thread paused at ``breakpoint()`` in ``report_id`` go on."""

    kind: ClassVar[str] = "resume"
    report_id: str


# How a paused thread goes on: to the next line of its frame ("over"), into the next call
# ("into"), to its caller ("out"), to a line of its frame ("until"), or on ("continue").
StepAction = Literal["over", "into", "out", "until", "continue"]
STEP_ACTIONS: tuple[StepAction, ...] = ("over", "into", "out", "until", "continue")


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """Broker → agent: the thread paused in ``report_id`` takes one step, then pauses again.

    Its next stop is a new paused report whose ``step_of`` is ``report_id``. ``line`` is the
    target of ``until`` (a line of the paused frame's file), 0 otherwise.
    """

    kind: ClassVar[str] = "step"
    report_id: str
    action: StepAction
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """Agent → broker: the thread paused in ``report_id`` goes on (``continue``, ``timeout``,
    ``broker_gone``, or ``step``: it pauses again at its next stop, a report whose ``step_of``
    names this one)."""

    kind: ClassVar[str] = "resumed"
    report_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Broker → agent: drop the frames held for ``report_id`` (the dashboard's Release)."""

    kind: ClassVar[str] = "release"
    report_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """Agent → broker: these reports' frames are no longer held (LRU, caps or Release)."""

    kind: ClassVar[str] = "released"
    report_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandRequest:
    """Broker → agent: the next slice of a truncated value of a held frame (the "+").

    ``handle`` is a ``ReprNode.more`` the agent gave out; ``offset`` is how many children
    (or characters, for a string) the dashboard already shows.
    """

    kind: ClassVar[str] = "expand"
    request_id: str
    frame_id: str
    handle: str
    offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandResult:
    """Agent → broker: the value from ``offset`` on, or why it cannot be shown (``reason``
    when the frame is not there to ask, ``FAILURE_REASONS``; None when the value itself
    cannot be shown: gone from the frame, masked…)."""

    kind: ClassVar[str] = "expand_result"
    request_id: str
    ok: bool
    node: ReprNode | None = None
    error: str | None = None
    reason: str | None = None  # FAILURE_REASONS


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRequest:
    """Broker → agent: the whole source file of a held frame (never a path from outside)."""

    kind: ClassVar[str] = "source"
    request_id: str
    frame_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceResult:
    """Agent → broker: the lines of the frame's file as the process loaded them (or why
    not: ``reason`` as in ``ExpandResult``)."""

    kind: ClassVar[str] = "source_result"
    request_id: str
    ok: bool
    filename: str = ""
    lines: tuple[str, ...] = ()
    truncated: bool = False
    error: str | None = None
    reason: str | None = None  # FAILURE_REASONS


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakpointSpec:
    """One breakpoint as the dashboard set it: pause at ``line`` of ``file`` (a code file name
    as the agent reports it in frames), when ``condition`` (a Python expression evaluated in
    the frame; empty: always) is true, from its ``hit_count``-th such hit on (0 or 1: every
    hit). A disabled one stays listed but never pauses."""

    id: str
    file: str
    line: int
    condition: str = ""
    hit_count: int = 0
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBreakpoints:
    """Broker → agent: every breakpoint this agent should have (the whole list, so a lost or
    repeated message cannot leave a stale one armed); sent after each welcome and change."""

    kind: ClassVar[str] = "set_breakpoints"
    breakpoints: tuple[BreakpointSpec, ...] = ()


# Where a breakpoint stands in one agent: "armed" (it pauses when reached), "pending" (its
# file is not loaded in the process yet: armed once it is), "disabled", "refused" (never
# armed: ``reason`` says why), "error" (armed, but its condition failed when last reached).
BreakpointStatus = Literal["armed", "pending", "disabled", "refused", "error"]
BREAKPOINT_STATUSES: tuple[BreakpointStatus, ...] = (
    "armed",
    "pending",
    "disabled",
    "refused",
    "error",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakpointState:
    """One breakpoint in one agent: its ``status``, why (``reason``, for people), a
    ``warning`` that does not stop it (the file changed on disk), and how often it was hit."""

    id: str
    status: BreakpointStatus
    reason: str = ""
    warning: str = ""
    hits: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakpointStates:
    """Agent → broker: the state of every breakpoint it was given, after each
    ``SetBreakpoints`` and whenever one changes (hits, a condition's error)."""

    kind: ClassVar[str] = "breakpoint_states"
    states: tuple[BreakpointState, ...] = ()


Message = Union[  # noqa: UP007 - a runtime alias that also works on 3.10
    Bye,
    Resume,
    Step,
    Resumed,
    Release,
    Released,
    Hello,
    Welcome,
    Refused,
    HelloRequest,
    Ping,
    Heartbeat,
    ReportMessage,
    Stored,
    Repeats,
    EvalRequest,
    EvalResult,
    CompleteRequest,
    CompleteResult,
    InterruptRequest,
    InterruptResult,
    ExpandRequest,
    ExpandResult,
    SourceRequest,
    SourceResult,
    SetBreakpoints,
    BreakpointStates,
]
# The decoder finds a message's class by its kind here (``codec.unpack_message``): a new
# message joins both the union above and this table.
MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        Bye,
        Resume,
        Step,
        Resumed,
        Release,
        Released,
        Hello,
        Welcome,
        Refused,
        HelloRequest,
        Ping,
        Heartbeat,
        ReportMessage,
        Stored,
        Repeats,
        EvalRequest,
        EvalResult,
        CompleteRequest,
        CompleteResult,
        InterruptRequest,
        InterruptResult,
        ExpandRequest,
        ExpandResult,
        SourceRequest,
        SourceResult,
        SetBreakpoints,
        BreakpointStates,
    )
}
