"""Safe structured reprs: any value becomes a bounded ``ReprNode`` tree, whatever it does.

Dispatch follows ``werkzeug/debug/repr.py``: builtin containers and scalars are shown
structurally with caps per kind, a depth cap and a recursion guard; anything else shows its
own ``repr`` cut to ``options.repr_text`` characters. Every call into user code (``repr``,
iteration of foreign mappings, ``str`` of the error a repr raised) is guarded, and a shared
``Budget`` bounds the time and the encoded size of one frame's locals. Builtin subclasses
are read through the builtin's own slots (``list.__iter__(value)``), so an overridden
``__iter__`` or ``__len__`` never runs; a subclass that overrides ``__repr__`` is shown by
its own repr instead. ``ReprNode.more`` is left None here: only the caller knows which
held frame and variable a node came from, so it owns the "+" handle; ``represent_more``
renders the next slice once that handle is resolved back to the value.

Guarded text (``safe_text``, ``type_name_of``, ``describe_error``, ``plain_repr``) lives in
``safe_text`` and the secret-name matching in ``secret_names``; both are re-exported here.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import (
    EXACT_NAMES,
    USER_CODE_ERRORS,
    describe_error,
    own_repr,
    safe_text,
    text_cost,
    type_name_of,
)
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.protocol import BRACKETS, ReprNode, Variable

__all__ = [
    "Budget",
    "SECRET_MASK",
    "collapsed",
    "container_shape",
    "represent",
    "represent_more",
    "variables_of",
]

SECRET_MASK = "'********************'"
DEFAULT_BUDGET_SIZE = 512 * 1024
_NODE_COST = 48  # msgpack keys and framing of one node, roughly
_MAX_DEPTH = 32  # whatever options.repr_depth says, the renderer's own recursion stays shallow
_HUGE_INT_BITS = 40_000

# A type whose ``__repr__`` is one of these is shown structurally; the value says how.
_SHAPES: dict[Any, tuple[str, type[Any]]] = {
    str.__repr__: ("str", str),
    bytes.__repr__: ("bytes", bytes),
    bytearray.__repr__: ("bytes", bytearray),
    bool.__repr__: ("bool", bool),
    int.__repr__: ("number", int),
    float.__repr__: ("number", float),
    complex.__repr__: ("number", complex),
    type(None).__repr__: ("none", type(None)),
    list.__repr__: ("list", list),
    tuple.__repr__: ("tuple", tuple),
    set.__repr__: ("set", set),
    frozenset.__repr__: ("frozenset", frozenset),
    deque.__repr__: ("list", deque),
    dict.__repr__: ("dict", dict),
    OrderedDict.__repr__: ("dict", OrderedDict),
    defaultdict.__repr__: ("dict", dict),
    Counter.__repr__: ("dict", dict),
}
# Exact builtin types, with their shape (their names: ``safe_text.EXACT_NAMES``, the same
# types): C types cannot be changed, so this skips the MRO walk of ``own_repr`` for the values
# nearly every frame holds (the capture's hot path). Looked up only when
# ``type(type(value)) is type``, so no metaclass hash runs.
_EXACT_SHAPES: dict[type[Any], tuple[str, type[Any]]] = {
    tp: shape
    for tp, shape in (
        (str, ("str", str)),
        (bytes, ("bytes", bytes)),
        (bytearray, ("bytes", bytearray)),
        (bool, ("bool", bool)),
        (int, ("number", int)),
        (float, ("number", float)),
        (complex, ("number", complex)),
        (type(None), ("none", type(None))),
        (list, ("list", list)),
        (tuple, ("tuple", tuple)),
        (set, ("set", set)),
        (frozenset, ("frozenset", frozenset)),
        (deque, ("list", deque)),
        (dict, ("dict", dict)),
        (OrderedDict, ("dict", OrderedDict)),
        (defaultdict, ("dict", dict)),
    )
}
# Exact scalar types whose repr is short, ASCII and runs no user code, with their kind.
_PLAIN_SCALARS: dict[type[Any], str] = {
    int: "number",
    float: "number",
    bool: "bool",
    type(None): "none",
}
_SEQUENCE_KINDS = frozenset({"list", "tuple", "set", "frozenset"})


class Budget:
    """Time and encoded-size allowance shared by several reprs (one frame's locals)."""

    __slots__ = ("deadline", "remaining")

    def __init__(self, seconds: float, size: int = DEFAULT_BUDGET_SIZE) -> None:
        self.deadline = time.monotonic() + max(0.0, seconds)
        self.remaining = size

    def exhausted(self) -> str | None:
        """Why no more work fits ("time budget" or "size budget"), or None while it does."""
        if self.remaining <= 0:
            return "size budget"
        if time.monotonic() >= self.deadline:
            return "time budget"
        return None

    def spend(self, text: str) -> None:
        """Account for one node carrying ``text``."""
        self.remaining -= _NODE_COST + text_cost(text)


def _is_mapping(tp: type[Any]) -> bool:
    """A foreign Mapping (a dict subclass with its own repr is shown by that repr)."""
    try:
        return issubclass(tp, Mapping) and not issubclass(tp, dict)
    except USER_CODE_ERRORS:
        return False


def _broken_node(what: str, error: BaseException) -> ReprNode:
    return ReprNode(kind="broken", type_name="?", text=f"<broken {what} ({describe_error(error)})>")


def _masked() -> ReprNode:
    return ReprNode(kind="str", type_name="str", text=SECRET_MASK)


class _Renderer:
    """One walk over a value: caps from the options, a shared budget, a recursion guard."""

    def __init__(self, options: Options, budget: Budget) -> None:
        self.options = options
        self.budget = budget
        self.depth_cap = max(0, min(options.repr_depth, _MAX_DEPTH))
        self.active: set[int] = set()
        self.secret = secret_pattern(options)

    def leaf(self, kind: str, type_name: str, text: str, omitted: int = 0) -> ReprNode:
        self.budget.spend(text)
        return ReprNode(kind=kind, type_name=type_name, text=text, omitted=omitted)

    def broken(self, type_name: str, error: BaseException) -> ReprNode:
        return self.leaf("broken", type_name, f"<broken repr ({describe_error(error, 200)})>")

    def node(self, value: object, depth: int) -> ReprNode:
        tp = type(value)
        if type(tp) is type and tp in _PLAIN_SCALARS:  # most leaves: the shortest path
            kind = _PLAIN_SCALARS[tp]
            if self.budget.exhausted() is None and (
                tp is not int or int.bit_length(value) <= _HUGE_INT_BITS  # type: ignore[arg-type]
            ):
                text = repr(value)  # the builtin's own repr: no user code runs
                if len(text) <= self.options.repr_text:
                    self.budget.remaining -= _NODE_COST + len(text)  # ASCII: len is the cost
                    return ReprNode(kind=kind, type_name=EXACT_NAMES[tp], text=text)
        type_name = type_name_of(value)
        reason = self.budget.exhausted()
        if reason is not None:
            return ReprNode(kind="object", type_name=type_name, text=f"<skipped: {reason}>")
        try:
            shape = _EXACT_SHAPES.get(tp) if type(tp) is type else None
            if shape is None:
                shape = _SHAPES.get(own_repr(tp))
            if shape is not None:
                return self.builtin(value, shape[0], shape[1], type_name, depth, 0)
            if _is_mapping(tp):
                return self.container(value, "dict", None, type_name, depth, 0)
            return self.object(value, type_name)
        except USER_CODE_ERRORS as error:
            return self.broken(type_name, error)

    def object(self, value: object, type_name: str) -> ReprNode:
        text = repr(value)
        if not isinstance(text, str):  # pragma: no cover - repr() enforces str
            raise TypeError("__repr__ returned non-string")
        cut, omitted = safe_text(text, self.options.repr_text)
        return self.leaf("object", type_name, cut + ("..." if omitted else ""), 0)

    def builtin(
        self, value: Any, kind: str, base: type[Any], type_name: str, depth: int, offset: int
    ) -> ReprNode:
        if kind == "str":
            limit = max(0, self.options.repr_string)
            total = str.__len__(value)
            text, _ = safe_text(str.__getitem__(value, slice(offset, offset + limit)), limit)
            return self.leaf(kind, type_name, repr(text), max(0, total - offset - limit))
        if kind == "bytes":
            limit = self.options.repr_string
            total = base.__len__(value)
            data = bytes(base.__getitem__(value, slice(offset, offset + max(0, limit))))
            text = repr(data) if base is bytes else f"bytearray({data!r})"
            return self.leaf(kind, type_name, text, max(0, total - offset - limit))
        if kind == "number" and base is int and int.bit_length(value) > _HUGE_INT_BITS:
            return self.leaf(kind, type_name, f"<int of {int.bit_length(value)} bits>")
        if kind in ("number", "bool", "none"):
            text, _ = safe_text(repr(value), self.options.repr_text)
            return self.leaf(kind, type_name, text)
        return self.container(value, kind, base, type_name, depth, offset)

    def container(
        self,
        value: Any,
        kind: str,
        base: type[Any] | None,
        type_name: str,
        depth: int,
        offset: int,
    ) -> ReprNode:
        opening, closing = BRACKETS.get(kind, ("[", "]"))
        if id(value) in self.active:
            return self.leaf("recursion", type_name, f"{opening}...{closing}")
        total = self.length(value, base)
        if depth >= self.depth_cap:
            return self.leaf(kind, type_name, f"{opening}...{closing}", total)
        cap = self.options.repr_pairs if kind == "dict" else self.options.repr_items
        children: list[ReprNode] = []
        self.active.add(id(value))
        try:
            iterator: Iterator[Any] = (
                self.pairs(value, base) if kind == "dict" else base.__iter__(value)  # type: ignore[union-attr]
            )
            for item in islice(iterator, offset, offset + max(0, cap)):
                if self.budget.exhausted() is not None:
                    break
                if kind == "dict":
                    children.append(self.pair(item, depth + 1))
                else:
                    children.append(self.node(item, depth + 1))
        finally:
            self.active.discard(id(value))
        self.budget.spend("")
        omitted = max(0, total - offset - len(children))
        return ReprNode(kind=kind, type_name=type_name, children=tuple(children), omitted=omitted)

    def length(self, value: Any, base: type[Any] | None) -> int:
        if base is not None:
            return int(base.__len__(value))
        try:
            return int(len(value))
        except USER_CODE_ERRORS:
            return 0

    def pairs(self, value: Any, base: type[Any] | None) -> Iterator[Any]:
        if base is not None:
            return iter(base.items(value))
        return iter(value.items())  # a foreign Mapping: user code, guarded by the caller

    def pair(self, item: Any, depth: int) -> ReprNode:
        key, value = item
        key_node = self.node(key, depth)
        if type(key) is str and self.secret.search(key) is not None:
            value_node = _masked()
        else:
            value_node = self.node(value, depth)
        self.budget.spend("")
        return ReprNode(kind="pair", type_name="", children=(key_node, value_node))


def _budget_for(options: Options, budget: Budget | None) -> Budget:
    return budget if budget is not None else Budget(options.repr_budget_seconds)


def represent(value: object, options: Options, *, budget: Budget | None = None) -> ReprNode:
    """Render any value as a bounded ``ReprNode``; never raises, whatever the value does."""
    renderer = _Renderer(options, _budget_for(options, budget))
    try:
        return renderer.node(value, 0)
    except USER_CODE_ERRORS as error:  # only a bug in this module gets here
        return _broken_node("repr", error)


def container_shape(value: object) -> tuple[str, type[Any] | None] | None:
    """How the renderer shows ``value`` with children or a cut text, or None for a leaf.

    The kind (``str``, ``bytes``, ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``) and
    the builtin type to read it through (None for a foreign Mapping, read by its ``items``).
    """
    try:
        tp = type(value)
        shape = _SHAPES.get(own_repr(tp))
        if shape is not None and shape[0] not in ("number", "bool", "none"):
            return shape
        if shape is None and _is_mapping(tp):
            return "dict", None
    except USER_CODE_ERRORS:
        return None
    return None


def represent_more(
    value: object, options: Options, offset: int, *, budget: Budget | None = None
) -> ReprNode:
    """The next slice of a string, bytes or container from ``offset`` (the "+" expansion)."""
    renderer = _Renderer(options, _budget_for(options, budget))
    type_name = type_name_of(value)
    offset = max(0, offset)
    try:
        shape = _SHAPES.get(own_repr(type(value)))
        if shape is not None and (shape[0] in _SEQUENCE_KINDS or shape[0] in ("str", "bytes")):
            return renderer.builtin(value, shape[0], shape[1], type_name, 0, offset)
        if shape is not None and shape[0] == "dict":
            return renderer.container(value, "dict", shape[1], type_name, 0, offset)
        if shape is None and _is_mapping(type(value)):
            return renderer.container(value, "dict", None, type_name, 0, offset)
        return renderer.node(value, 0)
    except USER_CODE_ERRORS as error:
        return renderer.broken(type_name, error)


def collapsed(value: object) -> ReprNode:
    """A mapping shown elsewhere in the report (the request's environ, in the Request
    panel) as ``{...}`` with its size: "+" lists it while the frame is held."""
    size = dict.__len__(value) if isinstance(value, dict) else 0  # no user code runs
    return ReprNode(kind="dict", type_name=type_name_of(value), text="{...}", omitted=size)


def variables_of(
    namespace: Mapping[str, object],
    options: Options,
    budget: Budget | None = None,
    shown_elsewhere: object | None = None,
) -> tuple[Variable, ...]:
    """The first ``options.max_locals`` names of a namespace, in order, secrets masked;
    a variable holding ``shown_elsewhere`` (the request's environ) is ``collapsed``."""
    budget = _budget_for(options, budget)
    out: list[Variable] = []
    try:
        items = list(islice(namespace.items(), max(0, options.max_locals)))
    except USER_CODE_ERRORS as error:
        return (Variable(name="?", value=_broken_node("locals", error)),)
    secret = secret_pattern(options)
    for key, value in items:
        name = safe_text(key, 200)[0] if isinstance(key, str) else type_name_of(key)
        if secret.search(name) is not None:
            node = _masked()
        elif value is shown_elsewhere and value is not None:
            node = collapsed(value)
        else:
            node = represent(value, options, budget=budget)
        out.append(Variable(name=name, value=node))
    return tuple(out)
