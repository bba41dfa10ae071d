"""Dashboard access against a real broker process: tokens, cookie, roles, Host, Origin, headers.

Each test here proves one line of SECURITY.md; the names say which.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Broker, HttpAnswer, Process, base_env, free_port, http, wait_for

API_ROUTES = [
    ("GET", "/api/reports"),
    ("GET", "/api/reports/abc"),
    ("GET", "/api/reports/abc/text"),
    ("POST", "/api/reports/abc/frames/0/eval"),
    ("GET", "/api/agents"),
    ("GET", "/api/status"),
    ("GET", "/api/audit"),
    ("GET", "/api/ws"),
]
EVAL_PATH = "/api/reports/abc/frames/0/eval"


def raw(broker: Broker, method: str, path: str, **kwargs: Any) -> HttpAnswer:
    """A request without the broker's token (``broker.get`` always adds it)."""
    return http(method, broker.url + path, **kwargs)


def status(broker: Broker) -> dict[str, Any]:
    answer = broker.get("/api/status")
    assert answer.status == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def login_cookie(broker: Broker, token: str) -> str:
    """Log in with ``token``; the ``name=value`` of the session cookie."""
    answer = raw(broker, "GET", f"/login?token={token}")
    assert answer.status == 302, answer.text
    return answer.headers["set-cookie"].split(";", 1)[0]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_no_token_is_401(broker: Broker, method: str, path: str) -> None:
    answer = raw(broker, method, path, json_body={"code": "1"} if method == "POST" else None)
    assert answer.status == 401
    assert "error" in answer.json()


def test_wrong_token_is_401_and_counted(broker: Broker) -> None:
    before = status(broker)["dashboard"]["failed_logins"]
    wrong = {"Authorization": "Bearer not-the-token"}
    assert raw(broker, "GET", "/api/reports", headers=wrong).status == 401
    assert raw(broker, "GET", "/session", headers=wrong).status == 401
    assert raw(broker, "GET", "/login?token=not-the-token").status == 401
    assert (
        raw(broker, "GET", "/api/reports", headers={"Cookie": "debugbroker_session=x"}).status
        == 401
    )
    assert status(broker)["dashboard"]["failed_logins"] == before + 4
    # A token that is a prefix of the real one is no better than any other.
    prefix = {"Authorization": f"Bearer {broker.token[:-1]}"}
    assert raw(broker, "GET", "/api/reports", headers=prefix).status == 401


def test_repeated_failed_logins_are_rate_limited(broker: Broker) -> None:
    for _ in range(10):
        assert raw(broker, "GET", "/login?token=guess").status == 401
    # Now even the right token is refused from this client for a while: no oracle.
    assert raw(broker, "GET", f"/login?token={broker.token}").status == 429
    assert raw(broker, "GET", "/api/reports", headers=broker.auth()).status == 429
    assert raw(broker, "GET", "/session", headers=broker.auth()).status == 429


def test_cross_site_login_failures_cannot_lock_out_the_user(broker: Broker) -> None:
    # What a hostile page can do: fire wrong logins at 127.0.0.1 (browsers mark them).
    cross = {"Sec-Fetch-Site": "cross-site"}
    for _ in range(12):
        assert raw(broker, "GET", "/login?token=guess", headers=cross).status in (401, 429)
    assert raw(broker, "GET", "/login?token=guess", headers=cross).status == 429
    # The user's own login (typed, or clicked in the terminal) still works.
    own = {"Sec-Fetch-Site": "none"}
    assert raw(broker, "GET", f"/login?token={broker.token}", headers=own).status == 302
    assert raw(broker, "GET", "/api/reports", headers=broker.auth()).status == 200


