"""Who may use the dashboard: tokens, sessions, one-time login codes, Host and Origin checks.

This broker runs code in other processes on request, so every rule here is deliberate:

- A token is always required. A login (with the token, or with a one-time code from the
  printed login URL) opens a random session, with an idle and an absolute expiry; logout
  ends it. Sessions are kept (as digests only) in the data dir's ``sessions`` file, bound to
  the tokens: a restart with the same tokens keeps them, a new token ends them all. The
  session cookie holds only the session's random id; it is HttpOnly and SameSite=Strict, and
  its name carries the broker's instance so two brokers on one host keep their own.
- A cookie alone never changes state: a state-changing request authenticated by the cookie
  must also send the session's key (``X-Debugbroker-Key``), which the login answered to the
  dashboard and which it keeps in the tab's memory and sessionStorage. Browsers send cookies
  to every port of a host; the key they never send anywhere by themselves.
- Two roles: the full token may run code; the view token may only read.
- The Host header must be on the allowlist (loopback names by default): a DNS-rebinding page
  reaches the broker under its own host name and is refused.
- Requests that change state, and the WebSocket, must come from the dashboard's own origin
  when they carry an Origin; cookie-authenticated ones must carry it.
- Failed credential attempts (a wrong token or code at login, a wrong Bearer token) are
  counted per client, all loopback addresses being one client and no client-set header
  choosing the bucket. A client past the limit gets its wrong attempts answered slowly and
  with 429 and Retry-After; the right credential is always let in at once, so nobody can
  lock the user out. Requests with a session are never counted, nor are stale cookies.
- Tokens are compared in constant time and never logged.
- Every answer, errors included, carries the security headers; errors under ``/api/`` are
  JSON like every other API answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

__all__ = [
    "json_error",
    "AccessPolicy",
    "Caller",
    "SESSION_KEY",
    "Session",
    "Role",
    "LOOPBACK_HOSTS",
    "ROLE_KEY",
    "KEY_HEADER",
    "cookie_name_for",
    "client_bucket",
    "security_middleware",
    "login_routes",
    "host_name",
    "origin_of",
]

Role = Literal["full", "view"]
ROLE_KEY = "debugbroker_role"
SESSION_KEY = "debugbroker_session"  # the request's Session, when it came by cookie
KEY_HEADER = "X-Debugbroker-Key"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FAILURE_WINDOW_SECONDS = 60.0
_MAX_FAILURES = 10  # per client and window; past it, wrong attempts are answered 429, slowly
_MAX_FAILURE_DELAY = 4.0  # seconds the answer to a wrong attempt waits, at most
_SESSION_IDLE_SECONDS = 12 * 3600.0
_SESSION_MAX_SECONDS = 7 * 24 * 3600.0
_MAX_SESSIONS = 1000  # past it, the least recently used session ends
_MAX_LOGIN_CODES = 100  # outstanding one-time codes; past it, the oldest is dropped
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


def cookie_name_for(instance: str) -> str:
    """The session cookie's name for a broker instance (its address and data dir, say).

    Browsers keep cookies per host, not per port: two brokers on one host must not
    overwrite each other's session.
    """
    digest = hashlib.sha256(instance.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"debugbroker_session_{digest}"


def client_bucket(address: str | None) -> str:
    """The rate-limit bucket of a client address: loopback is one client, IPv6 by /64.

    Only the connection's address counts: headers a client sets (``X-Forwarded-For``,
    ``Sec-Fetch-Site``) would let it pick a fresh bucket per request.
    """
    text = (address or "").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text or "?"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for an action, as the audit log records it: the credential's role, the
    display name the dashboard sent and the client's address."""

    role: Role
    name: str
    client: str


@dataclass(slots=True)
class Session:
    """One login: the SHA-256 of its id (the cookie) and key (the header), role and times.

    Only digests are kept, in memory and in the sessions file: neither gives a usable
    credential to whoever reads them.
    """

    id_digest: str
    key_digest: str
    role: Role
    created: float  # wall-clock seconds: sessions outlive a restart with the same tokens
    last_used: float

    def key_matches(self, given: str) -> bool:
        """Whether ``given`` is this session's key (constant time)."""
        return hmac.compare_digest(_digest(given), self.key_digest)


