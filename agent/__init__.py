"""The in-app side of debugbroker: the middlewares and hooks that report errors to the broker.

Its names load on first use, so that importing one of its modules (the broker reads the
console's language rules, say) does not load the middlewares and the transport.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Public name -> the module that defines it.
_HOMES = {
    "DebuggedApplication": "debugbroker.agent.middleware",
    "DebuggedASGIApplication": "debugbroker.agent.asgi",
    "Options": "debugbroker.agent.options",
    "install_excepthook": "debugbroker.agent.hooks",
    "set_trace": "debugbroker.agent.trace",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'debugbroker.agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
