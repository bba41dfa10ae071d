"""debugbroker: interactive tracebacks for multi-process, containerised and shared debugging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from debugbroker.agent import (
        DebuggedApplication,
        DebuggedASGIApplication,
        LoggingHandler,
        Options,
        capture_exception,
        install_asyncio,
        install_celery,
        install_django,
        install_excepthook,
        install_flask,
        install_logging,
        rq_exception_handler,
        set_trace,
    )

__all__ = [
    "DebuggedApplication",
    "DebuggedASGIApplication",
    "LoggingHandler",
    "Options",
    "capture_exception",
    "install_asyncio",
    "install_celery",
    "install_django",
    "install_excepthook",
    "install_flask",
    "install_logging",
    "rq_exception_handler",
    "set_trace",
    "__version__",
]
_AGENT_EXPORTS = frozenset(__all__) - {"__version__"}

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import debugbroker.broker` does not load the in-app middleware.
    if name in _AGENT_EXPORTS:
        from debugbroker import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'debugbroker' has no attribute {name!r}")
