"""``LoggingHandler`` and ``install_logging``: logged exceptions become reports with live frames.

A record that carries an exception (``logger.exception(...)``, ``logger.error(...,
exc_info=True)``) at or above the handler's level is reported like ``capture_exception``
does, with a Log record panel: the message, the logger's name, the level and where it was
logged. Records without an exception are left to the other handlers: there are no frames to
hold. An exception that is logged and then reaches the middleware is reported once (the
middleware's 500 links the logged report).
"""

from __future__ import annotations

import logging
import threading

from debugbroker.agent.capture.panels import make_panel
from debugbroker.agent.integrations.capture import agent_transport, report_error
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error, safe_text

__all__ = ["LoggingHandler", "install_logging", "record_message"]

_MAX_MESSAGE = 8_192
_busy = threading.local()  # a report being made on this thread: records it logs are not ours


def record_message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, or a note saying why its args do not fit its format."""
    try:
        return safe_text(record.getMessage(), _MAX_MESSAGE)[0]
    except USER_CODE_ERRORS as error:  # "%d" % "x", too few args, a broken __str__
        try:
            fmt = safe_text(str(record.msg), 500)[0]
        except USER_CODE_ERRORS:
            fmt = "<format str() failed>"
        return f"<message could not be formatted ({describe_error(error, 300)}): {fmt!r}>"


class LoggingHandler(logging.Handler):
    """A ``logging.Handler`` that reports each logged exception to the debugbroker broker."""

    def emit(self, record: logging.LogRecord) -> None:
        """Report the record's exception, if it has one; never raises."""
        if getattr(_busy, "active", False):
            return
        _busy.active = True
        try:
            exc_info = record.exc_info
            error = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
            if not isinstance(error, BaseException):
                return
            items: list[tuple[str, object]] = [
                ("message", record_message(record)),
                ("logger", str(record.name)),
                ("level", str(record.levelname)),
                ("logged at", f"{record.pathname}:{record.lineno} in {record.funcName}"),
                ("thread", str(record.threadName)),
            ]
            panel = make_panel("Log record", items, agent_transport().options)
            report_error(error, (panel,))
        except Exception:  # the app's logging must never fail because of us
            pass
        finally:
            _busy.active = False


def install_logging(
    level: int = logging.ERROR, logger: logging.Logger | str | None = None
) -> LoggingHandler:
    """Attach a ``LoggingHandler`` to the root logger, or to ``logger`` (a logger or its name).

    Idempotent: a logger that already has one keeps it (its level is set to ``level``).
    """
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    for handler in target.handlers:
        if isinstance(handler, LoggingHandler):
            handler.setLevel(level)
            return handler
    handler = LoggingHandler(level)
    target.addHandler(handler)
    return handler
