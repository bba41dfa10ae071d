"""The broker as one aiohttp application: store, relay, API, WebSocket and dashboard files.

Everything runs in one asyncio loop: the zmq ROUTER (``zmq.asyncio``), the HTTP server and
the WebSocket fan-out. SQLite work happens on the store's own thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from debugbroker.broker.http.api import RELAY, STORE, api_routes
from debugbroker.broker.http.audit import announce_store_faults, security_routes
from debugbroker.broker.http.auth import (
    LOOPBACK_HOSTS,
    AccessPolicy,
    cookie_name_for,
    host_name,
    login_routes,
    origin_of,
    security_middleware,
)
from debugbroker.broker.http.breakpoints import breakpoint_routes
from debugbroker.broker.http.console import console_command, console_routes
from debugbroker.broker.http.editor import editor_routes
from debugbroker.broker.http.openapi import openapi_routes
from debugbroker.broker.http.reports import report_routes
from debugbroker.broker.http.static_files import StaticSite
from debugbroker.broker.http.triage import triage_routes
from debugbroker.broker.http.ws import EventHub
from debugbroker.broker.relay.requests import EvalFailure
from debugbroker.broker.relay.router import Relay
from debugbroker.broker.store.store import Retention, Store
from debugbroker.protocol import STOPPING

__all__ = ["BrokerConfig", "HUB", "POLICY", "build_app", "STATIC_DIR"]

log = logging.getLogger("debugbroker")
STATIC_DIR = Path(__file__).resolve().parent / "static"
HUB = web.AppKey("hub", EventHub)
POLICY = web.AppKey("policy", AccessPolicy)
_MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """Everything the broker is told on its command line."""

    http_host: str = "127.0.0.1"
    http_port: int = 8780
    zmq_endpoint: str = "tcp://127.0.0.1:8781"
    data_dir: Path
    token: str
    view_token: str = ""
    secret: str
    public_url: str = ""
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    agent_timeout: float = 10.0
    eval_timeout: float = 30.0
    editor: str = "none"  # the default for "Open in editor" links (vscode, pycharm)
    path_map: tuple[tuple[str, str], ...] = ()  # container path prefix -> host path prefix
    secure_cookie: bool = False
    login_code_seconds: float = 300.0  # how long a printed one-time login code stays valid
    # Plain zmq to agents instead of CurveZMQ with keys derived from ``secret``: readable on
    # the network, and agents cannot tell the broker from whatever binds its port. Warned.
    insecure_plaintext: bool = False
    max_waiting_reports: int = 1_000  # reports kept in memory through a full disk
    sweep_seconds: float = 300.0  # the store-wide retention runs at least this often
    retention: Retention = field(default_factory=Retention)

    @property
    def dashboard_url(self) -> str:
        """The dashboard's URL as users and agents' 500 pages should show it."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.http_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"


async def _announce_retention(hub: EventHub, deleted: int) -> None:
    """Tell the dashboards that retention deleted reports: they fetch the groups' counts."""
    await hub.publish({"type": "triage", "action": "retention", "deleted": deleted})


async def _going_away(app: web.Application) -> None:
    """At shutdown, once the listener is closed: evals still waiting for their agent answer
    503 ``stopping`` now, and the dashboards' WebSockets close, so that their pages show the
    broker gone at once and the server need not wait for them (it waited 32 s, while a page
    thought itself connected and its requests were refused)."""
    app[RELAY].requests.fail(EvalFailure(STOPPING, "the broker is shutting down"))
    await app[HUB].close()


def build_app(config: BrokerConfig) -> web.Application:
    """The aiohttp application of a broker with this configuration (not yet started)."""
    hosts = set(LOOPBACK_HOSTS) | set(config.allowed_hosts)
    if config.http_host not in ("0.0.0.0", "::", ""):
        hosts.add(config.http_host.lower())
    if config.public_url:
        hosts.add(host_name(urlsplit(config.public_url).netloc))
    policy = AccessPolicy(
        token=config.token,
        view_token=config.view_token,
        allowed_hosts=frozenset(hosts),
        # Behind a TLS-terminating proxy the broker sees http, but the browser is on https.
        secure_cookie=config.secure_cookie or config.public_url.startswith("https://"),
        public_origin=origin_of(config.public_url),
        cookie_name=cookie_name_for(f"{config.dashboard_url} {config.data_dir.resolve()}"),
        dashboard_url=config.dashboard_url,
        login_code_seconds=config.login_code_seconds,
        sessions_path=config.data_dir / "sessions",
    )
    app = web.Application(
        middlewares=[security_middleware(policy)], client_max_size=_MAX_REQUEST_BYTES
    )
    store = Store(config.data_dir / "debugbroker.sqlite3", config.retention)
    store.max_waiting_reports = config.max_waiting_reports
    store.sweep_seconds = config.sweep_seconds
    hub = EventHub(policy)
    relay = Relay(
        endpoint=config.zmq_endpoint,
        secret=config.secret,
        dashboard_url=config.dashboard_url,
        store=store,
        publish=hub.publish,
        agent_timeout=config.agent_timeout,
        eval_timeout=config.eval_timeout,
        insecure_plaintext=config.insecure_plaintext,
    )
    app[STORE] = store
    app[RELAY] = relay
    app[HUB] = hub
    app[POLICY] = policy
    static = StaticSite(STATIC_DIR)  # "/" and /static/, with content-versioned URLs

    async def lifecycle(app: web.Application) -> object:
        await static.load()
        await asyncio.to_thread(policy.load_sessions)
        await store.open()
        await relay.start()
        if config.insecure_plaintext:
            log.warning(
                "agents connect to %s in PLAIN TEXT (--insecure-plaintext): anyone on the "
                "network reads reports and can pose as this broker",
                relay.bound_endpoint,
            )
        else:
            log.info("agents connect to %s (encrypted, keys from the secret)", relay.bound_endpoint)
        faults = asyncio.create_task(announce_store_faults(store, relay, hub))
        quiet_sweeps = store.sweep_while_quiet(partial(_announce_retention, hub))
        sweeps = asyncio.create_task(quiet_sweeps, name="debugbroker-retention")
        yield
        faults.cancel()
        sweeps.cancel()
        await hub.close()
        await relay.stop()
        await store.close()
        await policy.save_sessions()  # with the sessions' last use

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    app.on_shutdown.append(_going_away)
    app.add_routes(login_routes(policy))
    app.add_routes(security_routes(store, relay, policy, hub))
    app.add_routes(openapi_routes(policy.cookie_name))
    app.add_routes(api_routes())
    app.add_routes(breakpoint_routes())
    app.add_routes(editor_routes(config.editor, config.path_map))
    app.add_routes(report_routes())
    app.add_routes(triage_routes())
    app.add_routes(console_routes())
    hub.commands = console_command(app)
    app.add_routes([web.get("/api/ws", hub.handle)])
    app.add_routes(static.routes())
    return app
