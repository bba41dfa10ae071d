"""Who may use the dashboard: tokens, the login cookie, Host and Origin checks, headers.

This broker runs code in other processes on request, so every rule here is deliberate:

- A token is always required. The session cookie holds an HMAC of the token (never the
  token itself), is HttpOnly and SameSite=Strict, and stays valid across broker restarts.
- Two roles: the full token may run code; the view token may only read.
- The Host header must be on the allowlist (loopback names by default): a DNS-rebinding page
  reaches the broker under its own host name and is refused.
- Requests that change state, and the WebSocket, must come from the dashboard's own origin
  when they carry an Origin; cookie-authenticated ones must carry it.
- Failed logins are rate-limited per client address; tokens are compared in constant time
  and never logged. Failures that a browser marks as cross-site (``Sec-Fetch-Site``) are
  counted apart, so a hostile page that fires wrong logins at the loopback address cannot
  lock out the user's own logins from the terminal or the dashboard.
- Every answer, errors included, carries the security headers; errors under ``/api/`` are
  JSON like every other API answer.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import zmq
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

__all__ = [
    "json_error",
    "AccessPolicy",
    "Role",
    "LOOPBACK_HOSTS",
    "ROLE_KEY",
    "security_middleware",
    "login_routes",
    "host_name",
    "load_or_create_curve_keys",
    "origin_of",
]

Role = Literal["full", "view"]
ROLE_KEY = "debugbroker_role"
COOKIE_NAME = "debugbroker_session"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FAILURE_WINDOW_SECONDS = 60.0
_MAX_FAILURES = 10  # per client address and window
_LOUD_BAD_REQUESTS = 20  # unparseable requests logged one by one; then every 100th
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("debugbroker.auth")


def host_name(host_header: str) -> str:
    """The host name of a Host header or netloc, without port and brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@dataclass(slots=True)
class AccessPolicy:
    """The broker's access rules; one instance per app."""

    token: str
    view_token: str = ""
    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    secure_cookie: bool = False
    # The dashboard's public origin (``--public-url``): a proxy may rewrite the Host header.
    public_origin: str = ""
    failures: dict[str, deque[float]] = field(default_factory=dict)
    failed_total: int = 0
    bad_requests: int = 0  # HTTP requests aiohttp could not even parse

    def session_value(self, role: Role) -> str:
        """The cookie value of a role: an HMAC of its token, so the token is never stored."""
        token = self.token if role == "full" else self.view_token
        return hmac.new(token.encode(), b"debugbroker-session-v1", hashlib.sha256).hexdigest()

    def role_of_token(self, given: str) -> Role | None:
        """The role a presented token grants, compared in constant time, or None."""
        full = hmac.compare_digest(given.encode(), self.token.encode())
        view = bool(self.view_token) and hmac.compare_digest(
            given.encode(), self.view_token.encode()
        )
        return "full" if full else "view" if view else None

    def role_of_cookie(self, value: str) -> Role | None:
        """The role a session cookie grants, or None."""
        if hmac.compare_digest(value.encode(), self.session_value("full").encode()):
            return "full"
        if self.view_token and hmac.compare_digest(
            value.encode(), self.session_value("view").encode()
        ):
            return "view"
        return None

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether the Host header names this broker (DNS-rebinding defence)."""
        if "*" in self.allowed_hosts:
            return True
        return bool(host_header) and host_name(host_header or "") in self.allowed_hosts

    def throttled(self, client: str) -> bool:
        """Whether this client failed to log in too often lately."""
        recent = self.failures.get(client)
        if not recent:
            return False
        cutoff = time.monotonic() - _FAILURE_WINDOW_SECONDS
        while recent and recent[0] < cutoff:
            recent.popleft()
        return len(recent) >= _MAX_FAILURES

    def record_failure(self, client: str) -> None:
        """Count a failed login or a wrong token from this client."""
        self.failed_total += 1
        if len(self.failures) > 10_000:  # bounded: forget the quietest clients
            self.failures.clear()
        self.failures.setdefault(client, deque(maxlen=_MAX_FAILURES * 2)).append(time.monotonic())


def json_error(status: int, message: str) -> web.Response:
    """The JSON error answer every API route gives: ``{"error": message}``."""
    return web.json_response({"error": message}, status=status)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower case, as browsers send in Origin."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origin_matches(policy: AccessPolicy, request: web.Request, origin: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        return False
    if parts.netloc.lower() == request.host.lower():
        return True
    return bool(policy.public_origin) and origin.lower() == policy.public_origin


def _client(request: web.Request) -> str:
    """The rate-limit key: the client address, and whether a browser said "cross-site".

    Only two buckets per address, so a client choosing its own ``Sec-Fetch-Site`` gains
    at most twice the attempts, while a web page (whose requests browsers always mark
    cross-site) can only use up its own bucket, never the user's.
    """
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    bucket = "cross" if site in ("cross-site", "same-site") else "direct"
    return f"{request.remote or '?'} {bucket}"


def _authenticate(policy: AccessPolicy, request: web.Request) -> tuple[Role | None, bool]:
    """The request's role and whether it came by cookie (None when it has no valid one)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return policy.role_of_token(credentials.strip()), False
        return None, False
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie:
        return policy.role_of_cookie(cookie), True
    return None, False


def _secure_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")


