"""The ``debugbroker`` command: ``serve`` runs a broker, ``demo`` a broker with an example app.

The token (dashboard) and the secret (agents) come from the command line, else the
environment (``DEBUGBROKER_TOKEN``, ``DEBUGBROKER_SECRET``), else files in the data dir,
where a new random value is written on first start (mode 0600). Agents on the same machine
and user read that secret file themselves, so a local set-up needs no configuration.
The agent link is encrypted and mutually authenticated with keys derived from that secret
(``protocol.keys``); ``--insecure-plaintext`` turns that off, loudly.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import zmq
from aiohttp import web

from debugbroker.agent.options import (
    DEFAULT_BROKER_URL,
    DEFAULT_DASHBOARD_URL,
    default_data_dir,
    environment_flag,
)
from debugbroker.broker.app import POLICY, BrokerConfig, build_app
from debugbroker.broker.http.editor import parse_editor, parse_path_map
from debugbroker.broker.store.groups import Retention
from debugbroker.broker.store.lock import DataDirLock
from debugbroker.broker.store.schema import StoreError, unwritable_message

__all__ = [
    "start_serving",
    "agent_exports",
    "build_parser",
    "config_from_args",
    "load_or_create",
    "main",
    "parse_http",
    "serve",
]

log = logging.getLogger("debugbroker")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SHORT_SECRET = 16  # characters; shorter agent secrets are warned about
_SHUTDOWN_SECONDS = 5.0  # what a request still running at shutdown gets
_AGENTS_DATA_DIR = Path.home() / ".debugbroker"  # where an agent without DEBUGBROKER_DATA looks


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host defaults to 127.0.0.1)."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range")
    return host, port


def load_or_create(path: Path, given: str | None) -> tuple[str, bool]:
    """A credential: ``given`` if set, else the file's, else a new one saved there.

    Returns the value and whether it came from the file or was made (not given by the user).
    """
    if given:
        return given, False
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, True
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # reports and credentials
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value, True


def _add_broker_arguments(parser: argparse.ArgumentParser, http_default: str) -> None:
    parser.add_argument(
        "--http", default=http_default, metavar="HOST:PORT", help="dashboard address"
    )
    parser.add_argument(
        "--zmq",
        default=os.environ.get("DEBUGBROKER_ZMQ") or DEFAULT_BROKER_URL,
        metavar="ENDPOINT",
        help="where agents connect (zmq endpoint, default %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="where reports, the token and the secret are kept (default ~/.debugbroker)",
    )
    parser.add_argument("--token", default=None, help="dashboard token (DEBUGBROKER_TOKEN)")
    parser.add_argument(
        "--view-token",
        default=None,
        help="a read-only dashboard token (DEBUGBROKER_VIEW_TOKEN): reports, no code",
    )
    parser.add_argument("--secret", default=None, help="agent secret (DEBUGBROKER_SECRET)")
    parser.add_argument(
        "--public-url",
        default=os.environ.get("DEBUGBROKER_PUBLIC_URL", ""),
        help="the dashboard URL users open (shown in 500 pages); default from --http",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name the dashboard answers to (repeatable; '*' for any)",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=10.0,
        help="seconds without a heartbeat before an agent counts as gone",
    )
    parser.add_argument("--eval-timeout", type=float, default=30.0, help="seconds an eval may take")
    parser.add_argument(
        "--login-code-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long the printed one-time login URL stays valid (default %(default)s)",
    )
    parser.add_argument(
        "--insecure-plaintext",
        action="store_true",
        default=environment_flag("DEBUGBROKER_INSECURE_PLAINTEXT"),
        help="talk to agents in plain zmq, without encryption or proof of the broker "
        "(DEBUGBROKER_INSECURE_PLAINTEXT=1; agents need the same setting); never on a "
        "network you do not control",
    )
    parser.add_argument(
        "--editor",
        type=parse_editor,
        default=os.environ.get("DEBUGBROKER_EDITOR", "none"),
        help="default editor of 'Open in editor' links: none, vscode or pycharm "
        "(DEBUGBROKER_EDITOR; each user can change it in the dashboard)",
    )
    parser.add_argument(
        "--path-map",
        type=parse_path_map,
        default=os.environ.get("DEBUGBROKER_PATH_MAP", ""),
        metavar="CONTAINER=HOST[,...]",
        help="map app paths to the editor's machine, e.g. /srv=/home/me/shop "
        "(DEBUGBROKER_PATH_MAP)",
    )
    parser.add_argument(
        "--max-waiting-reports",
        type=int,
        default=1_000,
        help=argparse.SUPPRESS,  # reports kept in memory through a full disk (for tests)
    )
    parser.add_argument(
        "--sweep-seconds",
        type=_non_negative(float),
        default=300.0,
        help=argparse.SUPPRESS,  # how often the store-wide retention runs at least (for tests)
    )
    defaults = Retention()
    parser.add_argument(
        "--retain-days",
        type=_non_negative(float),
        default=defaults.retain_days,
        metavar="DAYS",
        help="delete reports older than this (0: never; default %(default)s)",
    )
    parser.add_argument(
        "--max-reports",
        type=_non_negative(int),
        default=defaults.max_reports,
        metavar="N",
        help="keep at most this many full reports, the oldest go first (0: no limit; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--max-db-mb",
        type=_non_negative(float),
        default=defaults.max_db_mb,
        metavar="MB",
        help="delete the oldest reports while the reports file holds more (0: no limit; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--keep-first",
        type=_non_negative(int),
        default=defaults.keep_first,
        metavar="N",
        help="full reports kept from the start of each group (default %(default)s)",
    )
    parser.add_argument(
        "--keep-latest",
        type=_non_negative(int),
        default=defaults.keep_latest,
        metavar="N",
        help="full reports kept from the end of each group; the others are only counted "
        "(default %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log more")


def _non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` that is 0 or more."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse


def config_from_args(args: argparse.Namespace) -> tuple[BrokerConfig, bool]:
    """The broker configuration, and whether the token is ours to print (not user-given)."""
    data_dir = (args.data or default_data_dir()).expanduser()
    host, port = args.http
    try:
        # Reports and credentials: private to this user, also when the directory existed.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        token, show_token = load_or_create(
            data_dir / "token", args.token or os.environ.get("DEBUGBROKER_TOKEN")
        )
        secret, _ = load_or_create(
            data_dir / "secret", args.secret or os.environ.get("DEBUGBROKER_SECRET")
        )
    except OSError as error:
        raise StoreError(unwritable_message(data_dir, error)) from None
    view_token = args.view_token or os.environ.get("DEBUGBROKER_VIEW_TOKEN") or ""
    config = BrokerConfig(
        http_host=host,
        http_port=port,
        zmq_endpoint=args.zmq,
        data_dir=data_dir,
        token=token,
        view_token=view_token,
        secret=secret,
        public_url=args.public_url,
        allowed_hosts=frozenset(h.lower() for h in args.allow_host),
        agent_timeout=args.agent_timeout,
        eval_timeout=args.eval_timeout,
        login_code_seconds=args.login_code_ttl,
        editor=args.editor,
        path_map=args.path_map,
        insecure_plaintext=args.insecure_plaintext,
        max_waiting_reports=max(args.max_waiting_reports, 0),
        sweep_seconds=max(args.sweep_seconds, 0.1),
        retention=Retention(
            keep_first=args.keep_first,
            keep_latest=args.keep_latest,
            retain_days=args.retain_days,
            max_reports=args.max_reports,
            max_db_mb=args.max_db_mb,
        ),
    )
    return config, show_token


def _is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the dashboard on this machine (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False


def agent_exports(config: BrokerConfig) -> list[str]:
    """The ``export`` lines an agent on this machine needs to report to this broker.

    The endpoint as agents connect to it (a wildcard bind becomes 127.0.0.1); the data
    directory when it is not the one agents look in by default (they read the secret file
    there), or a reminder when the secret was given and is in no file; the dashboard URL
    their 500 pages link to when it is not the default.
    """
    endpoint = config.zmq_endpoint.replace("0.0.0.0", "127.0.0.1").replace("*", "127.0.0.1")
    lines = [f"export DEBUGBROKER_URL={shlex.quote(endpoint)}"]
    try:
        in_file = (config.data_dir / "secret").read_text(encoding="utf-8").strip()
    except OSError:
        in_file = ""
    if in_file != config.secret:
        lines.append("export DEBUGBROKER_SECRET=...  # the secret you gave this broker")
    elif config.data_dir.expanduser().resolve() != _AGENTS_DATA_DIR.resolve():
        lines.append(f"export DEBUGBROKER_DATA={shlex.quote(str(config.data_dir))}")
    if config.dashboard_url != DEFAULT_DASHBOARD_URL:
        lines.append(f"export DEBUGBROKER_PUBLIC_URL={shlex.quote(config.dashboard_url)}")
    if config.insecure_plaintext:
        lines.append(
            "export DEBUGBROKER_INSECURE_PLAINTEXT=1  # as the broker's --insecure-plaintext"
        )
    return lines


def _banner(config: BrokerConfig, show_token: bool, login_url: str) -> str:
    seconds = config.login_code_seconds
    lasts = f"{round(seconds / 60)} min" if seconds >= 120 else f"{seconds:g} s"
    lines = [
        f"debugbroker broker: dashboard on {config.dashboard_url}/",
        f"  log in:  {login_url}",
        f"           (works once, for {lasts}; later, paste the token in the login form)",
    ]
    if show_token:
        lines.append(f"  token:   in {config.data_dir / 'token'}")
    lines.append("  agents:  on this machine, the app needs:")
    lines.extend(f"           {line}" for line in agent_exports(config))
    if len(config.secret) < _SHORT_SECRET:
        lines.append(
            f"  WARNING: the agent secret is shorter than {_SHORT_SECRET} characters: the link's "
            "keys derive from it, so one captured handshake lets it be guessed offline; use a "
            "long random one (the generated secret has 43 characters)."
        )
    if config.insecure_plaintext:
        lines.append(
            "  WARNING: --insecure-plaintext: the agent link is not encrypted and agents cannot "
            "tell this broker from any process bound to its port; agents need "
            "DEBUGBROKER_INSECURE_PLAINTEXT=1."
        )
    lines.append(f"  data:    {config.data_dir}")
    if not _is_loopback(config.http_host):
        lines.append(
            f"  WARNING: the dashboard listens on {config.http_host}, not only this machine; "
            "anyone who has the token can run code in your app."
        )
    if "*" in config.allowed_hosts:
        lines.append(
            "  WARNING: --allow-host '*' answers any Host name: the DNS-rebinding defence "
            "is off; list the names you use instead."
        )
    return "\n".join(lines)


async def start_serving(config: BrokerConfig, show_token: bool) -> asyncio.Task[None] | None:
    """``serve`` as a task, once the broker is ready; None when it could not start (after
    awaiting it, so its error is raised: that error is the answer)."""
    ready = asyncio.Event()
    broker = asyncio.create_task(serve(config, show_token, ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({broker, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if broker.done():
        waiting.cancel()
        await broker
        return None
    return broker


# Container objects allocated (net of those freed) between two collections of the youngest
# generation; Python's default is 700.
_GC_YOUNG_THRESHOLD = 50_000


def _collect_rarely() -> None:
    """Run Python's cycle collector rarely in the broker's own process (``serve``).

    Decoding a report makes about 150 dicts, lists and tuples, all freed by their reference
    counts once it is stored; at the default threshold of 700 the collector still ran every
    few reports, and every tenth or hundredth run walked the older generations, the
    broker's own modules included: 18-19 µs of the event loop's CPU per report in an error
    storm (BENCHMARKS.md, section 8). The objects alive after start-up are frozen (never
    walked again) and the youngest generation is collected once 50,000 more objects live
    than died: cycles are still collected, later. Only in the broker's own process: never
    in an application's (``run``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def serve(config: BrokerConfig, show_token: bool, ready: asyncio.Event | None = None) -> None:
    """Run a broker until cancelled or signalled (``StoreError`` when its data dir is in
    use by another broker, cannot be written or holds a file it cannot open)."""
    lock = DataDirLock(config.data_dir)
    lock.acquire(f"dashboard {config.dashboard_url}/, agents {config.zmq_endpoint}")
    try:
        await _serve_locked(config, show_token, ready)
    finally:
        lock.release()


