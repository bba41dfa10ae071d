"""The dashboard in headless Chromium against a real broker and a real gunicorn app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from tests.conftest import Broker

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


def test_login_with_the_token_opens_the_dashboard(dashboard: Page) -> None:
    expect(dashboard.get_by_role("heading", name="Reports")).to_be_visible()


def test_a_wrong_token_shows_the_login_form(broker: Broker, open_page: OpenPage) -> None:
    page, guard = open_page()
    guard.allow(r"status of 401")
    page.goto(f"{broker.url}/login?token=wrong")
    expect(page.get_by_text("That token is not valid")).to_be_visible()
