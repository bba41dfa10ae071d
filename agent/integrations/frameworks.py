"""``install_flask`` and ``install_django``: reports from apps that answer their own 500s.

With ``PROPAGATE_EXCEPTIONS`` (Flask) or ``DEBUG_PROPAGATE_EXCEPTIONS`` (Django) off, a view's
error never reaches ``DebuggedApplication``: the framework renders its own 500 page. Both send
``got_request_exception`` first, in the request's thread with the error's frames alive; these
connect to it, so the app keeps its error handling and still gets a report with live frames
and the Request panel. Where the error also reaches the middleware, it is reported once.

Flask and Django are imported only when these are called.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from debugbroker.agent.integrations.capture import agent_transport, report_error
from debugbroker.agent.middleware import request_info

__all__ = ["install_django", "install_flask", "reports_django", "reports_flask"]

_lock = threading.Lock()
_flask_apps: list[Any] = []
_flask_every = False
_flask_connected = False
_django_connected = False


def _report_request_error(error: object, environ: object) -> None:
    if not isinstance(error, BaseException):
        return
    options = agent_transport().options
    mapping = environ if isinstance(environ, dict) else None
    request = request_info(mapping, options) if mapping is not None else None
    report_error(error, (), request=request, environ=mapping)


def install_flask(app: Any = None) -> None:
    """Report the errors Flask's ``app`` handles itself (every app when None); idempotent."""
    global _flask_every, _flask_connected
    from flask import got_request_exception  # noqa: PLC0415 - not an agent dependency

    with _lock:
        if app is None:
            _flask_every = True
        elif all(known is not app for known in _flask_apps):
            _flask_apps.append(app)
        if not _flask_connected:
            got_request_exception.connect(_on_flask_exception, weak=False)
            _flask_connected = True


def reports_flask(app: Any) -> bool:
    """Whether ``install_flask`` reports the errors ``app`` answers itself."""
    with _lock:
        return _flask_connected and (_flask_every or any(known is app for known in _flask_apps))


def reports_django() -> bool:
    """Whether ``install_django`` reports the errors Django answers itself."""
    return _django_connected


def _on_flask_exception(sender: Any, exception: object = None, **_: object) -> None:
    try:
        if not _flask_every and all(known is not sender for known in _flask_apps):
            return
        from flask import has_request_context, request  # noqa: PLC0415

        environ = request.environ if has_request_context() else None
        _report_request_error(exception, environ)
    except Exception:  # Flask's own handling must go on
        pass


def install_django() -> None:
    """Report the errors Django handles itself (its ``got_request_exception``); idempotent."""
    global _django_connected
    from django.core.signals import got_request_exception  # noqa: PLC0415

    with _lock:
        if not _django_connected:
            got_request_exception.connect(
                _on_django_exception, weak=False, dispatch_uid="debugbroker"
            )
            _django_connected = True


def _on_django_exception(sender: object = None, request: object = None, **_: object) -> None:
    try:
        _report_request_error(sys.exc_info()[1], getattr(request, "META", None))
    except Exception:  # Django's own handling must go on
        pass
