"""The agent's encoder compiled per message class: the hot path of an error storm.

``protocol.to_wire`` walks type hints for every value it meets, which costs hundreds of
microseconds per report. This module builds, once per dataclass, small closures that do
the same work with the types already resolved: ``encode(message)`` gives the same msgpack
bytes as ``protocol.encode``. (The broker decodes with msgspec: ``broker/wire.py``.)

``tests/agent/test_codec.py`` checks it against the reference functions in ``protocol``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgpack

from .protocol import Message, _fields_of

__all__ = ["encode", "to_wire"]

Encode = Callable[[Any], Any]  # protocol value -> plain data

_encoders: dict[Any, Encode | None] = {}  # None: the value is its own wire form


def _encoder(tp: Any) -> Encode | None:
    """The function turning a value of type ``tp`` into plain data; None for identity."""
    if tp not in _encoders:
        _encoders[tp] = _build_encoder(tp)
    return _encoders[tp]


def _build_encoder(tp: Any) -> Encode | None:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if all(_is_leaf(o) for o in options):
            return None
        if len(options) == 1:  # Optional[X]: callers skip None themselves
            return _encoder(options[0])
        return _dynamic
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if all(_is_leaf(a) for a in args):
            return list
        if len(args) == 1:
            return _sequence_encoder(args[0])
        return _dynamic
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_encoder(tp)
    return None


def _is_leaf(tp: Any) -> bool:
    return tp in (str, int, float, bool, type(None))


def _sequence_encoder(item_type: Any) -> Encode:
    resolved: list[Encode] = []

    def encode_items(value: Any) -> list[Any]:
        if not resolved:  # on first use: the item type may be the one being built
            resolved.append(_encoder(item_type) or _dynamic)
        encode_item = resolved[0]
        return [encode_item(item) for item in value]

    return encode_items


def _dataclass_encoder(cls: type[Any]) -> Encode:
    kind = getattr(cls, "kind", None)
    head: dict[str, Any] = {"kind": kind} if isinstance(kind, str) else {}
    fields: list[tuple[str, Encode | None]] = []

    def encode_dataclass(value: Any) -> dict[str, Any]:
        if not fields:  # on first use: field types may refer back to this class
            fields.extend((name, _encoder(tp)) for name, tp in _fields_of(cls))
        out = head.copy()
        for name, encoder in fields:
            item = getattr(value, name)
            out[name] = item if encoder is None or item is None else encoder(item)
        return out

    return encode_dataclass


def _dynamic(value: Any) -> Any:
    """Plain data of a value whose declared type does not settle its shape."""
    if isinstance(value, (tuple, list)):
        return [_dynamic(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoder = _encoder(type(value))
        return value if encoder is None else encoder(value)
    return value


def to_wire(message: Any) -> Any:
    """``protocol.to_wire`` of a protocol dataclass, compiled."""
    encoder = _encoder(type(message))
    return message if encoder is None else encoder(message)


def encode(message: Message) -> bytes:
    """The same bytes as ``protocol.encode(message)``, compiled."""
    packed: bytes = msgpack.packb(to_wire(message), use_bin_type=True)
    return packed
