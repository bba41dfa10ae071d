"""The in-app side of debugbroker: the middleware that reports errors to the broker."""

from __future__ import annotations

from .asgi import DebuggedASGIApplication
from .hooks import install_excepthook
from .middleware import DebuggedApplication
from .options import Options
from .trace import set_trace

__all__ = [
    "DebuggedApplication",
    "DebuggedASGIApplication",
    "Options",
    "install_excepthook",
    "set_trace",
]
