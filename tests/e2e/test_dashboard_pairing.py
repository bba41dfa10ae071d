"""Pairing in the dashboard: two people in two Chromium contexts on one real broker.

The driver indicator of a shared console ("Ada is typing…") travels as throttled typing notices
over the presence WebSocket, which the broker validates, names itself and relays to the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import aiohttp
from playwright.sync_api import Locator, Page, Route, expect

from debugbroker.agent.capture.exceptions import build_report
from tests.conftest import Broker, wait_for
from tests.e2e.browser import person

if TYPE_CHECKING:
    from debugbroker.agent.transport.transport import Transport
    from tests.e2e.browser import OpenPage, Seed

pytest_plugins = ["tests.e2e.browser"]


def pump_until(page: Page, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait for ``condition`` with a deadline, letting Playwright deliver its events meanwhile
    (its sync API only dispatches them, route handlers included, inside its own calls)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        page.wait_for_timeout(20)


def open_console(page: Page, broker: Broker, report_id: str, index: int) -> Locator:
    """Open the console of frame ``index`` of a report; the console's locator."""
    page.goto(f"{broker.url}/#/reports/{report_id}/frames/{index}")
    frame = page.locator(f'[data-testid="frame"][data-index="{index}"]')
    frame.get_by_test_id("console-toggle").click()
    console = frame.get_by_test_id("console")
    expect(console.get_by_test_id("console-input")).to_be_enabled()
    return console


