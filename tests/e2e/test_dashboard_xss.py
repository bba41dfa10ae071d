"""XSS: app data full of HTML/JavaScript payloads renders as inert text in every view.

A real app under gunicorn raises an error whose message, notes, local variable names and
values, dict keys, file name, function name, source lines, request URL and headers all carry
payloads. Each payload, if it ever ran, would set ``window.__xss`` or open a dialog; the
browser fixtures fail the test on any dialog or page error. The broker's Content-Security-
Policy would block most of them anyway, so the test also checks the DOM itself: no element
or attribute the payloads would create exists, and the payloads are shown as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import AppServer, Broker, wait_for
from tests.e2e.apps.dashboard_wsgi import (
    PAYLOAD,
    PAYLOADS,
    XSS_FILENAME,
    XSS_FUNCTION,
    XSS_LOCAL,
    XSS_LOCAL_2,
)

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

URL_PAYLOAD = "<script>window.__xss=14</script>"
HEADER_PAYLOAD = '"><svg onload=window.__xss=15>'
# Elements and attributes that only a payload could have put into the page (the groups'
# sparklines are the dashboard's own SVG).
INJECTED = (
    "script:not([src^='/static/app.js?v=']), img, svg:not(.sparkline), iframe, object, embed, "
    "[onerror], [onload], [onclick], a[href^='javascript:' i]"
)


def assert_inert(page: Page, guard_dialogs: list[str]) -> None:
    """Nothing ran: no flag, no dialog, no element or handler a payload would create."""
    assert page.evaluate("window.__xss") is None
    assert guard_dialogs == []
    found = page.evaluate(
        "selector => [...document.querySelectorAll(selector)].map(e => e.outerHTML)", INJECTED
    )
    assert found == []


def local_value(page: Page, name: str) -> Locator:
    """The value cell of the one local variable called ``name``."""
    rows = page.locator("table.locals tr").filter(
        has=page.locator("th.var-name").get_by_text(name, exact=True)
    )
    expect(rows).to_have_count(1)
    return rows.locator("td")


@pytest.fixture
def evil_report(broker: Broker, start_server: Callable[..., AppServer]) -> dict[str, Any]:
    """The summary of one report from ``/xss`` full of payloads, raised by a real request."""
    server = start_server(
        ["gunicorn", "-w", "2", "{bind}", "dashboard_wsgi:app"], broker.agent_env()
    )
    path = "/xss/" + quote(PAYLOADS[1]) + "?q=" + URL_PAYLOAD
    answer = server.get(path, headers={"Accept": "text/plain", "X-Evil": HEADER_PAYLOAD})
    assert answer.status == 500, answer.text
    reports: list[dict[str, Any]] = wait_for(broker.reports, timeout=40, what="the report")
    return reports[0]


def test_payloads_in_every_field_stay_text_in_list_report_and_plain_text(
    broker: Broker, open_page: OpenPage, evil_report: dict[str, Any]
) -> None:
    from tests.e2e.browser import log_in, show_reports

    page, guard = open_page()
    log_in(page, broker)
    # The home, grouped: the message as text.
    expect(page.get_by_test_id("group")).to_contain_text(PAYLOADS[0])
    assert_inert(page, guard.dialogs)
    show_reports(page)

    # The list: message and URL as text.
    row = page.get_by_test_id("report-row")
    expect(row).to_have_count(1)
    expect(row.locator(".report-message")).to_contain_text(PAYLOADS[0])
    expect(row.locator(".report-url")).to_contain_text(URL_PAYLOAD)
    assert_inert(page, guard.dialogs)

    # The report: every field.
    row.locator("a").click()
    title = page.get_by_test_id("report-title")
    expect(title).to_have_text(f"RuntimeError: {PAYLOAD}")
    page.get_by_role("checkbox", name="Show hidden frames").check()
    expect(page.locator(".exception-message")).to_have_text(f": {PAYLOAD}")
    expect(page.locator(".note")).to_have_text(f"note: {PAYLOAD}")
    functions = page.locator(".frame-function")
    expect(functions.filter(has_text=XSS_FUNCTION)).to_have_count(1)
    locations = page.locator(".frame-location")
    expect(locations.filter(has_text=XSS_FILENAME)).to_have_count(2)
    # Source lines read from the payload "file".
    # (both frames of the fake file show it)
    expect(page.locator("pre.source").filter(has_text="onerror=window.__xss=11")).to_have_count(2)
    # Local variable names and values, dict keys.
    evil_value = local_value(page, XSS_LOCAL)
    more_value = local_value(page, XSS_LOCAL_2)
    for payload in PAYLOADS[:3]:
        expect(evil_value).to_contain_text(f"{payload!r}: {payload!r}")
    for payload in PAYLOADS[3:]:
        expect(more_value).to_contain_text(f"{payload!r}: {payload!r}")
    expect(evil_value).to_contain_text(
        "'javascript:window.__xss=12': ['<svg/onload=window.__xss=13>']"
    )
    # The request: URL and headers.
    expect(page.locator(".facts")).to_contain_text(URL_PAYLOAD)
    headers = page.get_by_test_id("request-headers")
    headers.locator("summary").click()
    header_row = headers.locator("tr", has=page.locator("th", has_text="X-Evil"))
    expect(header_row.locator("td")).to_have_text(HEADER_PAYLOAD)
    # Every other request table the dashboard has (query, environ…), opened.
    for table in page.locator("[data-testid=request-panel] details").all():
        table.locator("summary").click()
    expect(page.get_by_test_id("request-panel")).to_contain_text(URL_PAYLOAD)
    assert PAYLOADS[0] in page.title()
    assert_inert(page, guard.dialogs)

    # The plain text: exactly the API's text, as text.
    page.get_by_test_id("plaintext-toggle").click()
    plain = page.get_by_test_id("plaintext")
    expect(plain).to_contain_text(XSS_FUNCTION)
    expected = broker.get(f"/api/reports/{evil_report['id']}/text").text
    assert plain.evaluate("node => node.textContent") == expected
    assert all(payload in expected for payload in PAYLOADS)
    assert_inert(page, guard.dialogs)


def test_payloads_stay_text_in_the_console(
    broker: Broker, open_page: OpenPage, evil_report: dict[str, Any]
) -> None:
    from tests.e2e.browser import log_in

    page, guard = open_page()
    log_in(page, broker)
    page.goto(f"{broker.url}/#/reports/{evil_report['id']}")
    frame = page.get_by_test_id("frame").filter(
        has=page.locator(".frame-function", has_text=XSS_FUNCTION)
    )
    frame.get_by_test_id("console-toggle").click()
    console_input = frame.get_by_test_id("console-input")
    console_input.fill("print(payload); markup")
    console_input.press("Enter")
    output = frame.get_by_test_id("console-output")
    expect(output).to_contain_text(PAYLOAD)
    expect(output).to_contain_text("'<img src=x onerror=window.__xss=11>'")
    assert_inert(page, guard.dialogs)
