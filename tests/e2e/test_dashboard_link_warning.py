"""The dashboard warns when the broker talks to agents in plain text (--insecure-plaintext)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import expect

from tests.conftest import Broker
from tests.e2e.browser import log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


def test_the_dashboard_warns_about_a_plain_text_agent_link(
    tmp_path: Path, open_page: OpenPage
) -> None:
    (tmp_path / "plain").mkdir()
    plain = Broker(tmp_path / "plain", "--insecure-plaintext").start()
    try:
        page, _ = open_page()
        log_in(page, plain)
        warning = page.get_by_test_id("insecure-link-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("not encrypted")
    finally:
        plain.stop()


def test_an_encrypted_link_shows_no_warning(dashboard: Page) -> None:
    expect(dashboard.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    expect(dashboard.get_by_test_id("insecure-link-warning")).to_have_count(0)