class _QuietBadRequests(logging.Filter):
    """aiohttp logs a traceback for every unparseable request; make it one counted line.

    The line names the error's type only: its message quotes the offending request line or
    header, which may hold a token.
    """

    def __init__(self, policy: AccessPolicy) -> None:
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        self.policy.bad_requests += 1
        count = self.policy.bad_requests
        if count > _LOUD_BAD_REQUESTS and count % 100:
            return False
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "dropped an unparseable HTTP request from %s (%s; %d so far)"
        record.args = (client, type(error).__name__, count)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def security_middleware(policy: AccessPolicy) -> Middleware:
    """Host allowlist, Origin checks, API authentication and security headers."""
    logging.getLogger("aiohttp.server").addFilter(_QuietBadRequests(policy))

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not policy.host_allowed(request.headers.get("Host")):
            response: web.StreamResponse = web.Response(
                status=421,
                text=(
                    f"debugbroker: the host name {request.host!r} is not allowed. "
                    "Start the broker with --allow-host NAME to reach it under this name.\n"
                ),
            )
            _secure_headers(response)
            return response
        origin = request.headers.get("Origin")
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        changes_state = request.method not in _SAFE_METHODS or is_websocket
        is_api = request.path.startswith("/api/")
        try:
            foreign = origin is not None and not _origin_matches(policy, request, origin)
            if changes_state and foreign:
                response = json_error(403, f"cross-origin request from {origin!r} refused")
            elif is_api and request.path != "/api/openapi.json":
                response = await _guarded_api(policy, request, handler, changes_state, origin)
            else:
                response = await handler(request)
        except web.HTTPException as error:  # 404, 405, 413 from aiohttp itself
            if not is_api or error.status < 400:
                _secure_headers(error)
                raise
            response = json_error(error.status, error.reason)
            if "Allow" in error.headers:
                response.headers["Allow"] = error.headers["Allow"]
        except Exception:  # aiohttp's own 500 page would lack the headers below
            log.exception("error while answering %s %s", request.method, request.path)
            response = json_error(500, "internal error in the broker; see its log")
        _secure_headers(response)
        return response

    return middleware


async def _guarded_api(
    policy: AccessPolicy,
    request: web.Request,
    handler: Handler,
    changes_state: bool,
    origin: str | None,
) -> web.StreamResponse:
    client = _client(request)
    if policy.throttled(client):
        return json_error(429, "too many failed attempts; wait a minute and try again")
    role, by_cookie = _authenticate(policy, request)
    if role is None:
        if request.headers.get("Authorization") or request.cookies.get(COOKIE_NAME):
            policy.record_failure(client)
        return json_error(401, "log in first: open the login URL the broker printed")
    if changes_state and by_cookie and origin is None:
        return json_error(403, "a request with the session cookie must carry an Origin header")
    request[ROLE_KEY] = role
    return await handler(request)


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>debugbroker: log in</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css"></head>
<body class="login-page"><main class="login"><h1>debugbroker</h1><p>{message}</p>
<form method="post" action="/login"><label>Token <input name="token" type="password"
autocomplete="current-password" required></label> <button type="submit">Log in</button></form>
</main></body></html>
"""


def _login_page(status: int, message: str) -> web.Response:
    body = _LOGIN_PAGE.format(message=html.escape(message))
    return web.Response(status=status, text=body, content_type="text/html")


def login_routes(policy: AccessPolicy) -> list[web.RouteDef]:
    """``/login`` (GET with ``?token=``, or POST from the form) and ``POST /logout``."""

    async def login(request: web.Request) -> web.StreamResponse:
        client = _client(request)
        if policy.throttled(client):
            return _login_page(429, "Too many failed attempts. Wait a minute and try again.")
        if request.method == "POST":
            form = await request.post()
            given = form.get("token")
        else:
            given = request.query.get("token")
        if not isinstance(given, str) or not given:
            return _login_page(401, "Paste the token the broker printed when it started.")
        role = policy.role_of_token(given.strip())
        if role is None:
            policy.record_failure(client)
            return _login_page(401, "That token is not valid for this broker.")
        response = web.Response(status=302, headers={"Location": "/"})
        response.set_cookie(
            COOKIE_NAME,
            policy.session_value(role),
            httponly=True,
            samesite="Strict",
            secure=policy.secure_cookie or request.secure,
            path="/",
        )
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE_NAME, path="/")
        return response

    async def session(request: web.Request) -> web.StreamResponse:
        client = _client(request)
        if policy.throttled(client):  # else this would be an unlimited token oracle
            return json_error(429, "too many failed attempts; wait a minute and try again")
        role, _ = _authenticate(policy, request)
        if role is None:
            if request.headers.get("Authorization") or request.cookies.get(COOKIE_NAME):
                policy.record_failure(client)
            return json_error(401, "not logged in")
        return web.json_response({"role": role})

    return [
        web.get("/login", login),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/session", session),
    ]


def load_or_create_curve_keys(directory: Path) -> tuple[str, str]:
    """The broker's CurveZMQ key pair (public, secret; z85 text), made on first use.

    The secret key stays in ``curve_secret.key`` (mode 0600) in the data dir; the public
    key is also written to ``curve_public.key`` for agents to be given.
    """
    secret_path = directory / "curve_secret.key"
    public_path = directory / "curve_public.key"
    try:
        secret = secret_path.read_text(encoding="ascii").strip()
        public = zmq.curve_public(secret.encode("ascii")).decode("ascii")
    except FileNotFoundError:
        public_bytes, secret_bytes = zmq.curve_keypair()
        public, secret = public_bytes.decode("ascii"), secret_bytes.decode("ascii")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secret + "\n")
    except (UnicodeError, ValueError, zmq.ZMQError) as error:
        raise ValueError(f"{secret_path} does not hold a CurveZMQ secret key: {error}") from None
    public_path.write_text(public + "\n", encoding="ascii")
    return public, secret
