"""Which frames a report hides by default, and which are a library's.

Frames follow Paste's ``__traceback_hide__`` protocol (``True``, ``"before"``,
``"before_and_this"``, ``"after"``, ``"after_and_this"``, ``"reset"``, ``"reset_and_this"``),
applied to each exception's own frame list; ``FrameInfo.hidden`` marks what the dashboard
hides by default. If the innermost frame would be hidden, nothing is (as Paste does). The
agent's own frames (the middleware that caught the error) are always hidden.

``FrameInfo.is_library`` marks frames of the standard library and of installed
distributions. Everything here runs once per captured frame: reads go through guarded
lookups (no user code runs but a marker's ``bool``) and file answers are remembered.
"""

from __future__ import annotations

import os
import sysconfig
from functools import lru_cache
from types import FrameType

from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS

__all__ = ["hidden_flags", "hide_marker", "is_agent_frame", "is_library_file"]


@lru_cache(maxsize=1)
def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {
        os.path.realpath(paths[key])
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if key in paths
    }
    return tuple(sorted(path.rstrip(os.sep) + os.sep for path in found))


@lru_cache(maxsize=2048)
def is_library_file(filename: str) -> bool:
    """Whether a file belongs to the standard library or an installed distribution."""
    if filename.startswith("<frozen "):
        return True
    if filename.startswith("<"):
        return False
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    real = os.path.realpath(filename)
    return any(real.startswith(prefix) for prefix in _library_prefixes())


# The agent package's root: this file lives in its ``capture/`` subpackage.
_AGENT_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep


@lru_cache(maxsize=1024)
def _in_agent_dir(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_AGENT_DIR)


def is_agent_frame(frame: FrameType) -> bool:
    """A frame of this package (the middleware catching the error): hidden like Paste's."""
    try:
        filename = frame.f_code.co_filename
        return isinstance(filename, str) and _in_agent_dir(filename)
    except USER_CODE_ERRORS:
        return False


def hide_marker(frame: FrameType) -> object:
    """The frame's ``__traceback_hide__`` (its locals first, then its module's globals)."""
    try:
        for namespace in (frame.f_locals, frame.f_globals):
            if "__traceback_hide__" in namespace:
                return namespace["__traceback_hide__"]
    except USER_CODE_ERRORS:
        return None
    return None


def _marker_word(marker: object) -> str | None:
    """A string marker as a plain str, or None (only exact strs count; no user code runs)."""
    return str.__str__(marker) if isinstance(marker, str) else None


def hidden_flags(markers: list[object]) -> list[bool]:
    """Which frames Paste's ``__traceback_hide__`` rules hide, outermost frame first.

    ``"before"`` hides the frames before it, ``"after"`` the frames after it (until a
    ``"reset"``), the ``_and_this`` forms hide their own frame too, and any other true
    value hides just its frame. When the innermost frame would be hidden the error happened
    inside hidden code, so every frame is shown.
    """
    shown: list[int] = []
    hiding = False
    for position, marker in enumerate(markers):
        word = _marker_word(marker)
        if word in ("before", "before_and_this"):
            shown, hiding = [], False
            if word == "before_and_this":
                continue
        elif word in ("reset", "reset_and_this"):
            hiding = False
            if word == "reset_and_this":
                continue
        elif word in ("after", "after_and_this"):
            hiding = True
            if word == "after_and_this":
                continue
        elif hiding or _truthy(marker):
            continue
        shown.append(position)
    if markers and (not shown or shown[-1] != len(markers) - 1):
        return [False] * len(markers)
    kept = set(shown)
    return [position not in kept for position in range(len(markers))]


def _truthy(value: object) -> bool:
    try:
        return bool(value)
    except USER_CODE_ERRORS:
        return False
