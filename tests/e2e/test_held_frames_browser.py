"""The dashboard's held-frames bar: held since when and in which pid, Release, and what follows
(live for a second viewer, an eval that says the frame was released), against a real broker,
real gunicorn and real Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from playwright.sync_api import expect

from tests.conftest import AppServer, Broker, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


def test_release_in_the_dashboard_drops_the_frames_and_the_next_eval_says_so(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    from tests.e2e.browser import log_in

    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "failing_wsgi:app"], broker.agent_env(), name="gunicorn"
    )
    assert server.get("/boom", headers={"Accept": "text/html"}).status == 500
    summary = wait_for(lambda: next(iter(broker.reports()), None), what="the report")
    page, guard = open_page()
    watcher, _ = open_page()  # a second viewer follows without reloading
    for viewer in (page, watcher):
        log_in(viewer, broker)
        # The agents list says how many reports' frames the worker holds, and their size.
        expect(viewer.get_by_test_id("held-frames")).to_have_text(re.compile(r"^1 held, \d+ KB$"))
        viewer.goto(f"{broker.url}/#/reports/{summary['id']}")
        state = viewer.get_by_test_id("frames-state")
        expect(state).to_contain_text("Frames held since just now")
        expect(state).to_contain_text(f"in pid {summary['pid']}")

    page.get_by_test_id("release-frames").click()
    expect(page.get_by_test_id("frames-state")).to_contain_text("Frames released just now")
    expect(page.get_by_test_id("release-frames")).to_have_count(0)
    expect(watcher.get_by_test_id("frames-state")).to_contain_text("Frames released")
    expect(watcher.get_by_test_id("release-frames")).to_have_count(0)
    assert broker.report(summary["id"])["frames_held"] is False
    watcher.goto(f"{broker.url}/#/")
    expect(watcher.get_by_test_id("held-frames")).to_have_count(0)  # the next heartbeat

    # The report stays readable; a console on it answers with the reason (HTTP 409).
    guard.allow(r"409")
    frame = page.get_by_test_id("frame").filter(has_text="raw_app").first
    frame.get_by_test_id("console-toggle").click()
    console_input = frame.get_by_test_id("console-input")
    console_input.fill("worker_pid")
    console_input.press("Enter")
    expect(frame).to_contain_text("frame released: the agent no longer holds this frame")
