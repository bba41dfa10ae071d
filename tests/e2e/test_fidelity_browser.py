"""Traceback fidelity in the dashboard: groups, "+", whole source, request panel, share links.

A real gunicorn worker raises an exception group; the browser (Debian's Chromium) shows every
sub-exception's frames, fetches more of a long list from the live worker with "+", opens the
whole source file at the failing line, and a share link opens without login.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import AppServer, Broker, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


@pytest.fixture
def group_report(broker: Broker, start_server: Callable[..., AppServer]) -> dict[str, Any]:
    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "fidelity_wsgi:app"], broker.agent_env()
    )
    answer = server.get("/group?page=2&token=s3cr3t", headers={"Accept": "text/plain"})
    assert answer.status == 500, answer.text
    summary: dict[str, Any] = wait_for(
        lambda: broker.reports() and broker.reports()[0], what="report"
    )
    return summary


def frame(page: Page, function: str) -> Any:
    return page.get_by_test_id("frame").filter(
        has=page.locator(".frame-function", has_text=re.compile(f"(^|\\.){re.escape(function)}$"))
    )


def test_group_plus_source_request_and_share(
    dashboard: Page, broker: Broker, group_report: dict[str, Any], open_page: OpenPage
) -> None:
    page = dashboard
    page.goto(f"{broker.url}/#/reports/{group_report['id']}")
    expect(page.get_by_test_id("report-title")).to_contain_text("ExceptionGroup: batch failed")
    expect(page.get_by_test_id("tracebacklimit-note")).to_have_count(0)  # no limit set
    # Every sub-exception keeps its own frames, nested groups and chains included.
    for function in ("load_orders", "charge_card", "notify", "run_batch"):
        expect(frame(page, function).first).to_be_visible()
    expect(page.locator(".group-label")).to_have_count(3 + 2)  # 3 members, 2 in the nested group
    expect(page.locator(".chain-link", has_text="direct cause")).to_have_count(1)

    # "+" fetches the rest of the 50 rows from the live worker.
    loader = frame(page, "load_orders").first
    rows = loader.locator(
        ".locals tr", has=page.locator(".var-name", has_text=re.compile("^rows$"))
    )
    expect(rows).to_contain_text("… 42 more")
    rows.get_by_test_id("expand").click()
    expect(rows).to_contain_text("49")
    expect(rows).not_to_contain_text("more")
    expect(rows.get_by_test_id("expand")).to_have_count(0)

    # The whole file, from the agent, scrolled to and marking the failing line.
    loader.get_by_test_id("full-source-toggle").click()
    source = loader.get_by_test_id("full-source")
    expect(source).to_contain_text('"""A WSGI app for the traceback-fidelity browser tests.')
    source.scroll_into_view_if_needed()
    failing = source.locator(".line.failing")
    expect(failing).to_contain_text('raise ValueError(f"{len(rows)} rows could not be loaded")')
    expect(failing).to_be_in_viewport()

    # The request panel: the query with the token masked.
    page.get_by_test_id("request-query").locator("summary").click()
    query = page.get_by_test_id("request-query")
    expect(query).to_contain_text("page")
    expect(query).to_contain_text("<masked>")
    expect(page.get_by_test_id("request-panel")).not_to_contain_text("s3cr3t")
    # Each table's values start at the same x, whatever the names' lengths.
    page.get_by_test_id("request-environ").locator("summary").click()
    starts = set()
    for table in ("request-query", "request-environ"):
        cell = page.get_by_test_id(table).locator("td").first
        box = cell.bounding_box()
        assert box is not None
        starts.add(round(box["x"]))
    assert len(starts) == 1, starts

    # The Markdown export, for an issue tracker.
    page.get_by_test_id("export-markdown").click()
    markdown = page.get_by_test_id("markdown-text")
    expect(markdown).to_have_value(re.compile(r"^## ExceptionGroup: batch failed"))
    expect(markdown).to_have_value(re.compile(r"### Traceback\n\n```text\n  \+ Exception Group"))

    # A share link opens read-only in a browser without the session.
    page.get_by_test_id("share-link").click()
    link = page.get_by_test_id("share-url")
    expect(link).to_contain_text("/share/")
    url = link.inner_text()
    stranger, guard = open_page()
    stranger.goto(url)
    expect(stranger.get_by_test_id("shared-report")).to_contain_text("batch failed")
    expect(stranger.get_by_test_id("shared-text")).to_contain_text("Exception Group Traceback")
    expect(stranger.locator("textarea, input, button")).to_have_count(0)
    guard.check()


def test_groups_and_server_side_search(
    dashboard: Page, broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "fidelity_wsgi:app"], broker.agent_env()
    )
    for path in ("/group", "/group?again=1"):
        assert server.get(path, headers={"Accept": "text/plain"}).status == 500
    wait_for(lambda: len(broker.reports()) == 2, what="two reports")
    page = dashboard
    page.get_by_test_id("groups-link").click()
    group = page.get_by_test_id("group")
    expect(group).to_have_count(1)
    expect(group.get_by_test_id("group-count")).to_have_text("2")
    expect(group).to_contain_text("ExceptionGroup: batch failed")
    group.get_by_role("button", name="All 2").click()
    expect(page.get_by_test_id("search-result")).to_have_count(2)
    form = page.get_by_test_id("search-form")
    form.locator("input[name=path]").fill("/nothing")
    form.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("search-result")).to_have_count(0)
    form.locator("input[name=path]").fill("")
    form.locator("input[name=type]").fill("ExceptionGroup")
    form.locator("input[name=q]").fill("again")
    form.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("search-result")).to_have_count(1)


def test_tracebacklimit_note(
    dashboard: Page, broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    """An app that set sys.tracebacklimit: the text is cut as Python cuts it, the frames are
    not, and the dashboard says so."""
    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "fidelity_wsgi:app"], broker.agent_env()
    )
    assert server.get("/limited", headers={"Accept": "text/plain"}).status == 500
    summary = wait_for(lambda: broker.reports() and broker.reports()[0], what="report")
    report = broker.report(summary["id"])
    assert report["tracebacklimit"] == 2
    text = broker.get(f"/api/reports/{summary['id']}/text").text
    assert text.count('  File "') == 2 and "LookupError: deep down" in text
    functions = [frame["function"] for frame in report["exceptions"][-1]["frames"]]
    assert functions[-5:] == ["application", "descend", "descend", "descend", "descend"]

    page = dashboard
    page.goto(f"{broker.url}/#/reports/{summary['id']}")
    note = page.get_by_test_id("tracebacklimit-note")
    expect(note).to_contain_text("sys.tracebacklimit = 2")
    expect(note).to_contain_text("the outermost 2 frames")
    page.get_by_test_id("plaintext-toggle").click()
    expect(page.get_by_test_id("plaintext")).to_contain_text("LookupError: deep down")
    expect(note).to_be_visible()  # beside the plain text too
