"""``debugbroker run MODULE:APP``: serve a WSGI app for local development, agent attached.

The counterpart of Werkzeug's ``run_simple(use_debugger=True)``: the app is imported (the
current directory first on ``sys.path``), wrapped in ``DebuggedApplication`` unless it
already is, and served by the standard library's threaded WSGI server. Errors go to the
broker at ``DEBUGBROKER_URL``; ``--with-broker`` runs a broker in this same process, so one
command gives an app and its dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from debugbroker.agent import DebuggedApplication, Options

__all__ = ["RunError", "load_app", "attach_agent", "add_run_arguments", "run_command"]

WSGIApp = Callable[..., Any]


class RunError(Exception):
    """What the user gave cannot be served: the message says why."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def load_app(target: str) -> WSGIApp:
    """Import ``MODULE:NAME`` (``NAME`` defaults to ``app``; dotted names are followed)."""
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise RunError(f"expected MODULE:APP (like 'myproject.wsgi:app'), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise RunError(f"no module named {module_name!r} (from {os.getcwd()})") from None
        raise
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise RunError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(found):
        raise RunError(f"{target} is a {type(found).__name__}, not a WSGI application")
    return found


def attach_agent(app: WSGIApp, options: Options) -> DebuggedApplication:
    """The app in ``DebuggedApplication``; an app that already has one is served as it is."""
    if isinstance(app, DebuggedApplication):
        return app
    return DebuggedApplication(app, options=options)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` subcommand's own arguments (the broker's are added by ``cli``)."""
    parser.add_argument("target", metavar="MODULE:APP", help="the WSGI app, e.g. myapp:app")
    parser.add_argument("--host", default="127.0.0.1", help="app address (default %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="app port (default %(default)s)")
    parser.add_argument(
        "--with-broker",
        action="store_true",
        help="also run a broker and its dashboard in this process (--http, --zmq, --data…)",
    )
    parser.add_argument(
        "--no-evalex", action="store_true", help="reports only: refuse code execution"
    )


def _serve_app(app: WSGIApp, host: str, port: int) -> WSGIServer:
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_Handler)
    print(f"debugbroker run: serving http://{host}:{server.server_port}/", flush=True)
    return server


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds serve_forever, so the agent says bye at exit


def run_command(args: argparse.Namespace) -> int:
    """Run ``debugbroker run``; returns the exit status."""
    if not 0 <= args.port <= 65535:
        print(f"debugbroker: port {args.port} is out of range", file=sys.stderr)
        return 2
    try:
        app = load_app(args.target)
    except RunError as error:
        print(f"debugbroker: {error}", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {"evalex": False} if args.no_evalex else {}
    if not args.with_broker:
        options = Options.from_environment(**overrides)
        server = _serve_app(attach_agent(app, options), args.host, args.port)
        print(f"  errors go to the broker at {options.broker_url}", flush=True)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    return _run_with_broker(app, args, overrides)


def _run_with_broker(app: WSGIApp, args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from debugbroker.broker.cli.main import config_from_args, serve

    config, show_token = config_from_args(args)
    endpoint = config.zmq_endpoint.replace("0.0.0.0", "127.0.0.1").replace("*", "127.0.0.1")
    options = Options.from_environment(
        broker_url=endpoint,
        secret=config.secret,
        dashboard_url=config.dashboard_url,
        insecure_plaintext=config.insecure_plaintext,
        **overrides,
    )

    async def main() -> None:
        ready = asyncio.Event()
        broker = asyncio.create_task(serve(config, show_token, ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({broker, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if broker.done():  # it could not start: its error is the answer
            waiting.cancel()
            await broker
            return
        server = _serve_app(attach_agent(app, options), args.host, args.port)
        threading.Thread(target=server.serve_forever, name="app-server", daemon=True).start()
        try:
            await broker
        finally:
            server.shutdown()
            server.server_close()

    asyncio.run(main())
    return 0
