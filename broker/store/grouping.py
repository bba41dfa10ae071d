"""Group repeated errors: a report's fingerprint is its exception types and its app frames.

Two reports share a fingerprint when they raised the same exception types along the same
path through the app's own code: for every exception of the report (chain and group
members, in print order) its module-qualified type, then the file and function of each
frame that is neither a library frame nor hidden. Line numbers, messages and locals are
left out on purpose: editing a file above the failing line, or a different bad value, must
not split a group. Pure functions over the report's wire dict; no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

__all__ = ["fingerprint", "fingerprint_parts"]

_MAX_PARTS = 2_000


def _exceptions(exceptions: object) -> Iterator[dict[str, Any]]:
    if not isinstance(exceptions, (list, tuple)):  # stored JSON, or a decoded report
        return
    for info in exceptions:
        if isinstance(info, dict):
            yield info
            yield from _exceptions(info.get("exceptions"))


def fingerprint_parts(report: dict[str, Any]) -> list[str]:
    """What the fingerprint hashes, readable: ``type:module.Name`` and ``frame:file:function``."""
    parts: list[str] = []
    for info in _exceptions(report.get("exceptions")):
        module, name = str(info.get("module", "")), str(info.get("type_name", ""))
        parts.append(f"type:{module}.{name}" if module not in ("", "builtins") else f"type:{name}")
        for frame in info.get("frames") or ():
            if not isinstance(frame, dict) or frame.get("is_library") or frame.get("hidden"):
                continue
            parts.append(f"frame:{frame.get('filename', '')}:{frame.get('function', '')}")
        if len(parts) >= _MAX_PARTS:
            break
    if not parts:  # a report without structure (a broken capture): group by its type
        parts.append(f"type:{report.get('type_name', '')}")
    return parts[:_MAX_PARTS]


def fingerprint(report: dict[str, Any]) -> str:
    """A short stable id of the report's error kind (hex, 16 characters)."""
    digest = hashlib.sha256("\n".join(fingerprint_parts(report)).encode("utf-8", "replace"))
    return digest.hexdigest()[:16]
