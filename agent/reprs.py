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
"""

from __future__ import annotations

import re
import time
import types
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterator, Mapping
from functools import lru_cache
from itertools import islice
from typing import Any

from .options import DEFAULT_SECRET_NAMES, Options
from .protocol import ReprNode, Variable

__all__ = [
    "Budget",
    "USER_CODE_ERRORS",
    "SECRET_MASK",
    "collapsed",
    "container_shape",
    "describe_error",
    "format_node",
    "looks_secret",
    "plain_text",
    "represent",
    "represent_more",
    "safe_text",
    "secret_pattern",
    "SecretNames",
    "type_name_of",
    "variables_of",
]

SECRET_MASK = "'********************'"
# What user code may throw at us and we absorb; KeyboardInterrupt still stops the process.
USER_CODE_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)
DEFAULT_BUDGET_SIZE = 512 * 1024
_NODE_COST = 48  # msgpack keys and framing of one node, roughly
_TYPE_NAME_LIMIT = 200
_MAX_DEPTH = 32  # whatever options.repr_depth says, the renderer's own recursion stays shallow
_HUGE_INT_BITS = 40_000

# Read type attributes through ``type``'s own descriptors: a metaclass cannot intercept them.
_TYPE_NAME = type.__dict__["__name__"]
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]

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
# Exact builtin types, with their name and shape: C types cannot be changed, so this skips
# the MRO walk of ``_own_repr`` for the values nearly every frame holds (the capture's hot
# path). Looked up only when ``type(type(value)) is type``, so no metaclass hash runs.
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
_EXACT_NAMES: dict[type[Any], str] = {tp: tp.__name__ for tp in _EXACT_SHAPES}
# Exact scalar types whose repr is short, ASCII and runs no user code, with their kind.
_PLAIN_SCALARS: dict[type[Any], str] = {
    int: "number",
    float: "number",
    bool: "bool",
    type(None): "none",
}
_SEQUENCE_KINDS = frozenset({"list", "tuple", "set", "frozenset"})
_BRACKETS = {
    "list": ("[", "]"),
    "tuple": ("(", ")"),
    "set": ("{", "}"),
    "frozenset": ("frozenset({", "})"),
    "dict": ("{", "}"),
}


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


def text_cost(text: str) -> int:
    """An upper bound of the UTF-8 size of ``text`` without encoding it."""
    return len(text) if text.isascii() else 4 * len(text)


def safe_text(value: str, limit: int) -> tuple[str, int]:
    """``value`` as an exact, encodable ``str`` cut to ``limit`` chars, and the chars cut."""
    total = str.__len__(value)
    if total <= limit and type(value) is str and value.isascii():  # the common case
        return value, 0
    text = str.__getitem__(value, slice(0, max(0, limit)))
    text = str.__str__(text)  # a str subclass becomes a plain str without running its code
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot cross msgpack
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text, max(0, total - limit)


def type_name_of(value: object) -> str:
    """The name of ``type(value)``, read without running any user code."""
    tp = type(value)
    if type(tp) is type:
        exact = _EXACT_NAMES.get(tp)
        if exact is not None:
            return exact
    try:
        name = _TYPE_NAME.__get__(tp)
        return safe_text(name, _TYPE_NAME_LIMIT)[0] if isinstance(name, str) else "?"
    except USER_CODE_ERRORS:
        return "?"


def describe_error(error: BaseException, limit: int = 500) -> str:
    """``"ValueError: message"`` for an error, even when its ``str`` raises."""
    try:
        message = str(error)
        if not isinstance(message, str):
            raise TypeError("__str__ returned non-string")
        message = safe_text(message, limit)[0]
    except USER_CODE_ERRORS:
        message = "<exception str() failed>"
    name = type_name_of(error)
    return f"{name}: {message}" if message else name


class SecretNames:
    """``Options.secret_names`` compiled, with the answer per name remembered.

    The same names come back in every report (a frame's locals, the environ's keys, the
    headers), and one search of the alternation costs about 1.7 µs; a remembered answer is
    a dict lookup. ``search`` answers like ``re.Pattern.search``: None for no match.
    """

    __slots__ = ("pattern", "_seen")

    _REMEMBERED = 4096  # names remembered per pattern; past that, searched every time

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._seen: dict[str, bool] = {}

    def search(self, name: str) -> bool | None:
        """True when ``name`` looks like a credential, else None."""
        found = self._seen.get(name)
        if found is None:
            found = self.pattern.search(name) is not None
            if len(self._seen) < self._REMEMBERED and type(name) is str:
                self._seen[name] = found
        return True if found else None


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> SecretNames:
    try:
        pattern = re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", re.IGNORECASE)
    except re.error:  # a bad pattern must not disable masking: mask by the defaults
        return _compiled(DEFAULT_SECRET_NAMES)
    return SecretNames(pattern)


def secret_pattern(options: Options | None = None) -> SecretNames:
    """The compiled ``Options.secret_names``: names matching it have their values masked."""
    return _compiled(options.secret_names if options is not None else DEFAULT_SECRET_NAMES)


def looks_secret(name: str, options: Options | None = None) -> bool:
    """Whether a variable or key name suggests a credential (masked like Django does)."""
    return secret_pattern(options).search(name) is not None


def _own_repr(tp: type[Any]) -> Any:
    """The ``__repr__`` found first in the MRO of ``tp``, without attribute hooks."""
    for klass in _TYPE_MRO.__get__(tp):
        found = _TYPE_DICT.__get__(klass).get("__repr__")
        if found is not None:
            return found
    return object.__repr__  # pragma: no cover - object always defines it


def _is_mapping(tp: type[Any]) -> bool:
    """A foreign Mapping (a dict subclass with its own repr is shown by that repr)."""
    try:
        return issubclass(tp, Mapping) and not issubclass(tp, dict)
    except USER_CODE_ERRORS:
        return False


# Reprs CPython writes in C from fields of the object or its type: no user code runs.
_BUILTIN_OBJECT_REPRS = frozenset(
    {object.__repr__, types.FunctionType.__repr__, type.__repr__}
)


def _is_plain(value: object) -> bool:
    """An exact bool, None, float, small int, or short tuple of small ints."""
    tp = type(value)
    if tp is tuple:
        items: tuple[object, ...] = value  # type: ignore[assignment]
        return len(items) <= 8 and all(type(item) is int and _is_plain(item) for item in items)
    if tp is int:
        return -(2**63) <= value <= 2**63  # type: ignore[operator]
    return tp is bool or tp is float or value is None


def plain_text(value: object, options: Options) -> str | None:
    """What ``format_node(represent(value, options))`` gives, for values that need no
    renderer: plain scalars and short int tuples, and objects, functions and classes whose
    repr is CPython's own (``<X object at 0x…>``, ``<function f at 0x…>``, ``<class 'X'>``).
    None for anything else (the server's flags and objects in a WSGI environ are these)."""
    try:
        if _is_plain(value):
            return repr(value)
        if _own_repr(type(value)) in _BUILTIN_OBJECT_REPRS:
            text, omitted = safe_text(repr(value), options.repr_text)
            return text + "..." if omitted else text
    except USER_CODE_ERRORS:
        return None
    return None


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
                    return ReprNode(kind=kind, type_name=_EXACT_NAMES[tp], text=text)
        type_name = type_name_of(value)
        reason = self.budget.exhausted()
        if reason is not None:
            return ReprNode(kind="object", type_name=type_name, text=f"<skipped: {reason}>")
        try:
            shape = _EXACT_SHAPES.get(tp) if type(tp) is type else None
            if shape is None:
                shape = _SHAPES.get(_own_repr(tp))
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
        opening, closing = _BRACKETS.get(kind, ("[", "]"))
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
        shape = _SHAPES.get(_own_repr(tp))
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
        shape = _SHAPES.get(_own_repr(type(value)))
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
    try:
        size = dict.__len__(value) if isinstance(value, dict) else 0  # no user code
    except USER_CODE_ERRORS:  # pragma: no cover - dict.__len__ of a dict cannot fail
        size = 0
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


def format_node(node: ReprNode) -> str:
    """A ``ReprNode`` as one line of plain text (for ``dump()`` and logs)."""
    if node.kind == "pair" and len(node.children) == 2:
        return f"{format_node(node.children[0])}: {format_node(node.children[1])}"
    if node.kind in _BRACKETS and (node.children or not node.text):
        opening, closing = _BRACKETS[node.kind]
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
