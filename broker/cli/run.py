"""``debugbroker run MODULE:APP``: serve a WSGI app for local development, agent attached.

The counterpart of Werkzeug's ``run_simple(use_debugger=True)``: the app is found as
``flask --app`` finds it (``MODULE:NAME``, ``MODULE:FACTORY(ARGS)``, or ``MODULE``; the
current directory first on ``sys.path``), a Flask app is made to propagate its errors as
Flask's debug mode does, the app is wrapped in ``DebuggedApplication`` unless it already
is, and served by the standard library's threaded WSGI server. Errors go to the broker at
``DEBUGBROKER_URL``; ``--with-broker`` runs a broker in this same process, so one command
gives an app and its dashboard.
"""

from __future__ import annotations

import argparse
import ast
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

__all__ = [
    "RunError",
    "add_run_arguments",
    "attach_agent",
    "load_app",
    "prepare_flask",
    "run_command",
]

WSGIApp = Callable[..., Any]


class RunError(Exception):
    """What the user gave cannot be served: the message says why."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


_DEFAULT_NAMES = ("app", "application")  # tried in order when MODULE has no :NAME, as flask
_DEFAULT_FACTORIES = ("create_app", "make_app")


def _factory_call(attribute: str, target: str) -> tuple[str, tuple[object, ...], dict[str, Any]]:
    """``NAME(args)`` split as ``flask --app`` does: the name, and literal arguments only."""
    try:
        call = ast.parse(attribute.strip(), mode="eval").body
    except SyntaxError:
        raise RunError(f"cannot parse {attribute!r} in {target!r} as a call") from None
    if not isinstance(call, ast.Call):
        raise RunError(f"cannot parse {attribute!r} in {target!r} as a call")
    name = ast.unparse(call.func)
    try:
        args = tuple(ast.literal_eval(arg) for arg in call.args)
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError:
        raise RunError(f"the arguments of {attribute!r} must be literals (like 'dev')") from None
    if len(kwargs) != len(call.keywords):
        raise RunError(f"the arguments of {attribute!r} must be literals (like 'dev')")
    return name, args, kwargs


def _attribute(module: object, module_name: str, dotted: str) -> object:
    found = module
    for part in dotted.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise RunError(f"module {module_name!r} has no attribute {dotted!r}") from None
    return found


def load_app(target: str) -> WSGIApp:
    """Import ``MODULE:NAME`` or call ``MODULE:FACTORY(ARGS)``, as ``flask --app`` does.

    Dotted names are followed; factory arguments must be literals. Without ``:NAME``,
    ``app``, then ``application``, then a ``create_app()`` or ``make_app()`` factory.
    """
    module_name, _, attribute = target.partition(":")
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
    if not attribute:
        names = [n for n in _DEFAULT_NAMES if hasattr(module, n)]
        factories = [f"{n}()" for n in _DEFAULT_FACTORIES if callable(getattr(module, n, None))]
        attribute = (names + factories + ["app"])[0]
    if "(" in attribute:
        name, args, kwargs = _factory_call(attribute, target)
        factory = _attribute(module, module_name, name)
        if not callable(factory):
            raise RunError(f"{module_name}:{name} is a {type(factory).__name__}, not a factory")
        found: object = factory(*args, **kwargs)
    else:
        found = _attribute(module, module_name, attribute)
    if not callable(found):
        raise RunError(f"{target} is a {type(found).__name__}, not a WSGI application")
    return found


def prepare_flask(app: WSGIApp) -> None:
    """Make a Flask app let its errors reach the agent, as Flask's debug mode does.

    Flask answers a view's error with its own 500 page unless ``PROPAGATE_EXCEPTIONS`` is
    on, and turns a missing form or query key into a bare 400 unless
    ``TRAP_BAD_REQUEST_ERRORS`` is on; ``flask run --debug`` switches both on. Values the
    app set itself are kept. Recognised by its config (no Flask import).
    """
    config = getattr(app, "config", None)
    if not isinstance(config, dict) or "PROPAGATE_EXCEPTIONS" not in config:
        return
    for key in ("PROPAGATE_EXCEPTIONS", "TRAP_BAD_REQUEST_ERRORS"):
        if config.get(key) is None:
            config[key] = True


def attach_agent(app: WSGIApp, options: Options) -> DebuggedApplication:
    """The app in ``DebuggedApplication``; an app that already has one is served as it is."""
    if isinstance(app, DebuggedApplication):
        return app
    return DebuggedApplication(app, options=options)


def app_name_of(app: WSGIApp, target: str) -> str:
    """The name reports carry: ``DEBUGBROKER_APP``, else the app's own (Flask's
    ``app.name``), else the module of ``MODULE:APP``."""
    name = getattr(app, "name", None)
    return os.environ.get("DEBUGBROKER_APP") or (
        name if isinstance(name, str) and name else target.partition(":")[0]
    )


_WELCOME_WAIT_SECONDS = 3.0


def _connect_agent(served: DebuggedApplication) -> None:
    """Start the agent now and wait briefly for the broker's welcome, so that the first
    error's 500 page and log line already link to the broker's own dashboard URL."""
    transport = served.transport
    if transport.wait_connected(_WELCOME_WAIT_SECONDS):
        print(f"  dashboard: {transport.dashboard_url}/", flush=True)
    else:
        print(
            f"  no broker answered at {served.options.broker_url} yet; reports wait for it",
            flush=True,
        )


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
    prepare_flask(app)
    overrides: dict[str, Any] = {"app_name": app_name_of(app, args.target)}
    if args.no_evalex:
        overrides["evalex"] = False
    if not args.with_broker:
        options = Options.from_environment(**overrides)
        served = attach_agent(app, options)
        server = _serve_app(served, args.host, args.port)
        print(f"  errors go to the broker at {options.broker_url}", flush=True)
        _connect_agent(served)
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
    from debugbroker.broker.cli.main import config_from_args, start_serving

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
        broker = await start_serving(config, show_token)
        if broker is None:
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
