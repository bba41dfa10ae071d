"""debugbroker: interactive tracebacks for multi-process, containerised and shared debugging."""

from __future__ import annotations

from debugbroker.agent import DebuggedApplication

__all__ = ["DebuggedApplication", "__version__"]

__version__ = "0.1.0"
