"""The grouped home view and triage in the dashboard, in Chromium against a real broker.

Reports come from a real agent transport over zmq (the ``seed`` fixture and ``send_other``);
every triage click goes through the broker's HTTP API, and what the page shows is checked
against what the broker answers.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.protocol import ReportMessage, Welcome
from tests.broker.test_security_agents import RawAgent, a_report
from tests.conftest import Broker, http, wait_for
from tests.e2e.browser import log_in, show_reports

if TYPE_CHECKING:
    from debugbroker.agent.transport.transport import Transport
    from debugbroker.protocol import Report
    from tests.e2e.browser import OpenPage, Seed

pytest_plugins = ["tests.e2e.browser"]

VIEW_TOKEN = "view-token-triage"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """This module's broker also has a view-only token."""
    started = Broker(tmp_path, "--view-token", VIEW_TOKEN).start()
    yield started
    started.stop()


def _value_error() -> BaseException:
    try:
        int("not a number")
    except ValueError as error:
        return error
    raise AssertionError("unreachable")


def send_other(broker: Broker, agent: Transport) -> Report:
    """A ValueError, another fingerprint than the seeded KeyErrors; back once stored."""
    report = build_report(
        _value_error(),
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
    )
    agent.submit_report(report)
    wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="the report")
    return report


def groups_by_fingerprint(broker: Broker) -> dict[str, dict[str, Any]]:
    answer = broker.get("/api/groups")
    assert answer.status == 200, answer.text
    return {group["fingerprint"]: group for group in answer.json()["groups"]}


def fingerprint_of(broker: Broker, report: Report) -> str:
    (summary,) = [summary for summary in broker.reports() if summary["id"] == report.id]
    fingerprint: str = summary["fingerprint"]
    return fingerprint


def group_row(page: Page, fingerprint: str) -> Locator:
    return page.locator(f'[data-testid="group"][data-fingerprint="{fingerprint}"]')


def broker_state(broker: Broker, fingerprint: str) -> str:
    state: str = groups_by_fingerprint(broker)[fingerprint]["state"]
    return state


