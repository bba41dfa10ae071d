"""The dashboard's comfort features in headless Chromium, against a real broker.

Themes, the new-error count in the tab title, keyboard shortcuts and keyboard-only use,
an axe-core accessibility check, the virtualized list and permalinks.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from debugbroker.agent.capture import capture_exception
from debugbroker.agent.options import Options
from debugbroker.agent.protocol import Report
from debugbroker.agent.transport import Transport
from tests.conftest import Broker, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

LIGHT_BACKGROUND = "rgb(246, 247, 249)"
DARK_BACKGROUND = "rgb(13, 17, 23)"


Seed = Callable[..., list[Report]]


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    """A real agent transport in this process, connected to ``broker`` over zmq."""
    options = Options(
        broker_url=broker.zmq_url, secret=broker.secret, app_name="seeded", queue_size=20_000
    )
    transport = Transport(options)
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def _captured(message: str) -> BaseException:
    def lookup(key: str) -> None:
        table = {"known": 1}
        table[key]  # noqa: B018 - the failing lookup

    try:
        lookup(message)
    except KeyError as error:
        return error
    raise AssertionError("unreachable")


@pytest.fixture
def seed(broker: Broker, agent: Transport) -> Seed:
    """``seed(count, message)`` sends ``count`` reports as an agent would; oldest first."""

    def send(count: int = 1, message: str = "missing") -> list[Report]:
        template = capture_exception(
            _captured(message),
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
        start = time.time() - count * 0.001
        reports = [template] + [
            dataclasses.replace(template, id=uuid.uuid4().hex, created=start + n * 0.001)
            for n in range(1, count)
        ]
        for report in reports:
            agent.submit_report(report)
        last = reports[-1].id
        wait_for(
            lambda: broker.get(f"/api/reports/{last}").status == 200,
            timeout=120,
            what=f"{count} seeded reports",
        )
        return reports

    return send


def background(page: Page) -> str:
    value: str = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    return value


# --- themes ---------------------------------------------------------------------------------


def test_the_theme_follows_the_system_until_switched_and_the_switch_is_remembered(
    broker: Broker, open_page: OpenPage
) -> None:
    from tests.e2e.browser import log_in

    dark_page, _ = open_page(color_scheme="dark")
    log_in(dark_page, broker)
    switch = dark_page.get_by_test_id("theme-switch")
    expect(switch).to_have_text("◐ Theme: System")
    assert background(dark_page) == DARK_BACKGROUND

    light_page, _ = open_page(color_scheme="light")
    log_in(light_page, broker)
    assert background(light_page) == LIGHT_BACKGROUND

    # System → Light in the dark system: light wins, and stays after a reload.
    switch.click()
    expect(switch).to_have_text("☀ Theme: Light")
    expect(dark_page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(dark_page) == LIGHT_BACKGROUND
    dark_page.reload()
    expect(switch).to_have_text("☀ Theme: Light")
    assert background(dark_page) == LIGHT_BACKGROUND

    # Light → Dark, also in a second tab of the same browser (same storage).
    switch.click()
    expect(switch).to_have_text("☾ Theme: Dark")
    assert background(dark_page) == DARK_BACKGROUND
    second = dark_page.context.new_page()
    second.goto(broker.url + "/")
    expect(second.get_by_test_id("theme-switch")).to_have_text("☾ Theme: Dark")
    assert background(second) == DARK_BACKGROUND
    second.close()

    # Dark → System: the system's dark again; the other browser never changed.
    switch.click()
    expect(switch).to_have_text("◐ Theme: System")
    expect(dark_page.locator("html")).not_to_have_attribute("data-theme", "dark")
    assert background(dark_page) == DARK_BACKGROUND
    assert background(light_page) == LIGHT_BACKGROUND
    expect(light_page.get_by_test_id("theme-switch")).to_have_text("◐ Theme: System")


# --- tab title ------------------------------------------------------------------------------


def test_new_errors_are_counted_in_the_tab_title_until_the_list_is_seen(
    dashboard: Page, seed: Seed
) -> None:
    first = seed(1, "first")[0]
    rows = dashboard.get_by_test_id("report-row")
    expect(rows).to_have_count(1)
    expect(dashboard).to_have_title("debugbroker · 1 report")

    rows.first.locator("a").click()
    expect(dashboard).to_have_title("KeyError: 'first' · debugbroker")
    seed(1, "second")
    expect(dashboard).to_have_title("(1 new) KeyError: 'first' · debugbroker")
    seed(1, "third")
    expect(dashboard).to_have_title("(2 new) KeyError: 'first' · debugbroker")
    assert first.id in dashboard.url

    dashboard.go_back()
    expect(dashboard).to_have_title("debugbroker · 3 reports")
    expect(rows).to_have_count(3)
