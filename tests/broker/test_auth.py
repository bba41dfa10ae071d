"""Dashboard access against a real broker process: tokens, cookie, roles, Host, Origin, headers.

Each test here proves one line of SECURITY.md; the names say which.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import stat
import sys
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from debugbroker.broker.http.ws import MAX_COMMAND_BYTES
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


def from_address(
    source: str, broker: Broker, method: str, path: str, body: object = None, **headers: str
) -> HttpAnswer:
    """One request from the loopback address ``source`` (127.0.0.2, say) instead of 127.0.0.1."""
    connection = HTTPConnection(
        "127.0.0.1", broker.http_port, timeout=30, source_address=(source, 0)
    )
    try:
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        found = {name.lower(): value for name, value in response.getheaders()}
        return HttpAnswer(response.status, found, response.read())
    finally:
        connection.close()


def wrong_login(broker: Broker, **headers: str) -> HttpAnswer:
    return raw(broker, "POST", "/login", json_body={"token": "guess"}, headers=headers)


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_no_token_is_401(broker: Broker, method: str, path: str) -> None:
    answer = raw(broker, method, path, json_body={"code": "1"} if method == "POST" else None)
    assert answer.status == 401
    assert "error" in answer.json()


def test_wrong_credentials_are_401_and_counted_but_stale_cookies_are_not(broker: Broker) -> None:
    before = status(broker)["dashboard"]["failed_logins"]
    wrong = {"Authorization": "Bearer not-the-token"}
    assert raw(broker, "GET", "/api/reports", headers=wrong).status == 401
    assert raw(broker, "GET", "/session", headers=wrong).status == 401
    assert wrong_login(broker).status == 401
    assert raw(broker, "POST", "/login", json_body={"code": "not-a-code"}).status == 401
    assert status(broker)["dashboard"]["failed_logins"] == before + 4
    # A stale cookie or a proxy's Basic auth is no credential attempt: 401, not counted.
    stale = broker.log_in()
    assert raw(broker, "POST", "/logout", headers=stale.headers()).status == 200
    for headers in (stale.headers(), {"Authorization": "Basic dXNlcjpwYXNz"}):
        assert raw(broker, "GET", "/api/reports", headers=headers).status == 401
    assert status(broker)["dashboard"]["failed_logins"] == before + 4
    # A token that is a prefix of the real one is no better than any other.
    prefix = {"Authorization": f"Bearer {broker.token[:-1]}"}
    assert raw(broker, "GET", "/api/reports", headers=prefix).status == 401


def test_failed_logins_back_off_but_the_right_token_still_gets_in(broker: Broker) -> None:
    for _ in range(10):
        assert wrong_login(broker).status == 401
    # Past the limit a wrong token waits and gets 429 with Retry-After ...
    answer = wrong_login(broker)
    assert answer.status == 429, answer.text
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    answer = raw(broker, "GET", "/api/reports", headers={"Authorization": "Bearer guess"})
    assert answer.status == 429 and "retry-after" in answer.headers
    # ... while the right one is let in at once: an attacker cannot lock the user out.
    assert broker.log_in().key
    assert raw(broker, "GET", "/api/reports", headers=broker.auth()).status == 200
    assert raw(broker, "GET", "/session", headers=broker.auth()).json() == {"role": "full"}


def test_a_lock_out_attempt_from_a_stale_cookie_fails(broker: Broker) -> None:
    # What another local page or a second broker leaves behind: a cookie of ours that no
    # longer names a session, sent with every request, and a proxy's Basic auth.
    stale = broker.log_in()
    raw(broker, "POST", "/logout", headers=stale.headers())
    basic = {"Authorization": "Basic dXNlcjpwYXNz", "Origin": broker.url}
    for _ in range(30):
        assert raw(broker, "GET", "/api/reports", headers=stale.headers()).status == 401
        assert raw(broker, "POST", EVAL_PATH, headers=stale.headers(), json_body={}).status == 401
        assert raw(broker, "GET", "/session", headers=basic).status == 401
    assert status(broker)["dashboard"]["failed_logins"] == 0
    fresh = broker.log_in()  # the right token, from the same client, at once
    assert (
        raw(broker, "POST", EVAL_PATH, headers=fresh.headers(), json_body={"code": "1"}).status
        == 404
    )


def test_valid_sessions_are_never_counted_or_throttled(broker: Broker) -> None:
    session = broker.log_in()
    for _ in range(11):
        wrong_login(broker)
    assert wrong_login(broker).status == 429  # this client is past the limit ...
    for _ in range(5):  # ... and its valid session works on, uncounted
        assert raw(broker, "GET", "/api/reports", headers=session.headers()).status == 200
        answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body={"code": "1"})
        assert answer.status == 404


def test_loopback_addresses_share_one_bucket_and_headers_choose_none(broker: Broker) -> None:
    # 127.0.0.2, 127.0.0.3 ... are all this machine; Sec-Fetch-Site and X-Forwarded-For are
    # set by whoever sends the request. None of them gives a fresh bucket.
    disguises = [
        ("127.0.0.2", {}),
        ("127.0.0.3", {"Sec-Fetch-Site": "cross-site"}),
        ("127.0.0.4", {"Sec-Fetch-Site": "none"}),
        ("127.0.0.5", {"X-Forwarded-For": "203.0.113.7"}),
        ("127.0.0.6", {"X-Real-IP": "203.0.113.8"}),
    ]
    for source, headers in disguises * 2:
        answer = from_address(source, broker, "POST", "/login", {"token": "guess"}, **headers)
        assert answer.status == 401, (source, answer.status)
    for source, headers in disguises:
        answer = from_address(source, broker, "POST", "/login", {"token": "guess"}, **headers)
        assert answer.status == 429, (source, headers)
        assert "retry-after" in answer.headers
    # The right token, from any of them, still logs in.
    answer = from_address("127.0.0.7", broker, "POST", "/login", {"token": broker.token})
    assert answer.status == 200 and answer.json()["key"]


def test_login_opens_a_session_with_a_strict_httponly_cookie_and_a_key(broker: Broker) -> None:
    answer = raw(broker, "POST", "/login", json_body={"token": broker.token})
    assert answer.status == 200, answer.text
    key = answer.json()["key"]
    assert answer.json()["role"] == "full" and len(key) >= 43
    cookie = answer.headers["set-cookie"]
    name, value = cookie.split(";", 1)[0].split("=", 1)
    assert re.fullmatch(r"debugbroker_session_[0-9a-f]{12}", name)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback; https sets it
    assert broker.token not in cookie and key not in cookie  # a random id, nothing else
    assert len(value) >= 43
    session = raw(broker, "GET", "/session", headers={"Cookie": f"{name}={value}"})
    assert session.json() == {"role": "full"}
    # Each login is a new session, with its own id and key.
    again = broker.log_in()
    assert again.cookie != f"{name}={value}" and again.key != key
    # Forms and other bodies get a clear 400.
    form = raw(
        broker,
        "POST",
        "/login",
        body=f"token={broker.token}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 400 and "JSON" in form.json()["error"]


def test_a_token_in_the_url_is_never_read(broker: Broker) -> None:
    before = status(broker)["dashboard"]["failed_logins"]
    answer = raw(broker, "GET", f"/login?token={broker.token}")
    assert answer.status == 303 and answer.headers["location"] == "/"
    assert "set-cookie" not in answer.headers
    assert status(broker)["dashboard"]["failed_logins"] == before


def test_a_cookie_without_its_session_key_runs_nothing(broker: Broker) -> None:
    session = broker.log_in()
    body = {"code": "1"}
    for headers in (session.headers(key=False), {**session.headers(), "X-Debugbroker-Key": "x"}):
        answer = raw(broker, "POST", EVAL_PATH, headers=headers, json_body=body)
        assert answer.status == 403, answer.text
        assert "X-Debugbroker-Key" in answer.json()["error"]
    other = broker.log_in()  # another session's key is no better
    mixed = {**session.headers(), "X-Debugbroker-Key": other.key}
    assert raw(broker, "POST", EVAL_PATH, headers=mixed, json_body=body).status == 403
    # Reading needs no key; with its key the POST gets past auth (404: no such report).
    assert raw(broker, "GET", "/api/reports", headers=session.headers(key=False)).status == 200
    assert raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body=body).status == 404
    assert broker.evaluate("abc", 0, "1").status == 404  # Bearer scripts need no key


def test_logout_revokes_the_session(broker: Broker) -> None:
    session, other = broker.log_in(), broker.log_in()
    assert raw(broker, "POST", "/logout", headers=session.headers()).status == 200
    assert raw(broker, "GET", "/session", headers=session.headers()).status == 401
    answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body={"code": "1"})
    assert answer.status == 401
    assert raw(broker, "GET", "/session", headers=other.headers()).json() == {"role": "full"}


def test_a_restart_keeps_sessions_and_a_new_token_revokes_every_session(tmp_path: Path) -> None:
    broker = Broker(tmp_path, token="first-token-abcdef").start()
    try:
        session = broker.log_in()
        broker.stop()
        broker.start()  # same port, data dir and token: the dashboard just reconnects
        body = {"code": "1"}
        answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body=body)
        assert answer.status == 404, answer.text  # past authentication
        sessions_file = broker.data_dir / "sessions"
        assert stat.S_IMODE(os.stat(sessions_file).st_mode) == 0o600
        stored = sessions_file.read_text()
        for secret in (session.cookie.split("=", 1)[1], session.key, broker.token):
            assert secret not in stored  # digests only
        broker.stop()
        broker.token = "second-token-abcdef"
        broker.start()
        assert raw(broker, "GET", "/session", headers=session.headers()).status == 401
        answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body={})
        assert answer.status == 401
        again = broker.log_in()
        assert again.cookie.split("=")[0] == session.cookie.split("=")[0]  # same instance
        old = raw(broker, "POST", "/login", json_body={"token": "first-token-abcdef"})
        assert old.status == 401
    finally:
        broker.stop()


def test_a_wall_clock_set_back_signs_nobody_out(tmp_path: Path) -> None:
    """NTP may step a VM's clock back: the sessions' times then lie ahead of now. Here the
    saved times are moved an hour ahead, as if the clock had been set back an hour across a
    restart; the session still works, and its age is counted from now."""
    broker = Broker(tmp_path).start()
    try:
        session = broker.log_in()
        broker.stop()
        sessions_file = broker.data_dir / "sessions"
        saved = json.loads(sessions_file.read_text())
        for row in saved["sessions"]:
            row[3] += 3600.0  # created
            row[4] += 3600.0  # last used
        sessions_file.write_text(json.dumps(saved))
        broker.start()
        assert raw(broker, "GET", "/session", headers=session.headers()).json() == {"role": "full"}
        answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body={"code": "1"})
        assert answer.status == 404, answer.text  # past authentication
    finally:
        broker.stop()


def test_a_login_code_works_once_and_expires(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--login-code-ttl", "2").start()
    try:
        minted = broker.post("/api/login-codes", {})
        assert minted.status == 200, minted.text
        found = minted.json()
        assert found["url"] == f"{broker.url}/?code={found['code']}"
        assert found["expires_in"] == 2 and found["role"] == "full"
        first = raw(broker, "POST", "/login", json_body={"code": found["code"]})
        assert first.status == 200 and first.json()["key"]
        again = raw(broker, "POST", "/login", json_body={"code": found["code"]})
        assert again.status == 401
        late = broker.post("/api/login-codes", {}).json()["code"]
        issued = time.monotonic()
        wait_for(lambda: time.monotonic() - issued > 2.5, what="the code's expiry")
        assert raw(broker, "POST", "/login", json_body={"code": late}).status == 401
    finally:
        broker.stop()


def test_login_codes_need_a_session_and_its_key(broker: Broker) -> None:
    assert raw(broker, "POST", "/api/login-codes", json_body={}).status == 401
    session = broker.log_in()
    answer = raw(broker, "POST", "/api/login-codes", headers=session.headers(key=False))
    assert answer.status == 403
    answer = raw(broker, "POST", "/api/login-codes", headers=session.headers())
    assert answer.status == 200 and answer.json()["code"]


def test_two_brokers_on_one_host_keep_their_own_cookies(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = Broker(tmp_path / "first").start()
    second = Broker(tmp_path / "second").start()
    try:
        one, two = first.log_in(), second.log_in()
        assert one.cookie.split("=")[0] != two.cookie.split("=")[0]
        # A browser sends both cookies to both ports: each broker picks its own.
        both = f"{one.cookie}; {two.cookie}"
        for broker, session in ((first, one), (second, two)):
            headers = {"Cookie": both, "Origin": broker.url, "X-Debugbroker-Key": session.key}
            answer = raw(broker, "POST", EVAL_PATH, headers=headers, json_body={"code": "1"})
            assert answer.status == 404, answer.text
    finally:
        first.stop()
        second.stop()


def test_tokens_and_secret_never_reach_the_log(broker: Broker) -> None:
    session = broker.log_in()
    code = broker.post("/api/login-codes", {}).json()["code"]
    raw(broker, "POST", "/login", json_body={"token": "wrong-token-123"})
    raw(broker, "GET", "/api/reports", headers={"Authorization": "Bearer wrong-token-456"})
    raw(broker, "GET", "/api/reports/x", headers=session.headers())
    broker.evaluate("nope", 0, "print('hi')")
    assert broker.process is not None
    log = broker.process.output()
    assert "dashboard on" in log  # the log is the right file
    for secret in (broker.token, broker.secret, "wrong-token-123", "wrong-token-456", code):
        assert secret not in log
    assert session.cookie.split("=", 1)[1] not in log and session.key not in log


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
        session = broker.log_in("view-token-123456")
        answer = raw(broker, "GET", "/session", headers=session.headers())
        assert answer.json() == {"role": "view"}
        answer = raw(broker, "POST", EVAL_PATH, headers=session.headers(), json_body={"code": "1"})
        assert answer.status == 403 and "not run code" in answer.json()["error"]
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
    session = broker.log_in()
    for origin in ("http://evil.example", "null", f"http://localhost:{broker.http_port + 1}"):
        for headers in (broker.auth(), session.headers()):
            answer = raw(
                broker, "POST", EVAL_PATH, headers={**headers, "Origin": origin}, json_body={}
            )
            assert answer.status == 403, (origin, answer.text)
            assert "cross-origin" in answer.json()["error"]
        logout = raw(broker, "POST", "/logout", headers={"Origin": origin})
        assert logout.status == 403
    # The dashboard's own origin passes (404: no such report).
    same = session.headers()
    assert raw(broker, "POST", EVAL_PATH, headers=same, json_body={"code": "1"}).status == 404


def test_cookie_post_without_origin_is_refused(broker: Broker) -> None:
    session = broker.log_in()
    headers = {"Cookie": session.cookie, "X-Debugbroker-Key": session.key}
    answer = raw(broker, "POST", EVAL_PATH, headers=headers, json_body={"code": "1"})
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
    cookie = broker.log_in().cookie

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
                await socket.send_str("x" * (MAX_COMMAND_BYTES + 1))
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
    cookie = broker.log_in().cookie
    cases = {
        "index": raw(broker, "GET", "/"),
        "static": raw(broker, "GET", "/static/app.js"),
        "static 404": raw(broker, "GET", "/static/nope.js"),
        "login page": raw(broker, "GET", "/login"),
        "login": raw(broker, "POST", "/login", json_body={"token": broker.token}),
        "login 401": raw(broker, "POST", "/login", json_body={"token": "nope"}),
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


def test_generated_token_is_random_and_never_printed_the_login_url_has_a_one_time_code(
    tmp_path: Path,
) -> None:
    process, port = _start_raw_broker(tmp_path)
    try:
        output = process.output()
        found = re.findall(r"http://127\.0\.0\.1:(\d+)/\?code=([A-Za-z0-9_\-]+)", output)
        assert len(found) == 1 and found[0][0] == str(port), output
        code = found[0][1]
        token_file = tmp_path / "data" / "token"
        token = token_file.read_text().strip()
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert token not in output and str(token_file) in output  # where to find it
        login = f"http://127.0.0.1:{port}/login"
        answer = http("POST", login, json_body={"code": code})
        assert answer.status == 200 and answer.json()["role"] == "full"
        assert http("POST", login, json_body={"code": code}).status == 401  # used up
        assert http("POST", login, json_body={"token": token}).status == 200
        http("GET", f"http://127.0.0.1:{port}/api/reports", headers={"Authorization": "Bearer x"})
        assert token not in process.output()
    finally:
        process.stop()


def test_a_given_token_is_not_printed(tmp_path: Path) -> None:
    process, _ = _start_raw_broker(tmp_path, "--token", "given-token-abcdef")
    try:
        assert "given-token-abcdef" not in process.output()
        assert "paste the token in the login form" in process.output()
        assert "/?code=" in process.output()
    finally:
        process.stop()


def test_an_existing_data_dir_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    process, _ = _start_raw_broker(tmp_path)
    try:
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
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
    process, port = _start_raw_broker(tmp_path)
    try:
        data = tmp_path / "data"
        wait_for(lambda: (data / "debugbroker.sqlite3-wal").exists(), what="the database")
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        for name in ("token", "secret", "debugbroker.sqlite3"):
            assert stat.S_IMODE(os.stat(data / name).st_mode) == 0o600, name
        assert stat.S_IMODE(os.stat(data / "debugbroker.sqlite3-wal").st_mode) == 0o600
    finally:
        process.stop()


def test_behind_a_proxy_the_public_url_is_the_dashboards_origin(tmp_path: Path) -> None:
    # A reverse proxy that rewrites Host to the broker's own address: the browser's Origin
    # is the public URL's, which must pass; any other stays refused.
    broker = Broker(tmp_path, "--public-url", "https://debug.example/").start()
    try:
        session = broker.log_in()
        for origin, status in (
            ("https://debug.example", 404),  # got past the Origin check: no such report
            ("https://DEBUG.example", 404),
            ("http://debug.example", 403),
            ("https://debug.example:8443", 403),
            ("https://evil.example", 403),
        ):
            headers = {**session.headers(), "Origin": origin}
            answer = raw(broker, "POST", EVAL_PATH, headers=headers, json_body={"code": "1"})
            assert answer.status == status, (origin, answer.text)
    finally:
        broker.stop()


def test_an_https_public_url_makes_the_cookie_secure(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--public-url", "https://debug.example").start()
    try:
        answer = raw(
            broker,
            "POST",
            "/login",
            json_body={"token": broker.token},
            headers={"Host": "debug.example"},
        )
        assert answer.status == 200
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