def test_the_home_groups_repeats_live_and_opens_the_newest_in_one_click(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    seed(3, "repeat")
    page, _ = open_page()
    log_in(page, broker)
    expect(page.get_by_test_id("groups-link")).to_have_attribute("aria-current", "page")
    (fingerprint,) = groups_by_fingerprint(broker)
    group = group_row(page, fingerprint)
    expect(group.get_by_test_id("group-count")).to_have_text("3")
    expect(group.get_by_test_id("group-kept")).to_have_text("3 seen, 3 kept")
    expect(group.get_by_test_id("group-state")).to_have_text("open")
    expect(group.get_by_test_id("sparkline").locator("rect")).to_have_count(24)
    expect(group).to_contain_text("seeded")  # the app
    expect(group).to_contain_text(f"pid {os.getpid()}@")  # the seeding agent is this process
    expect(group).to_contain_text("(3 kept)")  # its reports the group keeps, not all it saw
    page.evaluate("window.notReloaded = true")

    # A repeat: counted in place, live; a new error: a new row on top.
    newest = seed(1, "again")[0]
    expect(group.get_by_test_id("group-count")).to_have_text("4")
    expect(group.get_by_test_id("group-kept")).to_have_text("4 seen, 4 kept")
    other = send_other(broker, agent)
    rows = page.get_by_test_id("group")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-fingerprint", fingerprint_of(broker, other))
    assert page.evaluate("window.notReloaded") is True
    assert groups_by_fingerprint(broker)[fingerprint]["count"] == 4

    # The newest report of a group opens in one click.
    group.get_by_test_id("group-open").click()
    expect(page).to_have_url(re.compile(f"#/reports/{newest.id}$"))
    expect(page.get_by_test_id("report-title")).to_have_text("KeyError: 'again'")

    # The flat list of single reports is one click away, and still works.
    show_reports(page)
    expect(page).to_have_url(re.compile("#/reports$"))
    report_rows = page.get_by_test_id("report-row")
    expect(report_rows).to_have_count(5)
    expect(report_rows.first).to_have_attribute("data-id", other.id)
    seed(1, "on the list")
    expect(report_rows).to_have_count(6)
    page.get_by_test_id("groups-link").click()
    expect(group.get_by_test_id("group-count")).to_have_text("5")


def test_resolve_then_the_error_comes_back_as_regressed_in_every_tab(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    seed(2, "flaky")
    page, _ = open_page()
    log_in(page, broker)
    other, _ = open_page()
    log_in(other, broker)
    (fingerprint,) = groups_by_fingerprint(broker)
    group, seen_elsewhere = group_row(page, fingerprint), group_row(other, fingerprint)
    expect(seen_elsewhere.get_by_test_id("group-state")).to_have_text("open")
    other.evaluate("window.notReloaded = true")

    group.get_by_test_id("group-resolve").click()
    expect(group.get_by_test_id("group-state")).to_have_text("resolved")
    expect(page.get_by_test_id("triage-status")).to_contain_text("Resolved")
    wait_for(lambda: broker_state(broker, fingerprint) == "resolved", what="resolved")
    expect(seen_elsewhere.get_by_test_id("group-state")).to_have_text("resolved")  # live
    expect(group.get_by_test_id("group-reopen")).to_be_visible()
    expect(group.get_by_test_id("regressed-badge")).to_have_count(0)

    seed(1, "flaky again")
    for row in (group, seen_elsewhere):
        expect(row.get_by_test_id("group-state")).to_have_text("regressed")
        expect(row.get_by_test_id("regressed-badge")).to_be_visible()
        expect(row).to_have_class(re.compile(r"\bstate-regressed\b"))
        expect(row.get_by_test_id("group-count")).to_have_text("3")
    assert broker_state(broker, fingerprint) == "regressed"
    assert other.evaluate("window.notReloaded") is True

    # Reopen: open again, as the broker says.
    group.get_by_test_id("group-resolve").click()
    expect(group.get_by_test_id("group-state")).to_have_text("resolved")
    group.get_by_test_id("group-reopen").click()
    expect(group.get_by_test_id("group-state")).to_have_text("open")
    wait_for(lambda: broker_state(broker, fingerprint) == "open", what="reopened")


def test_mute_for_n_more_or_for_a_time_and_ignore_for_good(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    seed(1, "noisy")
    page, _ = open_page()
    log_in(page, broker)
    (fingerprint,) = groups_by_fingerprint(broker)
    group = group_row(page, fingerprint)

    # Until N more occurrences: the dialog asks how; the mute ends after them.
    group.get_by_test_id("group-mute-button").click()
    dialog = page.get_by_role("dialog", name="Mute this error")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("mute-occurrences").fill("2")
    expect(dialog.get_by_test_id("mute-by-count")).to_be_checked()
    dialog.get_by_role("button", name="Mute").click()
    expect(dialog).to_be_hidden()
    expect(group.get_by_test_id("group-state")).to_have_text("muted")
    expect(group.get_by_test_id("group-mute")).to_have_text("for 2 more")
    listed = groups_by_fingerprint(broker)[fingerprint]
    assert (listed["state"], listed["mute_remaining"]) == ("muted", 2)
    seed(1, "one more")
    expect(group.get_by_test_id("group-mute")).to_have_text("for 1 more")
    seed(1, "two more")
    expect(group.get_by_test_id("group-state")).to_have_text("open")
    assert broker_state(broker, fingerprint) == "open"

    # For a time: 8 hours from now.
    group.get_by_test_id("group-mute-button").click()
    dialog.get_by_test_id("mute-minutes").select_option(label="8 hours")
    started = time.time()
    dialog.get_by_role("button", name="Mute").click()
    expect(group.get_by_test_id("group-state")).to_have_text("muted")
    expect(group.get_by_test_id("group-mute")).to_contain_text("until")
    until = groups_by_fingerprint(broker)[fingerprint]["mute_until"]
    assert started + 8 * 3600 - 60 < until < time.time() + 8 * 3600 + 60
    seed(1, "while muted")
    expect(group.get_by_test_id("group-count")).to_have_text("4")  # still counted
    expect(group.get_by_test_id("group-state")).to_have_text("muted")

    # Ignore, for good: later errors are counted, the state stays.
    group.get_by_test_id("group-ignore").click()
    expect(group.get_by_test_id("group-state")).to_have_text("ignored")
    seed(1, "ignored")
    expect(group.get_by_test_id("group-count")).to_have_text("5")
    expect(group.get_by_test_id("group-state")).to_have_text("ignored")
    assert broker_state(broker, fingerprint) == "ignored"

    # The filter shows the open and regressed ones only when asked.
    page.get_by_test_id("group-filter").select_option("attention")
    expect(page.get_by_test_id("group")).to_have_count(0)
    page.get_by_test_id("group-filter").select_option("ignored")
    expect(page.get_by_test_id("group")).to_have_count(1)


def test_deleting_a_group_and_clearing_everything_ask_first(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    seed(2, "to delete")
    kept = send_other(broker, agent)
    page, _ = open_page()
    log_in(page, broker)
    rows = page.get_by_test_id("group")
    expect(rows).to_have_count(2)
    kept_print = fingerprint_of(broker, kept)
    doomed = next(key for key in groups_by_fingerprint(broker) if key != kept_print)
    group = group_row(page, doomed)

    # Delete, then Cancel: nothing happens.
    group.get_by_test_id("group-delete").click()
    dialog = page.get_by_role("dialog", name="Delete this group?")
    expect(dialog).to_contain_text("2 stored reports")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert doomed in groups_by_fingerprint(broker)

    # Delete, confirmed: the group and its reports are gone.
    group.get_by_test_id("group-delete").click()
    dialog.get_by_role("button", name="Delete group").click()
    expect(rows).to_have_count(1)
    assert doomed not in groups_by_fingerprint(broker)
    assert [report["id"] for report in broker.reports()] == [kept.id]

    # Clear everything: the button stays off until the confirmation is typed.
    page.get_by_test_id("clear-all").click()
    clear = page.get_by_role("dialog", name="Clear everything?")
    confirm = clear.get_by_role("button", name="Clear everything")
    expect(confirm).to_be_disabled()
    clear.get_by_test_id("clear-confirmation").fill("delete")
    expect(confirm).to_be_disabled()
    assert broker.reports() != []
    clear.get_by_test_id("clear-confirmation").fill("delete everything")
    confirm.click()
    expect(clear).to_be_hidden()
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("no-groups")).to_contain_text("No errors yet")
    assert broker.reports() == []
    assert groups_by_fingerprint(broker) == {}
    show_reports(page)
    expect(page.get_by_test_id("report-row")).to_have_count(0)


def test_deleting_a_report_from_its_page_keeps_its_count(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    sent = seed(2, "one of two")
    page, _ = open_page()
    log_in(page, broker)
    (fingerprint,) = groups_by_fingerprint(broker)
    page.goto(f"{broker.url}/#/reports/{sent[-1].id}")
    expect(page.get_by_test_id("report-title")).to_be_visible()
    page.get_by_test_id("delete-report").click()
    dialog = page.get_by_role("dialog", name="Delete this report?")
    dialog.get_by_role("button", name="Delete report").click()
    expect(page).to_have_url(re.compile("#/$"))  # back to the list it came from
    assert broker.get(f"/api/reports/{sent[-1].id}").status == 404
    group = group_row(page, fingerprint)
    expect(group.get_by_test_id("group-kept")).to_have_text("2 seen, 1 kept")
    expect(group.get_by_test_id("group-open")).to_have_attribute("href", f"#/reports/{sent[0].id}")


def test_keyboard_shortcuts_triage_the_selected_group(
    broker: Broker, open_page: OpenPage, seed: Seed, agent: Transport
) -> None:
    seed(1, "keys")
    newest = send_other(broker, agent)
    page, _ = open_page()
    log_in(page, broker)
    rows = page.get_by_test_id("group")
    expect(rows).to_have_count(2)
    top, second = rows.nth(0), rows.nth(1)
    top_print = fingerprint_of(broker, newest)
    second_print = next(key for key in groups_by_fingerprint(broker) if key != top_print)
    selected = re.compile(r"\bselected\b")
    keyboard = page.keyboard

    keyboard.press("j")
    expect(top).to_have_class(selected)
    keyboard.press("j")
    expect(second).to_have_class(selected)
    keyboard.press("k")
    expect(top).to_have_class(selected)
    expect(second).not_to_have_class(selected)
    # A fast burst: the selection and focus end where the keys say (no two rows taking turns).
    for key in "jkjjkkj":
        keyboard.press(key)
    expect(second).to_have_class(selected)
    expect(second.get_by_test_id("group-open")).to_be_focused()
    keyboard.press("k")
    expect(top).to_have_class(selected)

    keyboard.press("r")
    expect(top.get_by_test_id("group-state")).to_have_text("resolved")
    wait_for(lambda: broker_state(broker, top_print) == "resolved", what="r resolves")
    keyboard.press("o")
    expect(top.get_by_test_id("group-state")).to_have_text("open")
    keyboard.press("j")
    keyboard.press("i")
    expect(second.get_by_test_id("group-state")).to_have_text("ignored")
    wait_for(lambda: broker_state(broker, second_print) == "ignored", what="i ignores")
    assert broker_state(broker, top_print) == "open"

    # m: the mute dialog, keyboard only; Enter in the form mutes.
    keyboard.press("m")
    dialog = page.get_by_role("dialog", name="Mute this error")
    expect(dialog).to_be_visible()
    keyboard.press("j")  # inside the dialog: not a shortcut
    expect(second).to_have_class(selected)
    keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(second.get_by_test_id("group-state")).to_have_text("muted")
    assert groups_by_fingerprint(broker)[second_print]["mute_until"] is not None

    # d asks first: Esc cancels; confirmed, the group goes.
    keyboard.press("d")
    confirm = page.get_by_role("dialog", name="Delete this group?")
    expect(confirm).to_be_visible()
    keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(rows).to_have_count(2)
    keyboard.press("d")
    confirm.get_by_role("button", name="Delete group").click()
    expect(rows).to_have_count(1)
    assert second_print not in groups_by_fingerprint(broker)

    # Enter opens the selected group's newest report; Esc comes back.
    page.evaluate("document.activeElement?.blur()")
    keyboard.press("j")
    expect(top).to_have_class(selected)
    keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/reports/{newest.id}$"))
    keyboard.press("Escape")
    expect(page).to_have_url(re.compile("#/$"))

    # The help lists the triage keys.
    keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    for key in ("r", "o", "i", "m", "d"):
        expect(help_dialog.locator("kbd", has_text=re.compile(f"^{key}$"))).to_be_visible()
    expect(help_dialog).to_contain_text("Resolve the selected error")
    keyboard.press("Escape")


def test_a_view_only_session_sees_no_triage(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    sent = seed(1, "look, do not touch")[0]
    answer = http(
        "POST",
        broker.url + "/api/login-codes",
        headers={"Authorization": f"Bearer {VIEW_TOKEN}"},
        json_body={},
    )
    assert answer.status == 200, answer.text
    assert answer.json()["role"] == "view"
    page, _ = open_page()
    page.goto(answer.json()["url"])
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    (fingerprint,) = groups_by_fingerprint(broker)
    group = group_row(page, fingerprint)
    expect(group.get_by_test_id("group-count")).to_have_text("1")
    expect(page.get_by_test_id("view-only-note")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Triage")).to_have_count(0)
    for control in ("group-resolve", "group-ignore", "group-mute-button", "group-delete"):
        expect(group.get_by_test_id(control)).to_have_count(0)
    expect(page.get_by_test_id("clear-all")).to_have_count(0)

    # The shortcuts do nothing either.
    page.keyboard.press("j")
    expect(group).to_have_class(re.compile(r"\bselected\b"))
    for key in ("r", "i", "m", "d"):
        page.keyboard.press(key)
    expect(page.get_by_test_id("triage-dialog")).to_be_hidden()
    assert broker_state(broker, fingerprint) == "open"

    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/reports/{sent.id}$"))
    expect(page.get_by_test_id("export-markdown")).to_be_visible()
    expect(page.get_by_test_id("delete-report")).to_have_count(0)


def _all_reports(broker: Broker) -> list[dict[str, Any]]:
    answer = broker.get("/api/reports?limit=1000")
    assert answer.status == 200, answer.text
    reports: list[dict[str, Any]] = answer.json()["reports"]
    return reports


def test_groups_past_the_first_page_are_shown_on_asking_and_found_by_state(
    broker: Broker, open_page: OpenPage
) -> None:
    """230 fingerprints: the home shows the 200 most recently seen and says how many more
    there are; "Show 30 more" brings them. A group resolved long ago, past the first page,
    is listed by the "Resolved" filter (the broker filters, not the loaded page)."""
    raw = RawAgent(broker.zmq_url)
    try:
        assert isinstance(raw.hello(broker.secret), Welcome)
        agent_id = raw.identity.decode()
        oldest = ""
        for number in range(230):
            report = dataclasses.replace(
                a_report(agent_id), type_name=f"Error{number:03d}", created=time.time()
            )
            raw.send_message(ReportMessage(report=report))
            oldest = oldest or report.id
        wait_for(lambda: len(_all_reports(broker)) == 230, what="230 reports stored")
    finally:
        raw.close()
    (summary,) = [s for s in _all_reports(broker) if s["id"] == oldest]
    key = summary["fingerprint"]
    assert broker.post(f"/api/groups/{key}/state", {"state": "resolved"}).status == 200

    page, _ = open_page()
    log_in(page, broker)
    rows = page.get_by_test_id("group")
    expect(rows).to_have_count(200)
    note = page.get_by_test_id("groups-more-note")
    expect(note).to_contain_text("The 200 most recently seen of 230 groups.")
    expect(group_row(page, key)).to_have_count(0)
    page.get_by_role("button", name="Show 30 more").click()
    expect(rows).to_have_count(230)
    expect(note).to_have_count(0)
    expect(group_row(page, key).get_by_test_id("group-state")).to_have_text("resolved")
    expect(rows.last).to_have_attribute("data-fingerprint", key)  # seen first, listed last

    page.reload()
    expect(rows).to_have_count(200)  # a page again
    page.get_by_test_id("group-filter").select_option("resolved")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-fingerprint", key)
    expect(note).to_have_count(0)
    page.get_by_test_id("group-filter").select_option("attention")
    expect(rows).to_have_count(200)
    expect(note).to_contain_text("The 200 most recently seen of 229 groups.")


def test_the_search_form_filters_by_app_state_and_time_and_pages(
    broker: Broker, open_page: OpenPage
) -> None:
    raw = RawAgent(broker.zmq_url)
    try:
        assert isinstance(raw.hello(broker.secret), Welcome)
        agent_id = raw.identity.decode()
        now = time.time()
        sent = [  # 70 groups: the default retention keeps 20 reports of a group
            dataclasses.replace(
                a_report(agent_id), type_name=f"Paged{n}", message="paged", created=now - n
            )
            for n in range(70)
        ]
        sent.append(
            dataclasses.replace(a_report(agent_id), type_name="OldError", created=now - 2 * 86_400)
        )
        sent.append(dataclasses.replace(a_report(agent_id), type_name="ShopError", app="shop"))
        for report in sent:
            raw.send_message(ReportMessage(report=report))
        wait_for(lambda: len(_all_reports(broker)) == 72, what="72 reports stored")
    finally:
        raw.close()
    (shop,) = [s for s in _all_reports(broker) if s["type_name"] == "ShopError"]
    resolved = broker.post(f"/api/groups/{shop['fingerprint']}/state", {"state": "resolved"})
    assert resolved.status == 200

    page, _ = open_page()
    log_in(page, broker)
    form = page.get_by_test_id("search-form")
    results = page.get_by_test_id("search-result")
    count = page.get_by_test_id("search-count")

    def search(**fields: str) -> None:
        for name in ("q", "type", "path", "app", "agent"):
            form.locator(f"input[name={name}]").fill(fields.get(name, ""))
        form.locator("select[name=state]").select_option(fields.get("state", ""))
        form.locator("select[name=since]").select_option(label=fields.get("since", "any time"))
        form.get_by_role("button", name="Search").click()

    # Pages of 50, newest first, the next one after the last row shown.
    search(q="paged")
    expect(results).to_have_count(50)
    expect(count).to_have_text("50 reports, newest first. More results")
    page.get_by_test_id("search-more").click()
    expect(results).to_have_count(70)
    expect(count).to_have_text("70 reports, newest first.")
    ids = [row.get_attribute("data-id") for row in results.all()]
    assert ids == [report.id for report in sent[:70]]  # each once, in order

    search(type="OldError", since="the last 24 hours")
    expect(page.get_by_text("No stored report matches.")).to_be_visible()
    search(type="OldError", since="the last 7 days")
    expect(results).to_have_count(1)
    search(state="resolved")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("ShopError")
    search(app="shop", state="open")
    expect(page.get_by_text("No stored report matches.")).to_be_visible()
    search(app="shop")
    expect(results).to_have_count(1)


def test_a_live_storm_shows_what_the_broker_kept_not_one_kept_per_arrival(
    broker: Broker, open_page: OpenPage
) -> None:
    """Counted in live, each arrival adds one to "kept"; the broker's retention keeps the
    first 10 and latest 10 of a group (no frames held here: a raw agent's reports). The page
    then takes the broker's exact counts, without a page load."""
    raw = RawAgent(broker.zmq_url)
    try:
        assert isinstance(raw.hello(broker.secret), Welcome)
        agent_id = raw.identity.decode()

        def send(count: int) -> None:
            reports = [a_report(agent_id) for _ in range(count)]
            for report in reports:
                raw.send_message(ReportMessage(report=report))
            last = reports[-1].id
            wait_for(lambda: broker.get(f"/api/reports/{last}").status == 200, what="stored")

        send(1)
        page, _ = open_page()
        log_in(page, broker)
        (fingerprint,) = groups_by_fingerprint(broker)
        kept = group_row(page, fingerprint).get_by_test_id("group-kept")
        expect(kept).to_have_text("1 seen, 1 kept")
        page.evaluate("window.notReloaded = true")
        send(29)
        expect(kept).to_have_text("30 seen, 20 kept")
        assert groups_by_fingerprint(broker)[fingerprint]["kept"] == 20
        assert page.evaluate("window.notReloaded") is True
    finally:
        raw.close()