def test_login_sets_a_strict_httponly_cookie_and_drops_the_token_from_the_url(
    broker: Broker,
) -> None:
    answer = raw(broker, "GET", f"/login?token={broker.token}")
    assert answer.status == 302
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback; https sets it
    assert broker.token not in cookie  # the cookie holds an HMAC, not the token
    session = raw(broker, "GET", "/session", headers={"Cookie": cookie.split(";")[0]})
    assert session.json() == {"role": "full"}
    # The login form posts the token in the body instead.
    form = raw(
        broker,
        "POST",
        "/login",
        body=f"token={broker.token}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 302 and form.headers["location"] == "/"


def test_tokens_and_secret_never_reach_the_log(broker: Broker) -> None:
    cookie = login_cookie(broker, broker.token)
    raw(broker, "GET", "/login?token=wrong-token-123")
    raw(broker, "GET", "/api/reports", headers={"Authorization": "Bearer wrong-token-456"})
    raw(broker, "GET", "/api/reports/x", headers={"Cookie": cookie})
    broker.evaluate("nope", 0, "print('hi')")
    assert broker.process is not None
    log = broker.process.output()
    assert "dashboard on" in log  # the log is the right file
    for secret in (broker.token, broker.secret, "wrong-token-123", "wrong-token-456"):
        assert secret not in log
    assert cookie.split("=", 1)[1] not in log


def test_view_token_reads_but_never_evaluates(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-123456").start()
    try:
        view = {"Authorization": "Bearer view-token-123456"}
        assert raw(broker, "GET", "/api/reports", headers=view).status == 200
        assert raw(broker, "GET", "/api/agents", headers=view).status == 200
        answer = raw(broker, "POST", EVAL_PATH, headers=view, json_body={"code": "1"})
        assert answer.status == 403
        assert "not run code" in answer.json()["error"]
        assert raw(broker, "GET", "/api/audit", headers=view).status == 403
        # The same by cookie (the dashboard's way), with its own Origin.
        cookie = login_cookie(broker, "view-token-123456")
        assert raw(broker, "GET", "/session", headers={"Cookie": cookie}).json() == {"role": "view"}
        by_cookie = {"Cookie": cookie, "Origin": broker.url}
        answer = raw(broker, "POST", EVAL_PATH, headers=by_cookie, json_body={"code": "1"})
        assert answer.status == 403
        # The full token still may (404: there is no such report, but it got past the role).
        assert broker.evaluate("abc", 0, "1").status == 404
    finally:
        broker.stop()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "[::2]:1", ""]
)
def test_foreign_host_is_refused_dns_rebinding(broker: Broker, host: str) -> None:
    for path in ("/", "/api/reports", "/login?token=x", "/static/app.js"):
        answer = raw(broker, "GET", path, headers={**broker.auth(), "Host": host})
        assert answer.status == 421, (path, answer.status)
        assert "content-security-policy" in answer.headers
    for name in ("localhost", f"127.0.0.1:{broker.http_port}", f"LOCALHOST:{broker.http_port}"):
        answer = raw(broker, "GET", "/api/reports", headers={**broker.auth(), "Host": name})
        assert answer.status == 200


