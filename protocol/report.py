"""A captured error as data: the report model the agent builds and the broker stores.

These frozen, slotted dataclasses are what ``capture`` and ``reprs`` produce, what a
``ReportMessage`` carries and what the dashboard renders (its TypeScript types mirror them:
``tests/agent/test_protocol.py``). Import them from ``debugbroker.protocol``.

This module imports no zmq, asyncio or sqlite.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ReprNode",
    "Variable",
    "FrameInfo",
    "ExceptionInfo",
    "RequestInfo",
    "Panel",
    "Report",
    "BRACKETS",
    "format_node",
    "new_frame_info",
    "new_node",
    "new_variable",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReprNode:
    """A value rendered safely as a tree: never HTML, always bounded.

    ``kind`` says how to colour and expand it: ``str``, ``bytes``, ``number``, ``bool``,
    ``none``, ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``, ``pair`` (a dict
    item: children are key and value), ``object``, ``recursion``, ``broken``.
    ``text`` is the node's own text (a scalar's repr, or an object's repr); containers
    show their ``children``. ``omitted`` counts the children (or characters, for
    strings) left out; ``more`` is a handle the dashboard passes back to expand it.
    """

    kind: str
    type_name: str
    text: str = ""
    children: tuple[ReprNode, ...] = ()
    omitted: int = 0
    more: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A named value: a local variable or an attribute."""

    name: str
    value: ReprNode


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameInfo:
    """One traceback frame as captured, with its source context and locals.

    ``index`` is unique within a report; ``frame_id`` is the agent's handle on the live
    frame (None when the agent does not hold it). ``context_start`` is the line number of
    ``context[0]``. Columns are 0-based offsets into the failing line (3.11+), or None.
    """

    index: int
    frame_id: str | None
    filename: str
    lineno: int
    function: str
    module: str
    context_start: int
    context: tuple[str, ...]
    locals: tuple[Variable, ...]
    end_lineno: int | None = None
    colno: int | None = None
    end_colno: int | None = None
    is_library: bool = False
    hidden: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionInfo:
    """One exception of a chain or group, with its own frames.

    ``chain`` says how this exception is linked to the one printed before it in
    ``Report.exceptions``: ``"cause"`` ("The above exception was the direct cause…"),
    ``"context"`` ("During handling of the above exception…") or None for the first.
    ``exceptions`` holds the sub-exceptions of an exception group; ``omitted`` counts the
    sub-exceptions left out (CPython shows 15 per group and elides groups nested deeper than
    10 levels: such a group has no frames and no ``exceptions``).
    """

    type_name: str
    module: str
    message: str
    frames: tuple[FrameInfo, ...]
    notes: tuple[str, ...] = ()
    chain: str | None = None
    exceptions: tuple[ExceptionInfo, ...] = ()
    omitted: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInfo:
    """The request that failed, as the app saw it (secrets masked).

    ``query``, ``form``, ``cookies`` and ``environ`` are name/value pairs as text. ``form``
    holds only what the app itself parsed (the body is never read); ``form_note`` says why
    a form-encoded request shows none.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    environ: tuple[tuple[str, str], ...] = ()
    form_note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    """Where a report came from, beside the traceback: a titled table of name/text pairs.

    ``title`` names the source (``"Context"`` for ``capture_exception``'s keywords, ``"Log
    record"``, ``"Task"``, ``"Job"``, ``"Test"``); the texts are safe reprs, secrets masked.
    """

    title: str
    items: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A captured error: the chain in CPython's print order and the plain-text traceback.

    ``text`` is exactly ``"".join(traceback.format_exception(exc))`` in the app process.
    ``exceptions`` lists the chain root-cause first, as CPython prints it; the last entry
    is the exception that was raised.

    ``tracebacklimit`` is ``sys.tracebacklimit`` (never below 0, as CPython applies it) when
    it left frames out of ``text``: each traceback printed there keeps only its outermost
    ``tracebacklimit`` frames, while ``exceptions`` keeps the innermost frames whatever the
    limit. None when the text prints every frame.
    """

    id: str
    agent_id: str
    created: float
    type_name: str
    message: str
    text: str
    exceptions: tuple[ExceptionInfo, ...]
    request: RequestInfo | None = None
    pid: int = 0
    host: str = ""
    app: str = ""
    paused: bool = False  # a breakpoint() pause (debugbroker.set_trace), not an error
    panels: tuple[Panel, ...] = ()  # the task, log record or caller's context it came from
    step_of: str = ""  # a pause after a step: the paused report the step was taken from
    step: str = ""  # that step's action (``messages.StepAction``)
    tracebacklimit: int | None = None


# The brackets of each container kind, as ``repr`` writes them.
BRACKETS = {
    "list": ("[", "]"),
    "tuple": ("(", ")"),
    "set": ("{", "}"),
    "frozenset": ("frozenset({", "})"),
    "dict": ("{", "}"),
}


def format_node(node: ReprNode) -> str:
    """A ``ReprNode`` as one line of plain text (for ``dump()`` and logs)."""
    if node.kind == "pair" and len(node.children) == 2:
        return f"{format_node(node.children[0])}: {format_node(node.children[1])}"
    if node.kind in BRACKETS and (node.children or not node.text):
        opening, closing = BRACKETS[node.kind]
        parts = [format_node(child) for child in node.children]
        if node.omitted:
            parts.append(f"...{node.omitted} more")
        trailing = "," if node.kind == "tuple" and len(parts) == 1 else ""
        body = opening + ", ".join(parts) + trailing + closing
        if node.type_name not in (node.kind, "dict", "list", "tuple", "set", "frozenset"):
            return f"{node.type_name}({body})"
        return body
    if node.omitted and node.kind in ("str", "bytes"):
        return f"{node.text}...({node.omitted} more)"
    return node.text


# Fast constructors for the capture's hot path. A frozen dataclass's ``__init__`` sets each
# field through ``object.__setattr__`` (a capture makes hundreds of nodes and variables, and
# a ``FrameInfo`` per frame); these set the same slots through their member descriptors in
# about a third of the time. The objects are the same in every
# respect (fields, equality, hash); ``tests/agent/test_protocol.py`` checks that these
# functions take exactly the class's fields with the same defaults.
_NEW = object.__new__
_NODE_KIND = ReprNode.__dict__["kind"].__set__
_NODE_TYPE_NAME = ReprNode.__dict__["type_name"].__set__
_NODE_TEXT = ReprNode.__dict__["text"].__set__
_NODE_CHILDREN = ReprNode.__dict__["children"].__set__
_NODE_OMITTED = ReprNode.__dict__["omitted"].__set__
_NODE_MORE = ReprNode.__dict__["more"].__set__
_VARIABLE_NAME = Variable.__dict__["name"].__set__
_VARIABLE_VALUE = Variable.__dict__["value"].__set__
_FRAME_SETTERS = {name: FrameInfo.__dict__[name].__set__ for name in FrameInfo.__slots__}


def new_node(
    kind: str,
    type_name: str,
    text: str = "",
    children: tuple[ReprNode, ...] = (),
    omitted: int = 0,
    more: str | None = None,
) -> ReprNode:
    """``ReprNode(kind=kind, ...)``, made faster (see above)."""
    node: ReprNode = _NEW(ReprNode)
    _NODE_KIND(node, kind)
    _NODE_TYPE_NAME(node, type_name)
    _NODE_TEXT(node, text)
    _NODE_CHILDREN(node, children)
    _NODE_OMITTED(node, omitted)
    _NODE_MORE(node, more)
    return node


def new_variable(name: str, value: ReprNode) -> Variable:
    """``Variable(name=name, value=value)``, made faster (see above)."""
    variable: Variable = _NEW(Variable)
    _VARIABLE_NAME(variable, name)
    _VARIABLE_VALUE(variable, value)
    return variable


def new_frame_info(
    index: int,
    frame_id: str | None,
    filename: str,
    lineno: int,
    function: str,
    module: str,
    context_start: int,
    context: tuple[str, ...],
    locals: tuple[Variable, ...],
    end_lineno: int | None = None,
    colno: int | None = None,
    end_colno: int | None = None,
    is_library: bool = False,
    hidden: bool = False,
) -> FrameInfo:
    """``FrameInfo(index=index, ...)``, made faster (see above)."""
    frame: FrameInfo = _NEW(FrameInfo)
    setters = _FRAME_SETTERS
    setters["index"](frame, index)
    setters["frame_id"](frame, frame_id)
    setters["filename"](frame, filename)
    setters["lineno"](frame, lineno)
    setters["function"](frame, function)
    setters["module"](frame, module)
    setters["context_start"](frame, context_start)
    setters["context"](frame, context)
    setters["locals"](frame, locals)
    setters["end_lineno"](frame, end_lineno)
    setters["colno"](frame, colno)
    setters["end_colno"](frame, end_colno)
    setters["is_library"](frame, is_library)
    setters["hidden"](frame, hidden)
    return frame
