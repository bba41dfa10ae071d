"""The in-app side of debugbroker: the middleware that reports errors to the broker."""

from __future__ import annotations

from debugbroker.agent.asgi import DebuggedASGIApplication
from debugbroker.agent.hooks import install_excepthook
from debugbroker.agent.middleware import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.trace import set_trace

__all__ = [
    "DebuggedApplication",
    "DebuggedASGIApplication",
    "Options",
    "install_excepthook",
    "set_trace",
]
