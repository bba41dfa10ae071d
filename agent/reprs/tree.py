"""Safe structured reprs: any value becomes a bounded ``ReprNode`` tree, whatever it does.

Dispatch follows ``werkzeug/debug/repr.py``: builtin containers and scalars are shown
structurally with caps per kind, a depth cap and a recursion guard; anything else shows its
own ``repr`` cut to ``options.repr_text`` characters. Every call into user code (``repr``,
iteration of foreign mappings, ``str`` of the error a repr raised) is guarded, and a shared
``Budget`` bounds the time and the encoded size of one frame's locals. Builtin subclasses
are read through the builtin's own slots (``list.__iter__(value)``), so an overridden
``__iter__`` or ``__len__`` never runs; a subclass that overrides ``__repr__`` is shown by
its own repr instead. A caller that holds the values (a held frame's locals, a console
result) passes the variable's name, and every node cut short gets its "+" handle
(``ReprNode.more``) as it is made; ``evals.lookup`` resolves a handle back to the value and
``represent_more`` renders the next slice.

Secrets are masked by name and by value. A pair whose key looks secret (``secret_names``:
a dict's str or bytes key, a ``(name, value)`` tuple such as a header pair) shows
``SECRET_MASK`` for its value; so does a dataclass or attrs field with such a name. Framework
multi-dicts and header objects (Werkzeug ``MultiDict``/``Headers``, Django ``MultiValueDict``
and so ``QueryDict``, Starlette ``ImmutableMultiDict``/``Headers``, ``http.cookies`` cookies)
are recognised by module and class name along their MRO, never imported, and shown as
mappings of every item, so the name rules apply to each. Every string, bytes and repr text
goes through ``secret_values.mask_text`` (URL passwords, ``name=value`` parameters). A secret
inside an opaque object's own ``__repr__`` that none of these patterns finds is shown.

Guarded text (``safe_text``, ``type_name_of``, ``describe_error``, ``plain_repr``) lives in
``safe_text``, the secret-name matching in ``secret_names`` and the value rules in
``secret_values``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from json.encoder import encode_basestring_ascii as _json_string
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
from debugbroker.agent.reprs.secret_values import MASK_MARGIN, mask_bytes, mask_text
from debugbroker.protocol import (
    BRACKETS,
    ReprNode,
    Variable,
    format_node,
    new_node,
    new_variable,
)

__all__ = [
    "EXACT_SHAPES",
    "Budget",
    "LeafNodes",
    "SECRET_MASK",
    "collapsed",
    "container_shape",
    "make_handle",
    "mapping_items",
    "represent",
    "represent_more",
    "shared_leaves",
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
EXACT_SHAPES: dict[type[Any], tuple[str, type[Any]]] = {
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
# Framework types shown as mappings of all their items, found by (top package, class name)
# along the MRO (the agent imports no framework), with how their items are read: "multi" =
# ``items(multi=True)``, "items" = ``items()`` (every header, repeated ones too), "multi_items"
# = ``multi_items()``, "dict" = ``dict.items`` (the builtin's own, no user code runs).
_FRAMEWORK_MAPPINGS: dict[tuple[str, str], str] = {
    ("werkzeug", "MultiDict"): "multi",
    ("werkzeug", "Headers"): "items",
    ("django", "MultiValueDict"): "dict",
    ("starlette", "ImmutableMultiDict"): "multi_items",
    ("starlette", "Headers"): "items",
    ("http", "BaseCookie"): "dict",
}
_MASK_WHOLE = 64 * 1024  # strings up to this long are masked whole (see ``masked_slice``)
_MAX_FRAMEWORK_ITEMS = 10_000  # items read from one framework mapping, to count them
_MAX_KNOWN_TYPES = 4096  # types whose special handling is remembered
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]
_TYPE_MODULE = type.__dict__["__module__"]
_TYPE_NAME = type.__dict__["__name__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]
# type -> None (nothing special), ("mapping", how) or ("fields", names of the shown fields)
_known_types: dict[type[Any], tuple[str, Any] | None] = {}
_SEQUENCE_KINDS = frozenset({"list", "tuple", "set", "frozenset"})
# Kinds a "+" handle can expand, and the longest handle given.
_EXPANDABLE = frozenset({"str", "bytes", "list", "tuple", "set", "frozenset", "dict"})
_MAX_HANDLE = 4_096
_MAX_LEAF_TEXT = 64  # longest text of a leaf node ``LeafNodes`` shares
_MAX_LEAVES = 1_024  # leaf nodes of each kind ``LeafNodes`` remembers (cleared when full)
_MAX_SHARED_LEAVES = 8  # options whose captures share their ``LeafNodes`` (``shared_leaves``)
# Kinds ``container`` renders straight from ``node`` (a tuple may be a masked header pair).
_PLAIN_CONTAINERS = frozenset({"list", "set", "frozenset", "dict"})
# "+" handles already written, by path: the same variable names and positions come back in
# every frame and every report. Cleared when full, so it stays bounded.
_handles: dict[tuple[Any, ...], str | None] = {}
_MAX_HANDLES = 2_048


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


class LeafNodes:
    """Leaf nodes of exact ints and short strs already rendered (and dict pairs of two such
    leaves under a str key), with their cost, shared by
    every later equal value (a node is immutable and carries no handle when complete). Each
    kind is cleared when it holds ``_MAX_LEAVES``, so it stays bounded."""

    __slots__ = ("ints", "strs", "pairs")

    def __init__(self) -> None:
        self.ints: dict[int, tuple[ReprNode, int]] = {}
        self.strs: dict[str, tuple[ReprNode, int]] = {}
        # A dict pair of a str key (not secret) and a shared leaf: its node, the key's cost
        # and the whole pair's.
        self.pairs: dict[tuple[str, int | str], tuple[ReprNode, int, int]] = {}


# The leaf nodes of all captures made with the same options: the same small numbers, names
# and keys come back in every frame and in every report of an error that repeats.
_shared_leaves: dict[Options, LeafNodes] = {}


def shared_leaves(options: Options) -> LeafNodes:
    """The ``LeafNodes`` every capture with ``options`` shares (a node depends only on its
    value and the options)."""
    try:
        found = _shared_leaves.get(options)
        if found is None:
            if len(_shared_leaves) >= _MAX_SHARED_LEAVES:
                _shared_leaves.clear()
            found = _shared_leaves[options] = LeafNodes()
        return found
    except USER_CODE_ERRORS:  # options that cannot be hashed: this capture's own
        return LeafNodes()


def make_handle(path: list[Any]) -> str:
    """``json.dumps(path)``, compact and ASCII, for a path of one name and positions, without
    the encoder ``json.dumps`` builds per call when given options."""
    return "[" + ",".join([_json_string(p) if type(p) is str else str(int(p)) for p in path]) + "]"


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


def _field_names(tp: type[Any]) -> tuple[str, ...] | None:
    """The fields a dataclass or attrs class shows in its repr, or None for other types."""
    for klass in _TYPE_MRO.__get__(tp):
        namespace = _TYPE_DICT.__get__(klass)
        if "__dataclass_fields__" in namespace:
            return tuple(f.name for f in dataclasses.fields(tp) if f.repr)
        if "__attrs_attrs__" in namespace:
            return tuple(
                attribute.name
                for attribute in namespace["__attrs_attrs__"]
                if type(attribute.name) is str and attribute.repr is not False
            )
    return None


def _framework_items(value: Any, how: str) -> Any:
    if how == "multi":
        return value.items(multi=True)
    if how == "multi_items":
        return value.multi_items()
    if how == "dict":
        return dict.items(value)
    return value.items()


def _is_framework_mapping(tp: type[Any]) -> bool:
    special = _special_handling(tp)
    return special is not None and special[0] == "mapping"


def mapping_items(value: Any) -> Any:
    """The items of a foreign or framework mapping as the renderer lists them (every item of
    a multi-dict); user code runs, so callers guard it."""
    special = _special_handling(type(value))
    if special is not None and special[0] == "mapping":
        return _framework_items(value, special[1])
    return value.items()


def _special_handling(tp: type[Any]) -> tuple[str, Any] | None:
    """How the renderer shows instances of ``tp`` other than by their repr, if it does:
    a framework mapping (how its items are read) or a dataclass/attrs class (its fields).
    Never raises: a type that cannot be inspected (a metaclass whose hash raises, a bogus
    ``__dataclass_fields__``) is shown by its repr like any other."""
    try:
        return _known_types[tp]
    except KeyError:
        pass
    except USER_CODE_ERRORS:
        return None
    try:
        found = _find_special_handling(tp)
    except USER_CODE_ERRORS:
        found = None
    if len(_known_types) < _MAX_KNOWN_TYPES:
        try:
            _known_types[tp] = found
        except USER_CODE_ERRORS:
            pass
    return found


def _find_special_handling(tp: type[Any]) -> tuple[str, Any] | None:
    for klass in _TYPE_MRO.__get__(tp):
        module = _TYPE_MODULE.__get__(klass)
        if type(module) is not str:
            continue
        how = _FRAMEWORK_MAPPINGS.get((module.partition(".")[0], _TYPE_NAME.__get__(klass)))
        if how is not None:
            return ("mapping", how)
    names = _field_names(tp)
    return ("fields", names) if names else None


class _Renderer:
    """Walks over values: caps from the options, a shared budget, a recursion guard.

    With ``path`` (a variable's name, then the positions of a value already inside it),
    every node cut short gets its "+" handle as it is made: ``path`` is kept as the walk's
    place in the tree (for a dict, a position picks a pair and the next one 0 for its key or
    1 for its value), and the handle is the JSON list of it (``evals.lookup`` resolves it).
    ``leaves`` shares complete leaf nodes between equal values.
    """

    def __init__(
        self,
        options: Options,
        budget: Budget,
        path: list[Any] | None = None,
        leaves: LeafNodes | None = None,
    ) -> None:
        self.options = options
        self.budget = budget
        self.depth_cap = max(0, min(options.repr_depth, _MAX_DEPTH))
        self.active: set[int] = set()
        self.secret = secret_pattern(options)
        self.handles = path is not None
        self.path: list[Any] = path if path is not None else []
        self.leaves = leaves if leaves is not None else LeafNodes()
        self.short_text = min(_MAX_LEAF_TEXT, options.repr_text, options.repr_string)

    def handle(self) -> str | None:
        """The "+" handle of the node the walk is at, if this walk gives handles; its bytes
        are spent from the budget (a long variable name is in every handle under it)."""
        if not self.handles:
            return None
        key = tuple(self.path)
        handle = _handles.get(key, "")  # (a handle is never empty: a JSON list)
        if handle == "":
            more = make_handle(self.path)
            handle = more if len(more) <= _MAX_HANDLE else None
            if len(_handles) >= _MAX_HANDLES:
                _handles.clear()
            _handles[key] = handle
        if handle is not None:
            self.budget.remaining -= len(handle) + 3  # ASCII, and its msgpack header
        return handle

    def leaf(self, kind: str, type_name: str, text: str, omitted: int = 0) -> ReprNode:
        self.budget.spend(text)
        more = self.handle() if omitted > 0 and kind in _EXPANDABLE else None
        return new_node(kind, type_name, text, (), omitted, more)

    def broken(self, type_name: str, error: BaseException) -> ReprNode:
        return self.leaf("broken", type_name, f"<broken repr ({describe_error(error, 200)})>")

    def node(self, value: object, depth: int) -> ReprNode:
        tp = type(value)
        if tp is int or tp is str:  # most leaves: shared with an equal value's node
            known = (self.leaves.ints if tp is int else self.leaves.strs).get(value)  # type: ignore[call-overload]
            if known is not None and self.budget.remaining > 0:
                self.budget.remaining -= known[1]
                return known[0]  # type: ignore[no-any-return]
        if type(tp) is type and tp in _PLAIN_SCALARS:  # most leaves: the shortest path
            kind = _PLAIN_SCALARS[tp]
            # Only the size is checked: a scalar costs less than reading the clock, and
            # every container item and every other value checks the time.
            if self.budget.remaining > 0 and (
                tp is not int or int.bit_length(value) <= _HUGE_INT_BITS  # type: ignore[arg-type]
            ):
                text = repr(value)  # the builtin's own repr: no user code runs
                if len(text) <= self.options.repr_text:
                    cost = _NODE_COST + len(text)  # ASCII: len is the cost
                    self.budget.remaining -= cost
                    node = new_node(kind, EXACT_NAMES[tp], text)
                    ints = self.leaves.ints
                    if tp is int and len(text) <= self.short_text:
                        if len(ints) >= _MAX_LEAVES:
                            ints.clear()
                        ints[value] = (node, cost)  # type: ignore[index]
                    return node
        if type(tp) is type:  # an exact builtin: its name and shape from the tables
            shape = EXACT_SHAPES.get(tp)
            budget = self.budget
            if (
                shape is not None
                and budget.remaining > 0
                and time.monotonic() < budget.deadline  # else ``exhausted`` below says why
            ):
                kind, base = shape
                type_name = EXACT_NAMES[tp]
                try:
                    if kind in _PLAIN_CONTAINERS:
                        return self.container(value, kind, base, type_name, depth, 0)
                    return self.builtin(value, kind, base, type_name, depth, 0)
                except USER_CODE_ERRORS as error:
                    return self.broken(type_name, error)
        type_name = type_name_of(value)
        reason = self.budget.exhausted()
        if reason is not None:
            return ReprNode(kind="object", type_name=type_name, text=f"<skipped: {reason}>")
        try:
            shape = EXACT_SHAPES.get(tp) if type(tp) is type else None
            if shape is None:
                shape = _SHAPES.get(own_repr(tp))
            if shape is not None:
                return self.builtin(value, shape[0], shape[1], type_name, depth, 0)
            special = _special_handling(tp)
            if special is not None:
                if special[0] == "mapping":
                    return self.framework_mapping(value, special[1], type_name, depth)
                if any(self.secret.search(name) for name in special[1]):
                    return self.fields(value, special[1], type_name, depth)
            if _is_mapping(tp):
                return self.container(value, "dict", None, type_name, depth, 0)
            return self.object(value, type_name)
        except USER_CODE_ERRORS as error:
            return self.broken(type_name, error)

    def masked_slice(
        self, length: int, read: Callable[[int, int], Any], offset: int, limit: int, mask: Any
    ) -> tuple[Any, int]:
        """``value[offset:offset + limit]`` masked by value (``read(start, end)`` gives a
        slice of the value, ``length`` is its length), and the length offsets count in.

        Text up to ``_MASK_WHOLE`` long is masked whole, so the "+" slices (from ``offset`` of
        the same masked text) never show the rest of a secret an earlier slice cut; longer
        text is masked only around the slice (``MASK_MARGIN`` each side), which keeps a
        megabyte string as cheap as before."""
        if length <= _MASK_WHOLE:
            masked = mask(read(0, length), self.secret)
            return masked[offset : offset + limit], len(masked)
        start = max(0, offset - MASK_MARGIN)
        window = mask(read(start, offset + limit + MASK_MARGIN), self.secret)
        return window[offset - start : offset - start + limit], length

    def object(self, value: object, type_name: str) -> ReprNode:
        text = repr(value)
        if not isinstance(text, str):  # pragma: no cover - repr() enforces str
            raise TypeError("__repr__ returned non-string")
        limit = self.options.repr_text
        text = mask_text(str.__str__(text)[: limit + MASK_MARGIN], self.secret)
        cut, omitted = safe_text(text, limit)
        return self.leaf("object", type_name, cut + ("..." if omitted else ""), 0)

    def framework_mapping(
        self, value: Any, how: str, type_name: str, depth: int, offset: int = 0
    ) -> ReprNode:
        """A framework multi-dict or header object as a mapping of every item it holds."""
        if id(value) in self.active:
            return self.leaf("recursion", type_name, "{...}")
        pairs = list(islice(iter(_framework_items(value, how)), _MAX_FRAMEWORK_ITEMS))
        if depth >= self.depth_cap:
            return self.leaf("dict", type_name, "{...}", len(pairs))
        children: list[ReprNode] = []
        self.active.add(id(value))
        path = self.path
        mark = len(path)
        try:
            for position, pair in enumerate(
                pairs[offset : offset + max(0, self.options.repr_pairs)], offset
            ):
                if self.budget.exhausted() is not None:
                    break
                path.append(position)
                if type(pair) is not tuple or len(pair) != 2:
                    children.append(self.node(pair, depth + 1))
                else:
                    children.append(self.pair(pair, depth + 1))
                path.pop()
        finally:
            self.active.discard(id(value))
            del path[mark:]
        self.budget.spend("")
        omitted = max(0, len(pairs) - offset - len(children))
        more = self.handle() if omitted > 0 else None
        return new_node("dict", type_name, "", tuple(children), omitted, more)

    def fields(self, value: Any, names: tuple[str, ...], type_name: str, depth: int) -> ReprNode:
        """A dataclass or attrs instance as its generated repr would show it, with the values
        of secret-named fields masked and the others rendered by the safe path."""
        if id(value) in self.active:
            return self.leaf("recursion", type_name, f"{type_name}(...)")
        parts: list[str] = []
        self.active.add(id(value))
        try:
            for name in names:
                if self.secret.search(name):
                    parts.append(f"{name}={SECRET_MASK}")
                    continue
                try:
                    field = getattr(value, name)
                except USER_CODE_ERRORS as error:
                    parts.append(f"{name}=<broken ({describe_error(error, 200)})>")
                    continue
                parts.append(f"{name}={format_node(self.node(field, depth + 1))}")
        finally:
            self.active.discard(id(value))
        qualname = _TYPE_QUALNAME.__get__(type(value))
        qualname = qualname if type(qualname) is str else type_name
        text, omitted = safe_text(f"{qualname}({', '.join(parts)})", self.options.repr_text)
        return self.leaf("object", type_name, text + ("..." if omitted else ""), 0)

    def builtin(
        self, value: Any, kind: str, base: type[Any], type_name: str, depth: int, offset: int
    ) -> ReprNode:
        if kind == "str":
            limit = max(0, self.options.repr_string)
            total = str.__len__(value)
            if total <= _MASK_WHOLE:  # the common case, inline: short text, no marker
                whole = str.__str__(value)
                if "=" in whole or ":" in whole:
                    whole = mask_text(whole, self.secret)
                    total = str.__len__(whole)
                text, _ = safe_text(whole[offset : offset + limit], limit)
                omitted = max(0, total - offset - limit)
                before = self.budget.remaining
                node = self.leaf(kind, type_name, repr(text), omitted)
                strs = self.leaves.strs
                if type(value) is str and not offset and total <= self.short_text:
                    if len(strs) >= _MAX_LEAVES:
                        strs.clear()
                    strs[value] = (node, before - self.budget.remaining)
                return node
            piece, total = self.masked_slice(
                str.__len__(value),
                lambda start, end: str.__getitem__(value, slice(start, end)),
                offset,
                limit,
                mask_text,
            )
            text, _ = safe_text(piece, limit)
            return self.leaf(kind, type_name, repr(text), max(0, total - offset - limit))
        if kind == "bytes":
            limit = max(0, self.options.repr_string)
            data, total = self.masked_slice(
                base.__len__(value),
                lambda start, end: bytes(base.__getitem__(value, slice(start, end))),
                offset,
                limit,
                mask_bytes,
            )
            text = repr(data) if base is bytes else f"bytearray({data!r})"
            return self.leaf(kind, type_name, text, max(0, total - offset - limit))
        if kind == "number" and base is int and int.bit_length(value) > _HUGE_INT_BITS:
            return self.leaf(kind, type_name, f"<int of {int.bit_length(value)} bits>")
        if kind in ("number", "bool", "none"):
            text, _ = safe_text(repr(value), self.options.repr_text)
            return self.leaf(kind, type_name, text)
        if kind == "tuple" and offset == 0 and tuple.__len__(value) == 2:
            name = self.secret_key(tuple.__getitem__(value, 0))
            if name is not None:  # a (name, value) pair, a header's say: masked by its name
                self.budget.spend("")
                self.path.append(0)
                key_node = self.node(tuple.__getitem__(value, 0), depth + 1)
                self.path.pop()
                return ReprNode(kind=kind, type_name=type_name, children=(key_node, _masked()))
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
        key = id(value)
        active = self.active
        if key in active:
            opening, closing = BRACKETS.get(kind, ("[", "]"))
            return self.leaf("recursion", type_name, f"{opening}...{closing}")
        total = int(base.__len__(value)) if base is not None else self.length(value, None)
        if depth >= self.depth_cap:
            opening, closing = BRACKETS.get(kind, ("[", "]"))
            return self.leaf(kind, type_name, f"{opening}...{closing}", total)
        cap = self.options.repr_pairs if kind == "dict" else self.options.repr_items
        children: list[ReprNode] = []
        active.add(key)
        path = self.path
        mark = len(path)
        budget = self.budget
        try:
            iterator: Iterator[Any] = (
                self.pairs(value, base) if kind == "dict" else base.__iter__(value)  # type: ignore[union-attr]
            )
            render = self.pair if kind == "dict" else self.node
            ints, strs = self.leaves.ints, self.leaves.strs
            monotonic, deadline = time.monotonic, budget.deadline
            for position, item in enumerate(islice(iterator, offset, offset + max(0, cap)), offset):
                if budget.remaining <= 0 or monotonic() >= deadline:  # ``budget.exhausted()``
                    break
                tp = type(item)
                if tp is int or tp is str:  # ``node``'s shared leaf, without the call
                    known = (ints if tp is int else strs).get(item)
                    if known is not None:
                        budget.remaining -= known[1]
                        children.append(known[0])
                        continue
                path.append(position)
                children.append(render(item, depth + 1))
                path.pop()
        finally:
            active.discard(key)
            del path[mark:]
        budget.remaining -= _NODE_COST  # ``budget.spend("")``
        omitted = max(0, total - offset - len(children))
        more = self.handle() if omitted > 0 else None
        return new_node(kind, type_name, "", tuple(children), omitted, more)

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
        return iter(mapping_items(value))  # a foreign Mapping: user code, guarded by the caller

    def secret_key(self, key: Any) -> str | None:
        """``key`` as text if it is a str or bytes name that looks secret, else None."""
        if type(key) is str:
            name = key
        elif type(key) is bytes:
            name = key.decode("latin-1")
        else:
            return None
        return name if self.secret.search(name) is not None else None

    def pair(self, item: Any, depth: int) -> ReprNode:
        key, value = item
        budget = self.budget
        tv = type(value)
        if type(key) is str and (tv is int or tv is str) and budget.remaining > 0:
            leaves = self.leaves
            pairs = leaves.pairs
            known_pair = pairs.get((key, value))  # this pair's node, made before
            if known_pair is not None and budget.remaining > known_pair[1]:
                budget.remaining -= known_pair[2]
                return known_pair[0]
            known_key = leaves.strs.get(key)  # both leaves shared: ``node``'s result
            if known_key is not None:
                known = (leaves.ints if tv is int else leaves.strs).get(value)
                if (
                    known is not None
                    and budget.remaining > known_key[1]
                    and self.secret.search(key) is None
                ):
                    cost = known_key[1] + known[1] + _NODE_COST
                    budget.remaining -= cost
                    node = new_node("pair", "", "", (known_key[0], known[0]))
                    if len(pairs) >= _MAX_LEAVES:
                        pairs.clear()
                    pairs[(key, value)] = (node, known_key[1], cost)
                    return node
        path = self.path
        path.append(0)
        key_node = self.node(key, depth)
        if (type(key) is str and self.secret.search(key) is not None) or (
            type(key) is bytes and self.secret_key(key) is not None
        ):
            value_node = _masked()
        else:
            path[-1] = 1
            value_node = self.node(value, depth)
        path.pop()
        self.budget.spend("")
        return new_node("pair", "", "", (key_node, value_node))


def _budget_for(options: Options, budget: Budget | None) -> Budget:
    return budget if budget is not None else Budget(options.repr_budget_seconds)


def represent(
    value: object, options: Options, *, budget: Budget | None = None, name: str | None = None
) -> ReprNode:
    """Render any value as a bounded ``ReprNode``; never raises, whatever the value does.
    With ``name`` (where "+" finds the value: a held frame's variable), every node cut short
    has its handle."""
    renderer = _Renderer(options, _budget_for(options, budget), None if name is None else [name])
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
        if shape is None and (_is_mapping(tp) or _is_framework_mapping(tp)):
            return "dict", None
    except USER_CODE_ERRORS:
        return None
    return None


def represent_more(
    value: object,
    options: Options,
    offset: int,
    *,
    budget: Budget | None = None,
    path: list[Any] | None = None,
) -> ReprNode:
    """The next slice of a string, bytes or container from ``offset`` (the "+" expansion);
    with ``path`` (the handle's), the nodes cut short have their handles."""
    renderer = _Renderer(options, _budget_for(options, budget), None if path is None else path)
    type_name = type_name_of(value)
    offset = max(0, offset)
    try:
        shape = _SHAPES.get(own_repr(type(value)))
        if shape is not None and (shape[0] in _SEQUENCE_KINDS or shape[0] in ("str", "bytes")):
            return renderer.builtin(value, shape[0], shape[1], type_name, 0, offset)
        if shape is not None and shape[0] == "dict":
            return renderer.container(value, "dict", shape[1], type_name, 0, offset)
        special = _special_handling(type(value)) if shape is None else None
        if special is not None and special[0] == "mapping":
            return renderer.framework_mapping(value, special[1], type_name, 0, offset)
        if shape is None and _is_mapping(type(value)):
            return renderer.container(value, "dict", None, type_name, 0, offset)
        return renderer.node(value, 0)
    except USER_CODE_ERRORS as error:
        return renderer.broken(type_name, error)


def collapsed(value: object, handle: str | None = None) -> ReprNode:
    """A mapping shown elsewhere in the report (the request's environ, in the Request
    panel) as ``{...}`` with its size: "+" (``handle``) lists it while the frame is held."""
    size = dict.__len__(value) if isinstance(value, dict) else 0  # no user code runs
    more = handle if size > 0 else None
    return ReprNode(
        kind="dict", type_name=type_name_of(value), text="{...}", omitted=size, more=more
    )


def variables_of(
    namespace: Mapping[str, object],
    options: Options,
    budget: Budget | None = None,
    shown_elsewhere: object | None = None,
    *,
    handles: bool = False,
    leaves: LeafNodes | None = None,
) -> tuple[Variable, ...]:
    """The first ``options.max_locals`` names of a namespace, in order, secrets masked;
    a variable holding ``shown_elsewhere`` (the request's environ) is ``collapsed``.
    ``handles``: the values are a held frame's, so nodes cut short get their "+" handles;
    ``leaves`` shares leaf nodes with the other frames and captures (``shared_leaves``)."""
    renderer = _Renderer(options, _budget_for(options, budget), [] if handles else None, leaves)
    out: list[Variable] = []
    try:
        items = list(islice(namespace.items(), max(0, options.max_locals)))
    except USER_CODE_ERRORS as error:
        return (Variable(name="?", value=_broken_node("locals", error)),)
    secret = renderer.secret
    path = renderer.path
    for key, value in items:
        name = safe_text(key, 200)[0] if isinstance(key, str) else type_name_of(key)
        if secret.search(name) is not None:
            node = _masked()
        elif value is shown_elsewhere and value is not None:
            node = collapsed(value, make_handle([name]) if handles else None)
        else:
            path[:] = [name]
            try:
                node = renderer.node(value, 0)
            except USER_CODE_ERRORS as error:  # only a bug in this module gets here
                node = _broken_node("repr", error)
        out.append(new_variable(name, node))
    return tuple(out)