def test_allow_host_star_warns_that_the_rebinding_defence_is_off(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--allow-host", "*").start()
    try:
        assert broker.process is not None
        assert "DNS-rebinding defence is off" in broker.process.output()
        anything = {**broker.auth(), "Host": "evil.example"}
        assert raw(broker, "GET", "/api/reports", headers=anything).status == 200
    finally:
        broker.stop()


def test_allow_host_flag_adds_a_name(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--allow-host", "debug.internal").start()
    try:
        good = {**broker.auth(), "Host": f"debug.internal:{broker.http_port}"}
        assert raw(broker, "GET", "/api/reports", headers=good).status == 200
        bad = {**broker.auth(), "Host": "other.internal"}
        assert raw(broker, "GET", "/api/reports", headers=bad).status == 421
    finally:
        broker.stop()


def test_foreign_origin_on_post_is_403(broker: Broker) -> None:
    cookie = login_cookie(broker, broker.token)
    for origin in ("http://evil.example", "null", f"http://localhost:{broker.http_port + 1}"):
        for headers in (broker.auth(), {"Cookie": cookie}):
            answer = raw(
                broker, "POST", EVAL_PATH, headers={**headers, "Origin": origin}, json_body={}
            )
            assert answer.status == 403, (origin, answer.text)
            assert "cross-origin" in answer.json()["error"]
        logout = raw(broker, "POST", "/logout", headers={"Origin": origin})
        assert logout.status == 403
    # The dashboard's own origin passes (404: no such report).
    same = {"Cookie": cookie, "Origin": broker.url}
    assert raw(broker, "POST", EVAL_PATH, headers=same, json_body={"code": "1"}).status == 404


def test_cookie_post_without_origin_is_refused(broker: Broker) -> None:
    cookie = login_cookie(broker, broker.token)
    answer = raw(broker, "POST", EVAL_PATH, headers={"Cookie": cookie}, json_body={"code": "1"})
    assert answer.status == 403
    assert "Origin" in answer.json()["error"]
    # A script with the Bearer token sends no Origin, and that is fine (404: no report).
    assert broker.evaluate("abc", 0, "1").status == 404


async def _websocket_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as socket:
                await socket.close()
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


def test_websocket_needs_token_and_own_origin(broker: Broker) -> None:
    url = broker.url.replace("http", "ws") + "/api/ws"
    cookie = login_cookie(broker, broker.token)

    def connect(headers: dict[str, str]) -> int:
        return asyncio.run(_websocket_status(url, headers))

    assert connect({"Origin": broker.url}) == 401
    assert connect({"Cookie": cookie, "Origin": "http://evil.example"}) == 403
    assert connect({**broker.auth(), "Origin": "http://evil.example"}) == 403
    assert connect({"Cookie": cookie}) == 403  # a cookie needs its Origin
    assert connect({"Cookie": cookie, "Origin": broker.url}) == 101
    assert connect(broker.auth()) == 101


def test_websocket_messages_are_size_capped(broker: Broker) -> None:
    url = broker.url.replace("http", "ws") + "/api/ws"

    async def send_big() -> tuple[Any, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers=broker.auth()) as socket:
                await socket.send_str("x" * (64 * 1024 + 1))
                message = await socket.receive(timeout=10)
                return message.type, socket.close_code

    kind, code = asyncio.run(send_big())
    assert kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert code == 1009  # message too big
    assert broker.get("/api/reports").status == 200  # and the broker serves on


def test_eval_input_and_request_bodies_are_size_capped(broker: Broker) -> None:
    answer = broker.evaluate("abc", 0, "x" * 100_001)
    assert answer.status == 413
    assert "100000" in answer.json()["error"]
    huge = b'{"code": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    answer = http(
        "POST",
        broker.url + EVAL_PATH,
        headers={**broker.auth(), "Content-Type": "application/json"},
        body=huge,
    )
    assert answer.status == 413
    assert "error" in answer.json()


SECURITY_HEADERS = {
    "content-security-policy": None,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def assert_secure(answer: HttpAnswer, what: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert name in answer.headers, f"{what}: no {name}"
        if value is not None:
            assert answer.headers[name] == value, what
    csp = answer.headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["script-src"] == "script-src 'self'"  # no inline, no eval
    assert directives["object-src"] == "object-src 'none'"
    assert "unsafe" not in csp


def test_security_headers_on_every_kind_of_response(broker: Broker) -> None:
    cookie = login_cookie(broker, broker.token)
    cases = {
        "index": raw(broker, "GET", "/"),
        "static": raw(broker, "GET", "/static/app.js"),
        "static 404": raw(broker, "GET", "/static/nope.js"),
        "login page": raw(broker, "GET", "/login"),
        "login redirect": raw(broker, "GET", f"/login?token={broker.token}"),
        "api": broker.get("/api/reports"),
        "api 400": broker.get("/api/reports?limit=x"),
        "api 401": raw(broker, "GET", "/api/reports"),
        "api 403": raw(broker, "POST", EVAL_PATH, headers={"Cookie": cookie}),
        "api 404": broker.get("/api/reports/nope"),
        "api unknown route": broker.get("/api/nope"),
        "api 405": broker.post("/api/reports", {}),
        "page 404": raw(broker, "GET", "/nope"),
        "421": raw(broker, "GET", "/", headers={"Host": "evil.example"}),
        "openapi": raw(broker, "GET", "/api/openapi.json"),
    }
    for what, answer in cases.items():
        assert_secure(answer, what)
    assert cases["static"].status == 200 and cases["index"].status == 200
    assert cases["api unknown route"].status == 404
    assert cases["api unknown route"].json()["error"]  # API errors stay JSON
    assert cases["api 405"].status == 405 and cases["api 405"].json()["error"]


def _start_raw_broker(tmp_path: Path, *args: str) -> tuple[Process, int]:
    """A broker started with exactly ``args`` (plus ports and data dir); waits for its banner."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "debugbroker",
        "serve",
        "--zmq",
        f"tcp://127.0.0.1:{free_port()}",
        "--data",
        str(tmp_path / "data"),
        "--http",
        f"127.0.0.1:{port}",
        *args,
    ]
    process = Process("broker", command, tmp_path / "broker.log", base_env())
    process.start()
    process.wait_until(lambda: "agents:" in process.output(), "the broker's banner")
    return process, port


def test_generated_token_is_random_enough_and_printed_once_as_login_url(tmp_path: Path) -> None:
    process, port = _start_raw_broker(tmp_path)
    try:
        output = process.output()
        found = re.findall(r"http://127\.0\.0\.1:\d+/login\?token=([A-Za-z0-9_\-]+)", output)
        assert len(found) == 1, output
        token = found[0]
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
        assert output.count(token) == 1
        token_file = tmp_path / "data" / "token"
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        answer = http("GET", f"http://127.0.0.1:{port}/login?token={token}")
        assert answer.status == 302
        # Nothing else the broker logs afterwards repeats it.
        http("GET", f"http://127.0.0.1:{port}/api/reports", headers={"Authorization": "Bearer x"})
        assert process.output().count(token) == 1
    finally:
        process.stop()


def test_a_given_token_is_not_printed(tmp_path: Path) -> None:
    process, _ = _start_raw_broker(tmp_path, "--token", "given-token-abcdef")
    try:
        assert "given-token-abcdef" not in process.output()
        assert "login with your token" in process.output()
    finally:
        process.stop()


@pytest.mark.parametrize(("host", "warns"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_binding_beyond_loopback_prints_a_warning(tmp_path: Path, host: str, warns: bool) -> None:
    broker = Broker(tmp_path)
    broker.extra_args = ["--http", f"{host}:{broker.http_port}"]
    broker.start()
    try:
        process = broker.process
        assert process is not None
        wait_for(lambda: "agents:" in process.output(), what="the banner")
        assert ("WARNING" in process.output()) is warns
    finally:
        broker.stop()


def test_reports_and_credentials_are_private_to_the_broker_user(tmp_path: Path) -> None:
    process, port = _start_raw_broker(tmp_path, "--curve")
    try:
        data = tmp_path / "data"
        wait_for(lambda: (data / "debugbroker.sqlite3-wal").exists(), what="the database")
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        for name in ("token", "secret", "curve_secret.key", "debugbroker.sqlite3"):
            assert stat.S_IMODE(os.stat(data / name).st_mode) == 0o600, name
        assert stat.S_IMODE(os.stat(data / "debugbroker.sqlite3-wal").st_mode) == 0o600
    finally:
        process.stop()


def test_behind_a_proxy_the_public_url_is_the_dashboards_origin(tmp_path: Path) -> None:
    # A reverse proxy that rewrites Host to the broker's own address: the browser's Origin
    # is the public URL's, which must pass; any other stays refused.
    broker = Broker(tmp_path, "--public-url", "https://debug.example/").start()
    try:
        cookie = login_cookie(broker, broker.token)
        for origin, status in (
            ("https://debug.example", 404),  # got past the Origin check: no such report
            ("https://DEBUG.example", 404),
            ("http://debug.example", 403),
            ("https://debug.example:8443", 403),
            ("https://evil.example", 403),
        ):
            headers = {"Cookie": cookie, "Origin": origin}
            answer = raw(broker, "POST", EVAL_PATH, headers=headers, json_body={"code": "1"})
            assert answer.status == status, (origin, answer.text)
    finally:
        broker.stop()


def test_an_https_public_url_makes_the_cookie_secure(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--public-url", "https://debug.example").start()
    try:
        answer = raw(
            broker, "GET", f"/login?token={broker.token}", headers={"Host": "debug.example"}
        )
        assert answer.status == 302
        attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
        assert "secure" in attributes and "httponly" in attributes
    finally:
        broker.stop()


def test_unparseable_requests_are_counted_in_one_line_without_their_content(
    broker: Broker,
) -> None:
    for header in (f"Authorization: Bearer {broker.token}\x00", "X-Probe: \x00"):
        with socket.create_connection(("127.0.0.1", broker.http_port), timeout=10) as client:
            request = f"GET /api/reports HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n\r\n"
            client.sendall(request.encode("latin-1"))
            assert b" 400 " in client.recv(100)
    wait_for(
        lambda: status(broker)["dashboard"]["bad_requests"] == 2, what="the bad requests count"
    )
    assert broker.process is not None
    log = broker.process.output()
    assert log.count("dropped an unparseable HTTP request") == 2
    assert "Traceback" not in log
    assert broker.token not in log
