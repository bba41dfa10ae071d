"""The dashboard's comfort features in headless Chromium, against a real broker.

Themes, the new-error count in the tab title, keyboard shortcuts and keyboard-only use,
an axe-core accessibility check, the virtualized list and permalinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from tests.conftest import Broker

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

LIGHT_BACKGROUND = "rgb(246, 247, 249)"
DARK_BACKGROUND = "rgb(13, 17, 23)"


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
