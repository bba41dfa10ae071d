"""Share links against a real broker: read-only, scriptless, revocable, and never a credential."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from debugbroker.protocol import ReportMessage, Welcome
from tests.broker.test_security_agents import RawAgent, a_report
from tests.conftest import Broker, http, wait_for


class Tags(HTMLParser):
    """The element names, attribute names and attribute values of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: set[str] = set()
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            self.values.append(value or "")


PAYLOAD = "<script>window.__xss=1</script><img src=x onerror=alert(1)>"


@pytest.fixture
def shared(broker: Broker) -> Iterator[tuple[dict[str, Any], str]]:
    """A report whose message is an XSS payload, and a share link to it."""
    agent = RawAgent(broker.zmq_url)
    try:
        assert isinstance(agent.hello(broker.secret), Welcome)
        report = dataclasses.replace(a_report(agent.identity.decode()), message=PAYLOAD)
        agent.send_message(ReportMessage(report=report))
        summary = wait_for(lambda: broker.reports(), what="the report")[0]
        answer = broker.post(f"/api/reports/{summary['id']}/share", {})
        assert answer.status == 201, answer.text
        yield summary, answer.json()["share_id"]
    finally:
        agent.close()


def test_a_share_link_is_a_scriptless_read_only_page(
    broker: Broker, shared: tuple[dict[str, Any], str]
) -> None:
    summary, share_id = shared
    assert len(share_id) >= 32  # 24 random bytes
    page = http("GET", f"{broker.url}/share/{share_id}")  # no token, no cookie
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    tags = Tags()
    tags.feed(html)
    assert tags.names and not tags.names & {"script", "form", "iframe", "object", "embed"}
    assert not [name for name in tags.attributes if name.startswith("on")]
    assert not [value for value in tags.values if value.lower().startswith("javascript:")]
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html  # the payload, as text
    assert "ValueError" in html  # the report is there, as text
    # A foreign Host is refused here too (DNS rebinding).
    foreign = http("GET", f"{broker.url}/share/{share_id}", headers={"Host": "evil.example"})
    assert foreign.status == 421


def test_a_share_link_never_reaches_the_api_or_eval(
    broker: Broker, shared: tuple[dict[str, Any], str]
) -> None:
    summary, share_id = shared
    eval_path = f"/api/reports/{summary['id']}/frames/0/eval"
    as_token = {"Authorization": f"Bearer {share_id}"}
    cookie_name = broker.log_in().cookie.split("=", 1)[0]
    as_cookie = {
        "Cookie": f"{cookie_name}={share_id}",
        "Origin": broker.url,
        "X-Debugbroker-Key": share_id,
    }
    for headers in ({}, as_token, as_cookie, {"Referer": f"{broker.url}/share/{share_id}"}):
        answer = http("POST", broker.url + eval_path, headers=headers, json_body={"code": "1"})
        assert answer.status in (401, 429), (headers, answer.status)
        answer = http("GET", f"{broker.url}/api/reports/{summary['id']}", headers=headers)
        assert answer.status in (401, 429)
    for credential in ({"token": share_id}, {"code": share_id}):
        answer = http("POST", f"{broker.url}/login", json_body=credential)
        assert answer.status in (401, 429)
    # Nothing under /share/ takes a POST, so there is no way to send code there.
    for path in (f"/share/{share_id}", f"/share/{share_id}/eval", f"/share/{share_id}/text"):
        answer = http("POST", broker.url + path, json_body={"code": "1"})
        assert answer.status in (404, 405), (path, answer.status)
    evals = [e for e in broker.get("/api/audit").json()["entries"] if e["action"] == "eval"]
    assert evals == []  # none of the above got as far as an eval


def test_share_links_are_made_and_revoked_by_the_full_token_only(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-abcdef").start()
    agent = RawAgent(broker.zmq_url)
    try:
        assert isinstance(agent.hello(broker.secret), Welcome)
        agent.send_message(ReportMessage(report=a_report(agent.identity.decode())))
        report_id = wait_for(lambda: broker.reports(), what="the report")[0]["id"]
        view = {"Authorization": "Bearer view-token-abcdef"}
        made = http("POST", f"{broker.url}/api/reports/{report_id}/share", headers=view)
        assert made.status == 403
        share_id = broker.post(f"/api/reports/{report_id}/share", {}).json()["share_id"]
        assert http("GET", f"{broker.url}/share/{share_id}").status == 200
        revoke = http("DELETE", f"{broker.url}/api/shares/{share_id}", headers=view)
        assert revoke.status == 403
        assert http("GET", f"{broker.url}/share/{share_id}").status == 200
        revoke = http("DELETE", f"{broker.url}/api/shares/{share_id}", headers=broker.auth())
        assert revoke.status == 200
        assert http("GET", f"{broker.url}/share/{share_id}").status == 404
        assert http("GET", f"{broker.url}/share/{share_id}/text").status == 404
        for guess in ("x", "a" * 32, "a" * 5000, "%00", "..%2f..%2fapi%2freports"):
            assert http("GET", f"{broker.url}/share/{guess}").status == 404, guess
    finally:
        agent.close()
        broker.stop()
