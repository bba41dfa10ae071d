"""debugbroker: interactive tracebacks for multi-process, containerised and shared debugging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from debugbroker.agent import DebuggedApplication, DebuggedASGIApplication, Options

__all__ = ["DebuggedApplication", "DebuggedASGIApplication", "Options", "__version__"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import debugbroker.broker` does not load the in-app middleware.
    if name in ("DebuggedApplication", "DebuggedASGIApplication", "Options"):
        from debugbroker import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'debugbroker' has no attribute {name!r}")
