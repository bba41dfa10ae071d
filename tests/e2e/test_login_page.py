"""Logging in with a browser: one-time login URLs, the login form, sessions per tab.

Real Chromium against a real broker process: what a browser really sends (cookies to every
port of a host) is what these tests replay.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.conftest import Broker, http

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]
EVAL_PATH = "/api/reports/abc/frames/0/eval"


class _Recorder(BaseHTTPRequestHandler):
    """Another web server on the same host (the debugged app, say): it keeps the cookies."""

    cookies: list[str] = []

    def do_GET(self) -> None:
        self.cookies.append(self.headers.get("Cookie", ""))
        body = b"<!doctype html><title>another app</title><p>hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_port() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on another port of 127.0.0.1; its URL and the Cookie headers it got."""
    recorded: list[str] = []
    handler = type("Recorder", (_Recorder,), {"cookies": recorded})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()


def test_the_login_url_works_once_and_then_the_form_takes_the_token(
    broker: Broker, open_page: OpenPage
) -> None:
    url = broker.login_url()
    first, _ = open_page()
    first.goto(url)
    first.wait_for_url(f"{broker.url}/")  # the code left the address bar
    expect(first.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    # The same URL again (from history, or seen over a shoulder): used up.
    second, guard = open_page()
    guard.allow("401")
    second.goto(url)
    expect(second.get_by_test_id("login-error")).to_have_text(
        "This login link was used already or has expired. Paste the token instead."
    )
    assert not second.context.cookies()
    second.get_by_label("Token").fill(broker.token)
    second.get_by_role("button", name="Sign in").click()
    expect(second.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    # The old way, a token in the URL, is never read.
    third, _ = open_page()
    third.goto(f"{broker.url}/login?token={broker.token}")
    expect(third.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not third.context.cookies()


def test_a_cookie_the_browser_sends_to_another_port_cannot_run_code(
    broker: Broker, open_page: OpenPage, other_port: tuple[str, list[str]]
) -> None:
    page, _ = open_page()
    page.goto(broker.login_url())
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    other_url, recorded = other_port
    page.goto(other_url)  # the user visits their app: the browser sends it our cookie
    stolen = next(cookie for cookie in recorded if "debugbroker_session_" in cookie)
    # Replayed with the dashboard's Origin, as a script can: it reads, but runs nothing.
    replay = {"Cookie": stolen, "Origin": broker.url}
    assert http("GET", broker.url + "/session", headers=replay).json() == {"role": "full"}
    answer = http("POST", broker.url + EVAL_PATH, headers=replay, json_body={"code": "1"})
    assert answer.status == 403 and "X-Debugbroker-Key" in answer.json()["error"]
    answer = http("POST", broker.url + "/api/login-codes", headers=replay, json_body={})
    assert answer.status == 403
    # The key stayed in the dashboard's own tab (its origin's sessionStorage).
    page.goto(broker.url + "/")
    key = page.evaluate("sessionStorage.getItem('debugbroker:session-key')")
    assert key and key not in stolen
    with_key = {**replay, "X-Debugbroker-Key": key}
    answer = http("POST", broker.url + EVAL_PATH, headers=with_key, json_body={"code": "1"})
    assert answer.status == 404  # past authentication: there is no such report


def test_a_new_tab_gets_the_key_from_an_open_one_and_logout_ends_the_session(
    broker: Broker, open_page: OpenPage
) -> None:
    page, guard = open_page()
    guard.allow("401")
    page.goto(broker.login_url())
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    tab = page.context.new_page()
    tab.goto(broker.url + "/")
    expect(tab.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    key = "sessionStorage.getItem('debugbroker:session-key')"
    assert tab.evaluate(key) == page.evaluate(key)
    tab.close()
    status = page.evaluate(
        """async (key) => (await fetch('/logout', {method: 'POST',
            headers: {'X-Debugbroker-Key': key}})).status""",
        page.evaluate(key),
    )
    assert status == 200
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_sign_out_button_ends_the_session_in_every_tab(
    broker: Broker, open_page: OpenPage
) -> None:
    page, guard = open_page()
    guard.allow("401")
    page.goto(broker.login_url())
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    tab = page.context.new_page()
    tab.goto(broker.url + "/")
    expect(tab.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    cookies = page.context.cookies(broker.url)
    key = page.evaluate("sessionStorage.getItem('debugbroker:session-key')")

    page.get_by_test_id("sign-out").click()
    for each in (page, tab):
        expect(each.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("signed-out")).to_have_text("You signed out.")
    expect(tab.get_by_test_id("signed-out")).to_have_text("You signed out in another tab.")
    assert page.evaluate("sessionStorage.getItem('debugbroker:session-key')") is None
    # The broker ended the session: the old cookie with the old key opens nothing.
    replay = {
        "Cookie": "; ".join(f"{c['name']}={c['value']}" for c in cookies),
        "X-Debugbroker-Key": key,
    }
    assert http("GET", broker.url + "/api/reports", headers=replay).status == 401
    # The token signs in again.
    page.get_by_label("Token").fill(broker.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
