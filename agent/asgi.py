"""The ASGI middleware: the same reports and 500 answers as the WSGI one, for async apps.

It follows Starlette's ``ServerErrorMiddleware``: it tracks whether the response started,
sends its 500 only while no headers went out, and always re-raises, so the server logs the
error as it would without us. Lifespan events pass straight through; an error on a
WebSocket is reported and re-raised (there is no page to answer with).

With Starlette or FastAPI, add it as a middleware (``app.add_middleware(DebuggedASGIApplication)``)
so it sits inside Starlette's own error middleware, which otherwise answers first.

With its first request it also reports the server loop's unretrieved task errors
(``install_asyncio``; ``asyncio_errors=False`` leaves the loop's handler alone).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

from debugbroker.agent.answers import (
    dispose,
    error_answer,
    report_url,
    submit_error,
    traceback_text,
)
from debugbroker.agent.breakpoints import THREAD_TRACE, trace_this_thread
from debugbroker.agent.integrations.asyncio_tasks import install_asyncio
from debugbroker.agent.middleware import request_info
from debugbroker.agent.options import Options, middleware_options
from debugbroker.agent.process import get_transport
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report

__all__ = ["DebuggedASGIApplication", "environ_from_scope"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_HEADERS = 100


def environ_from_scope(scope: Scope) -> dict[str, Any]:
    """A small WSGI-style view of an HTTP scope, for the helpers both middlewares share."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(scope.get("method", "GET")),
        "SCRIPT_NAME": str(scope.get("root_path", "")),
        "PATH_INFO": str(scope.get("path", "/")),
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
        "wsgi.url_scheme": str(scope.get("scheme", "http")),
    }
    server = scope.get("server")
    if server and len(server) == 2 and server[1] is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
    client = scope.get("client")
    if client and len(client) == 2:
        environ["REMOTE_ADDR"] = str(client[0])
    for count, (raw_name, raw_value) in enumerate(scope.get("headers", ())):
        if count >= _MAX_HEADERS:
            break
        name = bytes(raw_name).decode("latin-1").upper().replace("-", "_")
        value = bytes(raw_value).decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class DebuggedASGIApplication:
    """Wraps an ASGI app: errors become dashboard reports with live frames, and a 500 page."""

    def __init__(
        self,
        app: ASGIApp,
        evalex: bool = True,
        *,
        broker_url: str | None = None,
        secret: str | None = None,
        app_name: str | None = None,
        options: Options | None = None,
        console: bool = False,
        asyncio_errors: bool = True,
    ) -> None:
        base = options if options is not None else Options.from_environment()
        self.app = app
        self.options = middleware_options(
            base,
            evalex=evalex,
            console=console,
            broker_url=broker_url,
            secret=secret,
            app_name=app_name,
        )
        self.evalex = self.options.evalex
        self.asyncio_errors = asyncio_errors
        self._loop: object = None  # the loop whose exception handler is ours
        if self.options.console and self.evalex:  # the console is there before any request
            self._start_agent()

    @property
    def transport(self) -> Transport:
        """This process's agent transport (made on first use, and again after a fork)."""
        return get_transport(self.options)

    def _start_agent(self) -> None:
        """Start (or find) this process's agent; a failure never reaches the app."""
        try:
            get_transport(self.options)
        except Exception:
            pass  # the next request tries again; the app runs either way

    def _watch_loop(self) -> None:
        """Report the running loop's unretrieved task errors (``install_asyncio``), once."""
        try:
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                self._loop = loop
                install_asyncio(loop)
        except Exception:
            pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an error, report it, answer a 500 if nothing was sent, re-raise."""
        kind = scope.get("type")
        if kind not in ("http", "websocket"):  # lifespan and anything newer: not ours
            await self.app(scope, receive, send)
            return
        self._start_agent()  # with the first request, so the dashboard lists this process
        if THREAD_TRACE.needed:  # 3.10/3.11 with breakpoints armed: hook the loop's thread
            trace_this_thread()
        if self.asyncio_errors:
            self._watch_loop()
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message.get("type") in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            environ = environ_from_scope(scope)
            transport, _, key, repeat_of = dispose(error, self.options)
            report: Report | None = None
            if repeat_of is None:
                request = request_info(environ, self.options)
                report, transport = submit_error(error, self.options, request)
                _forget_in_snapshot(sys._getframe(), "error")
                if report is not None and transport is not None:
                    transport.repeats.represent(key, report.id)
                    _log(f"debugbroker: report {report_url(transport, report.id)}")
            else:
                _log(
                    f"debugbroker: {type(error).__name__} repeated: counted, not captured; its "
                    f"last full report is {report_url(transport, repeat_of)}"
                )
            if kind == "http" and not started:
                secret = secret_pattern(self.options)
                text = traceback_text(error, report, secret)
                status, headers, body = error_answer(
                    error,
                    environ,
                    report,
                    transport,
                    text,
                    self.options.broker_url,
                    secret,
                    repeat_of,
                    repeat_of is not None,
                )
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": int(status.split()[0]),
                            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                except Exception:  # the client left: the server still logs the error below
                    pass
            raise  # the server logs it and closes the connection, as without us


def _forget_in_snapshot(frame: FrameType, name: str) -> None:
    """Drop ``name`` from the locals snapshot capture left on ``frame``.

    Capture read ``f_locals`` of this running frame while ``error`` was bound: the cached
    snapshot would keep error -> traceback -> frame -> snapshot -> error alive as a cycle
    (with every local of the failed request) until a full collection. This handler re-raises
    from inside ``except``, so, unlike the WSGI middleware, it cannot re-read ``f_locals``
    after the block; it removes the entry instead (the real local is untouched).
    """
    try:
        snapshot = frame.f_locals
        if isinstance(snapshot, dict):
            snapshot.pop(name, None)
    except Exception:
        pass


def _log(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except Exception:  # stderr closed: the page and the dashboard still have it
        pass
