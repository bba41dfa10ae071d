"""What the agent's tests need from Python 3.11 on every supported Python (3.10 to 3.13).

On 3.10 exception groups come from the ``exceptiongroup`` backport (pytest depends on it
there); importing it patches ``traceback`` to print groups and ``__notes__`` as 3.11 does,
which is what apps on 3.10 see once trio, anyio or pytest is imported.
"""

from __future__ import annotations

import sys

__all__ = ["BaseExceptionGroup", "ExceptionGroup", "add_note", "has_columns"]

if sys.version_info >= (3, 11):
    import builtins

    BaseExceptionGroup = builtins.BaseExceptionGroup
    ExceptionGroup = builtins.ExceptionGroup
else:  # pragma: no cover - 3.10 only
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

# Column positions (``co_positions``, the ``~~~^^^`` markers) exist since 3.11.
has_columns = sys.version_info >= (3, 11)


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on 3.10 (where the backport reads ``__notes__``)."""
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:  # pragma: no cover - 3.10 only
        error.__notes__ = [*getattr(error, "__notes__", ()), note]  # type: ignore[attr-defined]
