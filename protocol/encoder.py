"""The agent's encoder, generated per message class: the hot path of an error storm.

``protocol.to_wire`` walks type hints for every value it meets, which is slow for the
hot path. This module writes, once per dataclass, the source of a function
that builds its wire dict in one expression (a dict display of attribute reads, list
comprehensions for sequences), as ``dataclasses`` itself writes ``__init__``: faster than a
loop over the fields, and much faster than ``to_wire`` (BENCHMARKS.md).
``encode(message)`` gives the same msgpack bytes as ``protocol.encode``. (The broker
decodes with msgspec: ``broker/wire.py``.)

``tests/agent/test_codec.py`` checks it against the reference functions in ``protocol``.
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgpack

from debugbroker.protocol.codec import fields_of
from debugbroker.protocol.messages import Message

__all__ = ["encode", "to_wire"]

Encode = Callable[[Any], Any]  # protocol value -> plain data

# The generated functions live in one namespace, so that a class's function can call
# another's (or its own: a ReprNode's children are ReprNodes) by name.
_namespace: dict[str, Any] = {}
_names: dict[type[Any], str] = {}
_lock = threading.Lock()


def _is_leaf(tp: Any) -> bool:
    return tp in (str, int, float, bool, type(None))


def _expression(tp: Any, source: str, depth: int) -> str:
    """Python source turning ``source`` (a value of type ``tp``) into plain data."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if all(_is_leaf(o) for o in options):
            return source
        if len(options) == 1:  # Optional[X]
            inner = _expression(options[0], source, depth)
            return f"(None if {source} is None else {inner})"
        return f"_dynamic({source})"
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if all(_is_leaf(a) for a in args):
            return f"list({source})"
        if len(args) == 1:
            item = f"_item{depth}"
            return f"[{_expression(args[0], item, depth + 1)} for {item} in {source}]"
        return f"_dynamic({source})"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"{_name_of(tp)}({source})"
    return source


def _name_of(cls: type[Any]) -> str:
    """The name of ``cls``'s generated function in ``_namespace``, writing it if needed
    (named before it is written, so a class that contains itself calls itself)."""
    name = _names.get(cls)
    if name is None:
        name = _names[cls] = f"_encode_{len(_names)}_{cls.__name__}"
        kind = getattr(cls, "kind", None)
        items = [f'"kind": {kind!r}'] if isinstance(kind, str) else []
        for field, tp in fields_of(cls):
            items.append(f"{field!r}: {_expression(tp, f'value.{field}', 0)}")
        source = f"def {name}(value):\n    return {{{', '.join(items)}}}\n"
        exec(source, _namespace)  # our own source, written from the protocol's types
    return name


def _encoder(cls: type[Any]) -> Encode:
    """The generated function of dataclass ``cls`` (the messages' are written at import)."""
    encoder: Encode | None = _namespace.get(_names.get(cls, ""))
    if encoder is None:
        with _lock:  # any other dataclass: written once, whole, under the lock
            encoder = _namespace[_name_of(cls)]
    return encoder


def _dynamic(value: Any) -> Any:
    """Plain data of a value whose declared type does not settle its shape."""
    if isinstance(value, (tuple, list)):
        return [_dynamic(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encoder(type(value))(value)
    return value


_namespace["_dynamic"] = _dynamic
with _lock:  # every message's function, and those they call, before any thread uses one
    for _message in typing.get_args(Message):
        _name_of(_message)


def to_wire(message: Any) -> Any:
    """``protocol.to_wire`` of a protocol dataclass, compiled."""
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        return _encoder(type(message))(message)
    return message


def encode(message: Message) -> bytes:
    """The same bytes as ``protocol.encode(message)``, compiled."""
    packed: bytes = msgpack.packb(to_wire(message), use_bin_type=True)
    return packed
