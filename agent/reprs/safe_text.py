"""Text from user values that cannot fail: exact encodable strings, type names, error lines.

Every call into user code (``str`` of an error, a type's name under a metaclass) is
guarded by ``USER_CODE_ERRORS``; type attributes are read through ``type``'s own
descriptors, so a metaclass cannot intercept them. ``plain_repr`` is the renderer's exact
text for values that need no renderer at all (``reprs.represent`` walks the rest).
"""

from __future__ import annotations

import types
from collections import OrderedDict, defaultdict, deque
from typing import Any

from debugbroker.agent.options import Options

__all__ = [
    "EXACT_NAMES",
    "USER_CODE_ERRORS",
    "describe_error",
    "own_repr",
    "plain_repr",
    "safe_text",
    "text_cost",
    "type_name_of",
]

# What user code may throw at us and we absorb; KeyboardInterrupt still stops the process.
USER_CODE_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)
_TYPE_NAME_LIMIT = 200

# Read type attributes through ``type``'s own descriptors: a metaclass cannot intercept them.
_TYPE_NAME = type.__dict__["__name__"]
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]

# Exact builtin types nearly every frame holds, with their names: C types cannot be changed,
# so the name needs no descriptor read. Looked up only when ``type(type(value)) is type``, so
# no metaclass hash runs. ``reprs`` shows exactly these types by their builtin shape.
EXACT_NAMES: dict[type[Any], str] = {
    tp: tp.__name__
    for tp in (
        str,
        bytes,
        bytearray,
        bool,
        int,
        float,
        complex,
        type(None),
        list,
        tuple,
        set,
        frozenset,
        deque,
        dict,
        OrderedDict,
        defaultdict,
    )
}

# Reprs CPython writes in C from fields of the object or its type: no user code runs.
_BUILTIN_OBJECT_REPRS = frozenset({object.__repr__, types.FunctionType.__repr__, type.__repr__})


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
        exact = EXACT_NAMES.get(tp)
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


def own_repr(tp: type[Any]) -> Any:
    """The ``__repr__`` found first in the MRO of ``tp``, without attribute hooks."""
    for klass in _TYPE_MRO.__get__(tp):
        found = _TYPE_DICT.__get__(klass).get("__repr__")
        if found is not None:
            return found
    return object.__repr__  # pragma: no cover - object always defines it


def _is_plain(value: object) -> bool:
    """An exact bool, None, float, small int, or short tuple of small ints."""
    tp = type(value)
    if tp is tuple:
        items: tuple[object, ...] = value  # type: ignore[assignment]
        return len(items) <= 8 and all(type(item) is int and _is_plain(item) for item in items)
    if tp is int:
        return -(2**63) <= value <= 2**63  # type: ignore[operator]
    return tp is bool or tp is float or value is None


def plain_repr(value: object, options: Options) -> str | None:
    """What ``format_node(represent(value, options))`` gives, for values that need no
    renderer: plain scalars and short int tuples, and objects, functions and classes whose
    repr is CPython's own (``<X object at 0x…>``, ``<function f at 0x…>``, ``<class 'X'>``).
    None for anything else (the server's flags and objects in a WSGI environ are these)."""
    try:
        if _is_plain(value):
            return repr(value)
        if own_repr(type(value)) in _BUILTIN_OBJECT_REPRS:
            text, omitted = safe_text(repr(value), options.repr_text)
            return text + "..." if omitted else text
    except USER_CODE_ERRORS:
        return None
    return None