@dataclass(slots=True)
class AccessPolicy:
    """The broker's access rules, sessions and login codes; one instance per app."""

    token: str
    view_token: str = ""
    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    secure_cookie: bool = False
    # The dashboard's public origin (``--public-url``): a proxy may rewrite the Host header.
    public_origin: str = ""
    cookie_name: str = "debugbroker_session"
    dashboard_url: str = ""
    login_code_seconds: float = 300.0
    sessions_path: Path | None = None  # where sessions outlive a restart (None: memory only)
    sessions: dict[str, Session] = field(default_factory=dict)  # by id digest
    login_codes: dict[str, tuple[Role, float]] = field(default_factory=dict)  # code -> expiry
    failures: dict[str, deque[float]] = field(default_factory=dict)
    failed_total: int = 0
    bad_requests: int = 0  # HTTP requests aiohttp could not even parse

    def role_of_token(self, given: str) -> Role | None:
        """The role a presented token grants, compared in constant time, or None."""
        full = hmac.compare_digest(given.encode(), self.token.encode())
        view = bool(self.view_token) and hmac.compare_digest(
            given.encode(), self.view_token.encode()
        )
        return "full" if full else "view" if view else None

    def open_session(self, role: Role) -> tuple[str, str]:
        """A new session of ``role``: its random id (for the cookie) and key (for the header)."""
        now = time.time()
        if len(self.sessions) >= _MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda session: session.last_used)
            del self.sessions[oldest.id_digest]
        session_id, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(_digest(session_id), _digest(key), role, now, now)
        self.sessions[session.id_digest] = session
        return session_id, key

    def session_of(self, cookie: str) -> Session | None:
        """The live session a cookie names (its idle time restarts), or None."""
        session = self.sessions.get(_digest(cookie))
        return session if session is not None and self.session_live(session) else None

    def session_live(self, session: Session) -> bool:
        """Whether ``session`` is still open (not logged out, expired or dropped); its idle
        time restarts when it is."""
        if self.sessions.get(session.id_digest) is not session:
            return False
        now = time.time()
        # A wall clock set back (NTP stepping a VM's clock, a host resumed) makes these ages
        # negative: that is no reason to sign anyone out, so a session's times never lie
        # ahead of now. Set forward, the clock ends sessions as real idle time would.
        session.created = min(session.created, now)
        idle = now - session.last_used > _SESSION_IDLE_SECONDS
        if idle or now - session.created > _SESSION_MAX_SECONDS:
            log.info("a dashboard session ended: %s", "idle too long" if idle else "too old")
            del self.sessions[session.id_digest]
            return False
        session.last_used = now
        return True

    def close_session(self, cookie: str) -> None:
        """End a session (logout); an unknown id is no error."""
        self.sessions.pop(_digest(cookie), None)

    def _tokens_digest(self) -> str:
        """What the sessions file is bound to: a new token (either) ends every session."""
        material = f"{self.token}\0{self.view_token}".encode()
        return hmac.new(material, b"debugbroker-sessions-v1", hashlib.sha256).hexdigest()

    def sessions_snapshot(self) -> bytes:
        """The sessions file's content now (taken on the loop, written off it)."""
        rows = [
            [s.id_digest, s.key_digest, s.role, s.created, s.last_used]
            for s in self.sessions.values()
        ]
        return json.dumps({"tokens": self._tokens_digest(), "sessions": rows}).encode()

    def load_sessions(self) -> None:
        """Take back the sessions of the last run if its tokens were the same (blocking I/O)."""
        if self.sessions_path is None:
            return
        try:
            saved = json.loads(self.sessions_path.read_bytes())
            if saved.get("tokens") != self._tokens_digest():
                log.info("the dashboard token changed: every earlier session has ended")
                return
            for id_digest, key_digest, role, created, last_used in saved["sessions"]:
                if role in ("full", "view"):
                    session = Session(id_digest, key_digest, role, created, last_used)
                    self.sessions[id_digest] = session
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("ignoring the unreadable sessions file %s: %s", self.sessions_path, error)

    def write_sessions(self, content: bytes) -> None:
        """Write a snapshot to the sessions file, mode 0600, atomically (blocking I/O)."""
        if self.sessions_path is None:
            return
        directory = self.sessions_path.parent
        descriptor, temporary = tempfile.mkstemp(prefix=".sessions-", dir=directory)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            os.replace(temporary, self.sessions_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def save_sessions(self) -> None:
        """Write the sessions file off the loop; a failure is logged, never raised."""
        if self.sessions_path is None:
            return
        try:
            await asyncio.to_thread(self.write_sessions, self.sessions_snapshot())
        except OSError as error:
            log.warning("cannot write the sessions file %s: %s", self.sessions_path, error)

    def issue_login_code(self, role: Role = "full") -> str:
        """A one-time login code for ``role``, valid for ``login_code_seconds``."""
        now = time.monotonic()
        for code, (_, expiry) in list(self.login_codes.items()):
            if expiry <= now:
                del self.login_codes[code]
        while len(self.login_codes) >= _MAX_LOGIN_CODES:
            del self.login_codes[next(iter(self.login_codes))]
        code = secrets.token_urlsafe(16)
        self.login_codes[code] = (role, now + self.login_code_seconds)
        return code

    def login_url(self, code: str) -> str:
        """The dashboard URL that logs a browser in with ``code`` (once)."""
        return f"{self.dashboard_url}/?code={code}"

    def redeem_login_code(self, given: str) -> Role | None:
        """The role of a one-time code, which is used up; None if unknown or expired."""
        found = self.login_codes.pop(given, None)
        if found is None:
            return None
        role, expiry = found
        return role if time.monotonic() < expiry else None

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether the Host header names this broker (DNS-rebinding defence)."""
        if "*" in self.allowed_hosts:
            return True
        return bool(host_header) and host_name(host_header or "") in self.allowed_hosts

    def recent_failures(self, bucket: str) -> int:
        """How many credential attempts of this client failed in the last window."""
        recent = self.failures.get(bucket)
        if not recent:
            return 0
        cutoff = time.monotonic() - _FAILURE_WINDOW_SECONDS
        while recent and recent[0] < cutoff:
            recent.popleft()
        return len(recent)

    def retry_after(self, bucket: str) -> int:
        """Seconds until this client is under the limit again (0: it is)."""
        recent = self.failures.get(bucket)
        if self.recent_failures(bucket) <= _MAX_FAILURES or not recent:
            return 0
        oldest = recent[-_MAX_FAILURES]
        return max(1, math.ceil(oldest + _FAILURE_WINDOW_SECONDS - time.monotonic()))

    def record_failure(self, bucket: str) -> float:
        """Count a failed credential attempt; the seconds its answer should wait."""
        self.failed_total += 1
        if len(self.failures) > 10_000 and bucket not in self.failures:
            self.failures.clear()  # bounded: forget the quietest clients
        recent = self.failures.setdefault(bucket, deque(maxlen=_MAX_FAILURES * 2))
        recent.append(time.monotonic())
        excess = self.recent_failures(bucket) - _MAX_FAILURES
        return 0.0 if excess <= 0 else min(0.25 * 2.0 ** (excess - 1), _MAX_FAILURE_DELAY)


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


@dataclass(frozen=True, slots=True)
class _Credential:
    """What a request presented: the role it grants (None: nothing valid), the session when
    it came by cookie, and whether it was a credential attempt (a Bearer token)."""

    role: Role | None
    session: Session | None = None
    attempted: bool = False


def _authenticate(policy: AccessPolicy, request: web.Request) -> _Credential:
    """Who the request is. A Bearer token wins; other ``Authorization`` schemes (a proxy's
    Basic auth) are not ours and are ignored; else the session cookie."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return _Credential(policy.role_of_token(credentials.strip()), attempted=True)
    cookie = request.cookies.get(policy.cookie_name)
    session = policy.session_of(cookie) if cookie else None
    if session is None:
        return _Credential(None)  # no cookie, or a stale one: not counted as a failure
    return _Credential(session.role, session)


async def _refuse_credential(
    policy: AccessPolicy, request: web.Request, answer: Callable[[int, str], web.Response]
) -> web.Response:
    """The answer to a wrong credential: counted for the client, and past the limit
    delayed and 429 with Retry-After (the right credential is never held back)."""
    bucket = client_bucket(request.remote)
    delay = policy.record_failure(bucket)
    if delay:
        await asyncio.sleep(delay)
    retry = policy.retry_after(bucket)
    if not retry:
        return answer(401, "that token or code is not valid for this broker")
    response = answer(429, f"too many failed attempts; try again in {retry} seconds")
    response.headers["Retry-After"] = str(retry)
    return response


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
    credential = _authenticate(policy, request)
    if credential.role is None:
        if credential.attempted:
            return await _refuse_credential(policy, request, json_error)
        return json_error(401, "log in first: open the login URL the broker printed")
    session = credential.session
    if changes_state and session is not None:
        if origin is None:
            return json_error(403, "a request with the session cookie must carry an Origin header")
        given = request.headers.get(KEY_HEADER, "")
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        # Browsers cannot add headers to a WebSocket's handshake: the socket opens with the
        # cookie alone, and runs nothing until its first message proves the key (``ws``).
        if not is_websocket and not session.key_matches(given):
            return json_error(
                403,
                f"a request with the session cookie must carry the session's {KEY_HEADER} "
                "header (the cookie alone runs nothing); log in again in this tab",
            )
    request[ROLE_KEY] = credential.role
    request[SESSION_KEY] = session
    return await handler(request)


async def _login_body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object of a login request, or None when it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def login_routes(policy: AccessPolicy) -> list[web.RouteDef]:
    """``POST /login``, ``POST /logout``, ``GET /session``, ``POST /api/login-codes`` and
    ``GET /login`` (which only sends browsers to the dashboard's login form)."""

    async def login_page(request: web.Request) -> web.StreamResponse:
        # Never reads a token from the URL: a URL lands in history and logs.
        raise web.HTTPSeeOther("/")

    async def login(request: web.Request) -> web.StreamResponse:
        body = await _login_body(request)
        token, code = (body or {}).get("token"), (body or {}).get("code")
        if not (isinstance(token, str) and token) and not (isinstance(code, str) and code):
            return json_error(400, 'send JSON {"token": "..."} or {"code": "..."}')
        if isinstance(token, str) and token:
            role = policy.role_of_token(token.strip())
        else:
            role = policy.redeem_login_code(str(code).strip())
        if role is None:
            return await _refuse_credential(policy, request, json_error)
        session_id, key = policy.open_session(role)
        await policy.save_sessions()
        response = web.json_response({"role": role, "key": key})
        response.set_cookie(
            policy.cookie_name,
            session_id,
            httponly=True,
            samesite="Strict",
            secure=policy.secure_cookie or request.secure,
            path="/",
        )
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        cookie = request.cookies.get(policy.cookie_name)
        if cookie:
            policy.close_session(cookie)
            await policy.save_sessions()
        response = web.json_response({"ok": True})
        response.del_cookie(policy.cookie_name, path="/")
        return response

    async def session(request: web.Request) -> web.StreamResponse:
        credential = _authenticate(policy, request)
        if credential.role is None:
            if credential.attempted:
                return await _refuse_credential(policy, request, json_error)
            return json_error(401, "not logged in")
        return web.json_response({"role": credential.role})

    async def login_code(request: web.Request) -> web.StreamResponse:
        role: Role = request[ROLE_KEY]
        code = policy.issue_login_code(role)
        return web.json_response(
            {
                "code": code,
                "url": policy.login_url(code),
                "role": role,
                "expires_in": policy.login_code_seconds,
            }
        )

    return [
        web.get("/login", login_page),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/session", session),
        web.post("/api/login-codes", login_code),
    ]
