"""The dashboard in headless Chromium against a real broker and a real gunicorn app.

The app (``tests/e2e/apps/dashboard_wsgi.py``) runs under ``gunicorn -w 2`` with the agent;
errors are raised by real requests, travel agent → broker → WebSocket → page, and consoles
run code in the worker process that raised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import AppServer, Broker, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

RaiseError = Callable[[str], dict[str, Any]]


@pytest.fixture
def app_server(broker: Broker, start_server: Callable[..., AppServer]) -> AppServer:
    """``gunicorn -w 2`` serving the dashboard test app, with the agent reporting to ``broker``."""
    command = ["gunicorn", "-w", "2", "{bind}", "dashboard_wsgi:app"]
    server = start_server(command, broker.agent_env(), name="gunicorn")
    # A worker's agent starts with its first request; wait until one is connected.
    wait_for(lambda: server.get("/pid") and broker.live_agents(), timeout=40, what="an agent")
    return server


@pytest.fixture
def raise_error(broker: Broker, app_server: AppServer) -> RaiseError:
    """``raise_error(path)`` requests ``path`` from the app and returns the new report's summary."""

    def raise_one(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        known = {report["id"] for report in broker.reports()}
        answer = app_server.get(path, headers={"Accept": "text/plain", **(headers or {})})
        assert answer.status == 500, answer.text

        def arrived() -> dict[str, Any] | None:
            fresh = [report for report in broker.reports() if report["id"] not in known]
            return fresh[0] if fresh else None

        found: dict[str, Any] = wait_for(arrived, timeout=40, what=f"the report of {path}")
        return found

    return raise_one


def open_report(page: Page, summary: dict[str, Any]) -> None:
    """Open a report from the list by clicking its row."""
    page.locator(f'[data-testid="report-row"][data-id="{summary["id"]}"] a').click()
    expect(page.get_by_test_id("report-title")).to_contain_text(summary["type_name"])


def frame_by_function(page: Page, function: str) -> Any:
    return page.get_by_test_id("frame").filter(
        has=page.locator(".frame-function", has_text=re.compile(f"^{re.escape(function)}$"))
    )


# --- login ----------------------------------------------------------------------------------


def test_login_with_the_token_opens_the_dashboard(dashboard: Page) -> None:
    expect(dashboard.get_by_role("heading", name="Reports")).to_be_visible()
    expect(dashboard.get_by_test_id("connection-status")).to_contain_text("Live")


def test_without_a_session_the_login_form_asks_and_a_wrong_token_is_refused(
    broker: Broker, open_page: OpenPage
) -> None:
    page, guard = open_page()
    guard.allow(r"status of 401")  # the dashboard's first API call, before logging in
    page.goto(broker.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("report-row")).to_have_count(0)

    page.evaluate("window.__same_page = true")
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_have_text(
        "That token is not valid for this broker."
    )
    expect(page.get_by_label("Token")).to_have_attribute("aria-invalid", "true")
    assert not page.context.cookies()
    assert page.evaluate("window.__same_page") is True  # the form stayed, nothing navigated

    page.get_by_label("Token").fill(broker.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Errors")).to_be_visible()  # the home: grouped
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    assert [cookie["httpOnly"] for cookie in page.context.cookies()] == [True]


def test_a_wrong_code_in_the_login_url_shows_the_login_form(
    broker: Broker, open_page: OpenPage
) -> None:
    page, guard = open_page()
    guard.allow(r"status of 401")
    page.goto(f"{broker.url}/?code=wrong")
    expect(page.get_by_text("This login link was used already or has expired")).to_be_visible()
    expect(page.get_by_label("Token")).to_be_visible()
    assert page.url == f"{broker.url}/"
    assert not page.context.cookies()


# --- live list ------------------------------------------------------------------------------


def test_new_errors_appear_in_the_open_list_without_a_reload(
    dashboard: Page, raise_error: RaiseError
) -> None:
    rows = dashboard.get_by_test_id("report-row")
    expect(rows).to_have_count(0)
    dashboard.evaluate("window.__same_page = true")

    first = raise_error("/chain")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-id", first["id"])
    expect(row).to_contain_text("ValueError")
    expect(row).to_contain_text("unknown order Z-9")
    expect(row).to_contain_text(f"pid {first['pid']}")
    expect(row).to_have_class(re.compile(r"\bfresh\b"))

    second = raise_error("/chain")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-id", second["id"])  # newest first
    assert dashboard.evaluate("window.__same_page") is True  # no reload happened


# --- report view ----------------------------------------------------------------------------


def test_the_report_shows_the_chain_frames_highlighted_source_and_locals(
    dashboard: Page, raise_error: RaiseError, broker: Broker
) -> None:
    summary = raise_error("/chain")
    open_report(dashboard, summary)
    expect(dashboard).to_have_url(re.compile(f"#/reports/{summary['id']}$"))

    title = dashboard.get_by_test_id("report-title")
    expect(title).to_have_text("ValueError: unknown order Z-9")
    exceptions = dashboard.locator(".exception-title")
    expect(exceptions).to_have_count(2)
    expect(exceptions.nth(0)).to_have_text("KeyError: 'Z-9'")  # root cause first, as printed
    expect(exceptions.nth(1)).to_have_text("ValueError: unknown order Z-9")
    expect(dashboard.locator(".chain-link")).to_have_text(
        "The above exception was the direct cause of the following exception:"
    )
    expect(dashboard.locator(".note")).to_have_text("orders are loaded from the fixture table")

    failing = frame_by_function(dashboard, "load_order")
    expect(failing).to_have_count(1)
    expect(failing.locator(".frame-location")).to_contain_text("dashboard_wsgi.py:")
    source = failing.locator("pre.source")
    expect(source).to_be_visible()
    # Highlighted: Pygments tokens as classed spans (the keyword "return", a name…).
    expect(source.locator("span.k", has_text="return").first).to_be_visible()
    marked = source.locator(".line.failing")
    expect(marked).to_have_count(1)
    expect(marked).to_have_attribute("aria-current", "true")
    expect(marked).to_contain_text("quantity = orders[order_id]")
    expect(marked.locator("mark.failing-expr")).to_have_text("orders[order_id]")
    frame_lineno = int(marked.locator(".lineno").inner_text())
    report = broker.report(summary["id"])
    first_frames = report["exceptions"][0]["frames"]
    assert frame_lineno == next(f["lineno"] for f in first_frames if f["function"] == "load_order")

    locals_table = failing.locator("table.locals")
    expect(locals_table).to_be_visible()
    order_row = locals_table.locator("tr", has=dashboard.locator("th", has_text="order_id"))
    expect(order_row.locator("td")).to_have_text("'Z-9'")
    orders_row = locals_table.locator("tr", has=dashboard.locator("th", has_text="orders"))
    expect(orders_row.locator("td")).to_have_text("{'A-1': 3, 'B-2': 5}")


def test_the_plain_text_view_is_exactly_the_text_api_and_can_be_copied(
    broker: Broker, open_page: OpenPage, raise_error: RaiseError
) -> None:
    from tests.e2e.browser import log_in, show_reports

    page, _ = open_page(permissions=["clipboard-read", "clipboard-write"])
    show_reports(log_in(page, broker))
    summary = raise_error("/chain")
    open_report(page, summary)
    page.get_by_test_id("plaintext-toggle").click()
    expect(page.get_by_test_id("plaintext-toggle")).to_have_attribute("aria-pressed", "true")
    plain = page.get_by_test_id("plaintext")
    expect(plain).to_be_visible()
    expected = broker.get(f"/api/reports/{summary['id']}/text").text
    assert "The above exception was the direct cause" in expected
    assert plain.evaluate("node => node.textContent") == expected

    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == expected

    page.get_by_test_id("plaintext-toggle").click()
    expect(plain).to_have_count(0)
    expect(page.get_by_test_id("frame").first).to_be_visible()


def test_the_console_runs_code_in_the_worker_that_raised(
    dashboard: Page, raise_error: RaiseError, app_server: AppServer, broker: Broker
) -> None:
    summary = raise_error("/chain")
    open_report(dashboard, summary)
    frame = frame_by_function(dashboard, "raw_app")
    frame.get_by_test_id("console-toggle").click()
    console_input = frame.get_by_test_id("console-input")
    expect(console_input).to_be_focused()
    console_input.fill("os.getpid(), worker_pid")
    console_input.press("Enter")
    entry = frame.get_by_test_id("console-entry")
    expect(entry).to_have_count(1)
    expect(entry).to_have_attribute("aria-busy", "false")
    pid = summary["pid"]
    expect(entry.get_by_test_id("console-output")).to_have_text(f"({pid}, {pid})")
    # The pid is a live gunicorn worker's (an agent), not the arbiter's.
    assert pid != app_server.process.pid
    assert pid in {agent["pid"] for agent in broker.live_agents()}

    console_input.fill("print('hello'); worker_pid * 2")
    console_input.press("Enter")
    expect(entry).to_have_count(2)
    output = entry.nth(1).get_by_test_id("console-output")
    expect(output).to_contain_text("hello")
    expect(output).to_contain_text(str(pid * 2))


# --- screenshots ----------------------------------------------------------------------------


def test_screenshots_of_the_list_and_a_report_with_its_console(
    dashboard: Page,
    raise_error: RaiseError,
    app_server: AppServer,
    broker: Broker,
    tmp_path: Path,
) -> None:
    """Takes the README's pictures (laptop size): into docs/screenshots with
    ``DEBUGBROKER_UPDATE_SCREENSHOTS=1``, else into a temporary directory, so a test run
    leaves the working tree as it was."""
    from tests.e2e.browser import SCREENSHOTS

    update = os.environ.get("DEBUGBROKER_UPDATE_SCREENSHOTS") == "1"
    pictures = SCREENSHOTS if update else tmp_path
    pictures.mkdir(parents=True, exist_ok=True)
    # Agents start with their worker's first request: ask until both workers answered.
    wait_for(lambda: app_server.get("/pid") and len(broker.live_agents()) == 2, what="two agents")
    summaries = [raise_error("/chain") for _ in range(3)]
    raise_error("/profile")
    expect(dashboard.get_by_test_id("report-row")).to_have_count(4)
    expect(dashboard.get_by_test_id("agent-row")).to_have_count(2)
    dashboard.screenshot(path=str(pictures / "dashboard-list.png"), animations="disabled")
    # The home: the same errors grouped (three /chain, one /profile), with triage.
    dashboard.goto(dashboard.url.split("#")[0] + "#/")
    expect(dashboard.get_by_test_id("group")).to_have_count(2)
    dashboard.mouse.move(0, 0)
    dashboard.screenshot(path=str(pictures / "dashboard-groups.png"), animations="disabled")
    dashboard.goto(dashboard.url.split("#")[0] + "#/reports")

    open_report(dashboard, summaries[-1])
    frame = frame_by_function(dashboard, "load_order")
    frame.get_by_test_id("console-toggle").click()
    console_input = frame.get_by_test_id("console-input")
    entries = frame.get_by_test_id("console-entry")
    for number, code in enumerate(("orders.get(order_id, 0)", "sorted(orders)", "os.getpid()")):
        console_input.fill(code)
        console_input.press("Enter")
        expect(entries.nth(number)).to_have_attribute("aria-busy", "false")
    outputs = frame.get_by_test_id("console-output")
    expect(outputs).to_have_count(3)
    expect(outputs.nth(2)).to_have_text(str(summaries[-1]["pid"]))
    # The README's picture: the failing frame with its source, locals and console.
    caller = frame_by_function(dashboard, "checkout").first
    caller.locator(".frame-expand").click()
    expect(caller.locator(".frame-expand")).to_have_attribute("aria-expanded", "false")
    # From the failing exception's heading down: its frames, the source, the console.
    dashboard.locator(".exception").first.evaluate(
        "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 56)"
    )
    console_input.blur()
    dashboard.mouse.move(0, 0)  # no hover highlight in the picture
    dashboard.screenshot(path=str(pictures / "dashboard-report.png"), animations="disabled")
    dashboard.emulate_media(color_scheme="dark")
    dashboard.screenshot(path=str(pictures / "dashboard-report-dark.png"), animations="disabled")
    for name in (
        "dashboard-list.png",
        "dashboard-groups.png",
        "dashboard-report.png",
        "dashboard-report-dark.png",
    ):
        assert (pictures / name).stat().st_size > 10_000, name  # a real picture, not blank
