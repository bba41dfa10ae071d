"""What the dashboard may look up in a held frame besides evals: more of a value, the source.

"+" handles: capture gives every truncated node of a held frame's locals a ``more`` handle,
the JSON list ``[variable name, position, position, ...]`` of the node's place in the tree
(for a dict, a position picks a pair and the next one 0 for its key or 1 for its value). The
agent resolves a handle against the frame's current locals, reading containers only through
the builtins' own methods, and renders the next page from ``offset``.

Source: the broker asks for a frame by its id, never by path, and the agent reads the file
the frame's code came from through ``linecache`` (so zip imports and loaders work), capped.
Both never raise: every failure becomes an answer with ``ok=False`` and a message (and the
``reason`` ``released`` when the frame is no longer held).
"""

from __future__ import annotations

import json
import linecache
from dataclasses import replace
from itertools import islice
from typing import Any

from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error, safe_text
from debugbroker.agent.reprs.secret_names import SecretNames, secret_pattern
from debugbroker.agent.reprs.tree import Budget, container_shape, mapping_items, represent_more
from debugbroker.protocol import RELEASED, ExpandRequest, ExpandResult, SourceRequest, SourceResult

__all__ = ["answer_expand", "answer_source", "MAX_SOURCE_LINES"]

MAX_SOURCE_LINES = 20_000
_MAX_SOURCE_CHARS = 2 * 1024 * 1024
_MAX_HANDLE = 4_096
_MAX_PATH = 64
_PAGE_ITEMS = 100
_PAGE_PAIRS = 50
_PAGE_CHARS = 100_000
_EXPAND_SECONDS = 0.5
_RELEASED = "frame released: the agent no longer holds this frame; reload the report"


def _child(value: object, position: int) -> object:
    """The item at ``position`` as the renderer lists it (a dict gives its (key, value))."""
    shape = container_shape(value)
    if shape is None or shape[0] in ("str", "bytes"):
        raise LookupError("this value has no children any more")
    kind, base = shape
    if kind == "dict":
        items: Any = base.items(value) if base is not None else mapping_items(value)
        found = list(islice(iter(items), position, position + 1))
    else:
        assert base is not None
        found = list(islice(base.__iter__(value), position, position + 1))
    if not found:
        raise LookupError("the value changed since the report: that item is gone")
    return found[0]


def _resolve(namespace: dict[str, object], handle: str, options: Options) -> object:
    if len(handle) > _MAX_HANDLE:
        raise LookupError("handle too long")
    path = json.loads(handle)
    if not isinstance(path, list) or not path or len(path) > _MAX_PATH:
        raise LookupError("malformed handle")
    name, *steps = path
    secret = secret_pattern(options)
    if not isinstance(name, str) or name not in namespace:
        raise LookupError("the variable is gone from the frame")
    if secret.search(name):  # a handle comes from outside: masked values stay masked
        raise LookupError("this value is masked")
    value = namespace[name]
    position = 0
    while position < len(steps):
        step = steps[position]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise LookupError("malformed handle")
        shape = container_shape(value)
        if step == 1 and type(value) is tuple and len(value) == 2 and _is_secret(value[0], secret):
            raise LookupError("this value is masked")  # a (name, value) pair, shown masked
        value = _child(value, step)
        if shape is not None and shape[0] == "dict":  # a pair: the next step picks key/value
            position += 1
            pick = steps[position] if position < len(steps) else None
            if pick not in (0, 1) or not isinstance(value, tuple) or len(value) != 2:
                raise LookupError("malformed handle")
            if pick == 1 and _is_secret(value[0], secret):
                raise LookupError("this value is masked")
            value = value[pick]
        position += 1
    return value


def _is_secret(key: object, secret: SecretNames) -> bool:
    """Whether the renderer masks the value under ``key`` (a str or bytes name)."""
    if type(key) is bytes:
        key = key.decode("latin-1")
    return type(key) is str and secret.search(key) is not None


def answer_expand(
    registry: FrameRegistry, request: ExpandRequest, options: Options
) -> ExpandResult:
    """The page of the value ``request.handle`` names from ``request.offset``; never raises."""
    held = registry.get(request.frame_id)
    if held is None:
        return ExpandResult(
            request_id=request.request_id, ok=False, error=_RELEASED, reason=RELEASED
        )
    try:
        namespace = held.frame_locals
        if request.handle.startswith('["__debugbroker_'):  # a console result (evaluate.py)
            namespace = held.namespace
        value = _resolve(namespace, request.handle, options)
        page = replace(
            options, repr_items=_PAGE_ITEMS, repr_pairs=_PAGE_PAIRS, repr_string=_PAGE_CHARS
        )
        shape = container_shape(value)
        offset = (
            max(0, request.offset) if shape is not None and shape[0] not in ("str", "bytes") else 0
        )
        node = represent_more(
            value,
            page,
            offset,
            budget=Budget(_EXPAND_SECONDS, 4 * 1024 * 1024),
            path=json.loads(request.handle),
        )
        return ExpandResult(request_id=request.request_id, ok=True, node=node)
    except (LookupError, ValueError) as error:
        return ExpandResult(request_id=request.request_id, ok=False, error=str(error))
    except USER_CODE_ERRORS as error:
        return ExpandResult(
            request_id=request.request_id,
            ok=False,
            error=f"could not expand: {describe_error(error)}",
        )


def answer_source(
    registry: FrameRegistry, request: SourceRequest, options: Options
) -> SourceResult:
    """The whole source file of a held frame, as the process loaded it; never raises."""
    held = registry.get(request.frame_id)
    if held is None:
        return SourceResult(
            request_id=request.request_id, ok=False, error=_RELEASED, reason=RELEASED
        )
    try:
        code = held.frame.f_code
        filename = code.co_filename
        lines = linecache.getlines(filename, held.frame.f_globals)
    except USER_CODE_ERRORS as error:
        return SourceResult(request_id=request.request_id, ok=False, error=describe_error(error))
    if not lines:
        return SourceResult(
            request_id=request.request_id,
            ok=False,
            filename=safe_text(filename, 4096)[0],
            error="the process has no source for this file",
        )
    out: list[str] = []
    total = 0
    for line in lines[:MAX_SOURCE_LINES]:
        text = safe_text(line.rstrip("\r\n"), 2_000)[0]
        total += len(text)
        if total > _MAX_SOURCE_CHARS:
            break
        out.append(text)
    return SourceResult(
        request_id=request.request_id,
        ok=True,
        filename=safe_text(filename, 4096)[0],
        lines=tuple(out),
        truncated=len(out) < len(lines),
    )
