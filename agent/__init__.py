"""The in-app side of debugbroker: the middlewares, hooks and integrations that report errors.

Its names load on first use, so that importing one of its modules (the broker reads the
console's language rules, say) does not load the middlewares and the transport.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from debugbroker.agent.asgi import DebuggedASGIApplication
    from debugbroker.agent.hooks import install_excepthook
    from debugbroker.agent.integrations.asyncio_tasks import install_asyncio
    from debugbroker.agent.integrations.capture import capture_exception
    from debugbroker.agent.integrations.celery_tasks import install_celery
    from debugbroker.agent.integrations.frameworks import install_django, install_flask
    from debugbroker.agent.integrations.log_handler import LoggingHandler, install_logging
    from debugbroker.agent.integrations.rq_jobs import rq_exception_handler
    from debugbroker.agent.middleware import DebuggedApplication
    from debugbroker.agent.options import Options
    from debugbroker.agent.trace import set_trace

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
]

# Public name -> the module that defines it.
_HOMES = {
    "DebuggedApplication": "debugbroker.agent.middleware",
    "DebuggedASGIApplication": "debugbroker.agent.asgi",
    "LoggingHandler": "debugbroker.agent.integrations.log_handler",
    "Options": "debugbroker.agent.options",
    "capture_exception": "debugbroker.agent.integrations.capture",
    "install_asyncio": "debugbroker.agent.integrations.asyncio_tasks",
    "install_celery": "debugbroker.agent.integrations.celery_tasks",
    "install_django": "debugbroker.agent.integrations.frameworks",
    "install_excepthook": "debugbroker.agent.hooks",
    "install_flask": "debugbroker.agent.integrations.frameworks",
    "install_logging": "debugbroker.agent.integrations.log_handler",
    "rq_exception_handler": "debugbroker.agent.integrations.rq_jobs",
    "set_trace": "debugbroker.agent.trace",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'debugbroker.agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