async def _serve_locked(
    config: BrokerConfig, show_token: bool, ready: asyncio.Event | None
) -> None:
    app = build_app(config)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
        policy = app[POLICY]
        login_url = policy.login_url(policy.issue_login_code("full"))
        print(_banner(config, show_token, login_url), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    """The `debugbroker` command line: serve, demo and run."""
    parser = argparse.ArgumentParser(
        prog="debugbroker",
        description="Interactive tracebacks for multi-process and containerised Python web apps.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the broker and its dashboard")
    _add_broker_arguments(serve_parser, "127.0.0.1:8780")
    demo_parser = commands.add_parser(
        "demo", help="run a broker, an example app and raise a first error"
    )
    _add_broker_arguments(demo_parser, "127.0.0.1:8780")
    demo_parser.add_argument(
        "--app", default="127.0.0.1:8000", metavar="HOST:PORT", help="example app address"
    )
    from debugbroker.broker.cli.run import add_run_arguments

    run_parser = commands.add_parser(
        "run", help="serve a WSGI app (MODULE:APP) with the agent attached, for development"
    )
    add_run_arguments(run_parser)
    _add_broker_arguments(run_parser, "127.0.0.1:8780")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``debugbroker`` command."""
    args = build_parser().parse_args(argv)
    try:
        args.http = parse_http(args.http)
        if args.command == "demo":
            args.app = parse_http(args.app)
    except argparse.ArgumentTypeError as error:
        print(f"debugbroker: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    if args.command == "run":  # no broker credentials unless it runs one (--with-broker)
        from debugbroker.broker.cli.run import run_command

        try:
            return run_command(args)
        except StoreError as error:
            print(f"debugbroker: cannot start: {error}", file=sys.stderr)
            return 1
        except (OSError, zmq.ZMQError) as error:
            print(f"debugbroker: cannot start: {error}", file=sys.stderr)
            return 1
    try:
        config, show_token = config_from_args(args)
        if args.command == "demo":
            from debugbroker.broker.cli.demo import run_demo

            run_demo(config, show_token, args.app)
        else:
            _collect_rarely()
            asyncio.run(serve(config, show_token))
    except StoreError as error:
        print(f"debugbroker: cannot start: {error}", file=sys.stderr)
        return 1
    except (OSError, zmq.ZMQError) as error:
        print(f"debugbroker: cannot start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