def test_everyone_on_a_console_sees_who_is_typing_in_it(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    report = seed(1, "pairing")[0]
    index = report.exceptions[0].frames[-1].index
    ada = person(open_page, broker, "Ada")
    bob = person(open_page, broker, "Bob")
    expect(ada.get_by_test_id("presence-count")).to_have_text("1 other here")
    ada_console = open_console(ada, broker, report.id, index)
    bob_console = open_console(bob, broker, report.id, index)
    bob_typing = bob_console.get_by_test_id("console-typing")
    expect(bob_typing).to_have_text("")

    # Ada types: Bob sees it; Ada does not see herself.
    ada_console.get_by_test_id("console-input").press_sequentially("sorted(table")
    expect(bob_typing).to_have_text("Ada is typing…")
    expect(ada_console.get_by_test_id("console-typing")).to_have_text("")
    from tests.e2e.browser import accessibility_problems

    assert accessibility_problems(bob) == []
    # She pauses: the notice expires on its own.
    expect(bob_typing).to_have_text("", timeout=15_000)

    # Both type; each sees the other. Ada runs her input: her notice goes at once.
    ada_console.get_by_test_id("console-input").press_sequentially(")")
    bob_console.get_by_test_id("console-input").press_sequentially("key")
    expect(bob_typing).to_have_text("Ada is typing…")
    expect(ada_console.get_by_test_id("console-typing")).to_have_text("Bob is typing…")
    ada_console.get_by_test_id("console-input").press("Enter")
    expect(bob_console.get_by_test_id("console-output")).to_have_text("['known']")
    expect(bob_typing).to_have_text("")

    # A third tab elsewhere in the report does not show it on another frame's console.
    other = report.exceptions[0].frames[0].index
    if other != index:
        carol = person(open_page, broker, "Carol")
        carol_console = open_console(carol, broker, report.id, other)
        bob_console.get_by_test_id("console-input").press_sequentially("s")
        expect(ada_console.get_by_test_id("console-typing")).to_have_text("Bob is typing…")
        expect(carol_console.get_by_test_id("console-typing")).to_have_text("")


async def _typing_session(broker: Broker) -> dict[str, Any]:
    """Typing notices from raw sockets: what is relayed, to whom, and what is refused."""
    headers = {"Authorization": f"Bearer {broker.token}"}
    seen: dict[str, Any] = {"watcher": []}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with (
            session.ws_connect(broker.url + "/api/ws") as watcher,
            session.ws_connect(broker.url + "/api/ws") as typist,
        ):
            console = "reports/r-1/frames/3"
            # Before saying who it is, a tab's typing is refused (not relayed).
            await typist.send_json({"type": "typing", "console": console})
            await typist.send_json({"type": "presence", "name": "Tess\u202e", "report": "r-1"})
            welcome = await typist.receive_json(timeout=10)
            assert welcome["type"] == "welcome"
            seen["typist_id"] = welcome["viewer"]
            for garbage in [
                {"type": "typing", "console": "../../etc/passwd"},
                {"type": "typing", "console": "reports/r-1/frames/x"},
                {"type": "typing", "console": console, "active": "yes"},
                {"type": "typing", "console": console, "name": "Mallory"},
                {"type": "typing", "console": 5},
            ]:
                await typist.send_json(garbage)
            for _ in range(5):  # a burst: one is relayed
                await typist.send_json({"type": "typing", "console": console, "active": True})
            await typist.send_json({"type": "typing", "console": console, "active": False})
            await typist.send_json({"type": "presence", "name": "Tess", "report": None})
            while True:
                event = await watcher.receive_json(timeout=10)
                if event["type"] == "presence" and event["viewers"][0]["report"] is None:
                    break
                if event["type"] == "typing":
                    seen["watcher"].append(event)
            # The typist itself never hears its own notices.
            heard = []
            while True:
                event = await typist.receive_json(timeout=10)
                heard.append(event["type"])
                if event["type"] == "presence" and event["viewers"][0]["report"] is None:
                    break
            seen["typist_heard"] = heard
    return seen


def test_the_broker_relays_valid_typing_notices_with_the_name_it_knows(broker: Broker) -> None:
    with ThreadPoolExecutor(1) as thread:
        seen = thread.submit(asyncio.run, _typing_session(broker)).result()
    relayed = seen["watcher"]
    started = {
        "type": "typing",
        "viewer": seen["typist_id"],
        "name": "Tess",
        "console": "reports/r-1/frames/3",
        "active": True,
    }
    assert relayed == [started, {**started, "active": False}]
    assert "typing" not in seen["typist_heard"]


def test_the_search_box_finds_stored_reports_that_are_not_loaded(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    from tests.e2e.browser import _captured, log_in, show_reports

    needle = build_report(
        _captured("needle in the haystack"),
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
    )
    needle = dataclasses.replace(needle, created=needle.created - 3600)  # an hour ago
    agent.submit_report(needle)
    seed(120, "hay")
    # The needle is the oldest report: the first page of the list holds only hay.
    assert all(summary["id"] != needle.id for summary in broker.reports())
    page, _ = open_page()
    show_reports(log_in(page, broker))
    rows = page.get_by_test_id("report-row")
    expect(page.get_by_test_id("report-count")).to_have_text("100+")
    assert page.locator(f'[data-testid="report-row"][data-id="{needle.id}"]').count() == 0
    search = page.get_by_test_id("report-search")
    status = page.get_by_test_id("search-status")

    # While the broker searches, the list says so (its answer is held back here, then let go).
    held: list[Route] = []
    zebra = re.compile(r"/api/reports\?.*q=zebra")

    def hold(route: Route) -> None:
        held.append(route)

    page.route(zebra, hold)
    search.fill("zebra")
    expect(status).to_have_attribute("data-state", "loading")
    expect(status).to_have_text("Searching every stored report…")
    expect(page.get_by_test_id("no-match")).to_contain_text("searching the broker")
    pump_until(page, lambda: bool(held), "the held search request")
    held[0].continue_()
    expect(status).to_have_text("No report matches “zebra”, loaded or stored.")
    page.unroute(zebra)

    # Free text is searched anywhere in every stored report.
    search.fill("needle in the")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", needle.id)
    expect(status).to_have_attribute("data-state", "done")
    expect(status).to_have_text("Searched every stored report: 1 found on the broker.")
    rows.first.locator("a").click()
    expect(page.get_by_test_id("report-title")).to_have_text("KeyError: 'needle in the haystack'")
    page.go_back()

    # Filters: type:, path:, agent: words; the rest is text.
    search.fill(f"type:KeyError agent:{needle.agent_id} haystack")
    expect(rows).to_have_count(1)
    search.fill("type:ValueError haystack")
    expect(status).to_have_text("No report matches “type:ValueError haystack”, loaded or stored.")
    expect(rows).to_have_count(0)
    # Text found only in a stored traceback's locals (the failing key), in no summary: only the
    # broker's search can match it (the list filters summaries).
    search.fill("known")
    expect(status).to_have_text("Searched every stored report: 121 found on the broker.")
    expect(rows.first).to_be_visible()
    expect(page.get_by_test_id("report-count")).to_contain_text("121 of ")

    search.fill("")
    expect(status).to_have_count(0)
    expect(page.get_by_test_id("report-count")).to_have_text(re.compile(r"^\d+\+?$"))


def _value_error() -> BaseException:
    try:
        int("not a number")
    except ValueError as error:
        return error
    raise AssertionError("unreachable")


def test_groups_count_repeats_live_without_a_reload(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    from tests.e2e.browser import log_in

    seed(2, "repeat")
    (stored,) = broker.get("/api/groups").json()["groups"]
    fingerprint = stored["fingerprint"]
    page, _ = open_page()
    log_in(page, broker)
    page.goto(f"{broker.url}/#/groups")
    group = page.locator(f'[data-testid="group"][data-fingerprint="{fingerprint}"]')
    expect(group.get_by_test_id("group-count")).to_have_text("2")
    page.evaluate("window.notReloaded = true")

    # Same fingerprint again: the count goes up in place, and the latest report is linked.
    newest = seed(1, "repeat again")[0]
    expect(group.get_by_test_id("group-count")).to_have_text("3")
    expect(group.locator("a").first).to_have_attribute("href", f"#/reports/{newest.id}")
    expect(group).to_contain_text("(3 kept)")  # the worker's kept reports

    # A new kind of error: a new group on top.
    report = build_report(
        _value_error(),
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
    )
    agent.submit_report(report)
    wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="the report")
    other = broker.get("/api/reports?limit=1&type=ValueError").json()["reports"][0]["fingerprint"]
    rows = page.get_by_test_id("group")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-fingerprint", other)
    expect(rows.first.get_by_test_id("group-count")).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True
    # What the page counted is what the broker counts.
    groups = {
        item["fingerprint"]: item["count"] for item in broker.get("/api/groups").json()["groups"]
    }
    assert groups == {fingerprint: 3, other: 1}

    # Its state, and the last 24 hours hour by hour (an SVG bar per hour).
    expect(group.get_by_test_id("group-state")).to_have_text("open")
    expect(group.get_by_test_id("sparkline").locator("rect")).to_have_count(24)
    # Resolved, then the error comes back: regressed, live, as the broker says.
    resolved = broker.post(f"/api/groups/{fingerprint}/state", {"state": "resolved"})
    assert resolved.status == 200, resolved.text
    page.reload()
    expect(group.get_by_test_id("group-state")).to_have_text("resolved")
    seed(1, "comes back")
    expect(group.get_by_test_id("group-state")).to_have_text("regressed")
    expect(group.get_by_test_id("group-count")).to_have_text("4")
    listed = broker.get("/api/groups").json()["groups"]
    assert {item["fingerprint"]: item["state"] for item in listed}[fingerprint] == "regressed"


def test_a_console_entry_permalink_opens_the_console_at_that_entry(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    report = seed(1, "permalink")[0]
    index = report.exceptions[0].frames[-1].index
    ada = person(open_page, broker, "Ada")
    console = open_console(ada, broker, report.id, index)
    field = console.get_by_test_id("console-input")
    entries = console.get_by_test_id("console-entry")
    for number in range(12):  # enough entries that the one linked is not the last on screen
        field.fill(f"print('line {number}\\n' * 3)")
        field.press("Enter")
        expect(entries).to_have_count(number + 1)
        expect(field).to_have_value("")  # answered: the next input may go
    linked = entries.nth(3)
    expect(linked.get_by_test_id("console-output")).to_contain_text("line 3")
    entry_id = linked.get_attribute("data-entry")
    link = linked.get_by_test_id("console-entry-link")
    href = f"#/reports/{report.id}/frames/{index}/console/{entry_id}"
    expect(link).to_have_attribute("href", href)

    # Bob opens the link in a fresh tab: the console is open, the entry highlighted and in view.
    bob = person(open_page, broker, "Bob")
    bob.goto(f"{broker.url}/{href}")
    frame = bob.locator(f'[data-testid="frame"][data-index="{index}"]')
    target = frame.locator(f'[data-testid="console-entry"][data-entry="{entry_id}"]')
    expect(target).to_have_attribute("data-targeted", "true")
    expect(target).to_have_class(re.compile(r"\btargeted\b"))
    expect(target).to_be_focused()
    expect(target).to_be_in_viewport()
    expect(target.get_by_test_id("console-output")).to_contain_text("line 3")
    expect(frame.locator('[data-targeted="true"]')).to_have_count(1)
    from tests.e2e.browser import accessibility_problems

    assert accessibility_problems(bob) == []

    # Ada follows her own link from the same page: the highlight moves there, console stays open.
    link.click()
    expect(ada).to_have_url(re.compile(f"{re.escape(href)}$"))
    expect(linked).to_have_attribute("data-targeted", "true")
    expect(linked).to_be_focused()
    expect(console.get_by_test_id("console-input")).to_be_visible()

    # An entry that is not in the transcript is said to be missing.
    bob.goto(f"{broker.url}/#/reports/{report.id}/frames/{index}/console/999999")
    expect(frame.get_by_test_id("console-entry-missing")).to_contain_text("Entry 999999")
    expect(frame.locator('[data-targeted="true"]')).to_have_count(0)


def test_groups_are_right_after_the_broker_restarts(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    from tests.e2e.browser import log_in

    seed(2, "before")
    page, guard = open_page()
    guard.allow(r"WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource")
    log_in(page, broker)
    page.goto(f"{broker.url}/#/groups")
    counts = page.get_by_test_id("group-count")
    expect(counts).to_have_text(["2"])
    page.evaluate("window.notReloaded = true")

    broker.stop()
    expect(page.get_by_test_id("connection-status")).not_to_have_attribute("data-state", "open")
    broker.start()
    seed(1, "while the page reconnects")  # stored whether or not the page hears of it
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    expect(counts).to_have_text(["3"])
    assert page.evaluate("window.notReloaded") is True


def test_parse_typing_accepts_only_small_well_formed_notices() -> None:
    from debugbroker.broker.http.ws import parse_typing

    assert parse_typing('{"type": "typing", "console": "reports/ab_1.x-2/frames/3"}') == (
        "reports/ab_1.x-2/frames/3",
        True,
    )
    assert parse_typing('{"type": "typing", "console": "agents/a1", "active": false}') == (
        "agents/a1",
        False,
    )
    for bad in [
        "",
        "typing",
        "[]",
        '{"type": "presence", "console": "agents/a1"}',
        '{"type": "typing"}',
        '{"type": "typing", "console": "agents/"}',
        '{"type": "typing", "console": "agents/a1/extra"}',
        '{"type": "typing", "console": "reports/r/frames/12345678"}',
        '{"type": "typing", "console": "reports/r/frames/-1"}',
        '{"type": "typing", "console": "agents/' + "a" * 129 + '"}',
        '{"type": "typing", "console": "agents/a1\\n"}',
        '{"type": "typing", "console": "agents/a1", "active": 1}',
        '{"type": "typing", "console": "agents/a1", "active": true, "name": "x"}',
    ]:
        assert parse_typing(bad) is None, bad
