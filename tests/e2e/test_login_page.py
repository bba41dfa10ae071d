"""The broker's own login page (served at /login when the token is missing or wrong)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import expect

from tests.conftest import Broker

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


def test_the_login_page_form_logs_in_after_a_wrong_token(
    broker: Broker, open_page: OpenPage
) -> None:
    page, guard = open_page()
    guard.allow("401")  # the wrong token's page itself answers 401
    response = page.goto(f"{broker.url}/login?token=wrong")
    assert response is not None and response.status == 401
    expect(page.get_by_text("That token is not valid for this broker.")).to_be_visible()
    # The form posts from a page whose URL holds a token: the browser must still send a
    # same-origin Origin (not "null"), and the token must not leak in a Referer elsewhere.
    page.get_by_label("Token").fill(broker.token)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url == f"{broker.url}/"
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
