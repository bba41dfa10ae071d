"""The in-app side of debugbroker: the middleware that reports errors to the broker."""

from __future__ import annotations

from .asgi import DebuggedASGIApplication
from .middleware import DebuggedApplication
from .options import Options

__all__ = ["DebuggedApplication", "DebuggedASGIApplication", "Options"]
