"""The dashboard's side of the lifecycle: the overflow count and the Continue button."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import expect

from tests.conftest import AppServer, Broker, HttpAnswer, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]


def test_the_agents_panel_shows_reports_dropped_while_the_broker_was_down(
    start_server: Callable[..., AppServer], open_page: OpenPage, tmp_path: Path
) -> None:
    broker = Broker(tmp_path)
    env = broker.agent_env(APP_QUEUE_SIZE="2")
    server = start_server(["gunicorn", "-w", "1", "{bind}", "lifecycle_wsgi:app"], env)
    for _ in range(5):
        assert server.get("/boom").status == 500
    broker.start()
    from tests.e2e.browser import log_in, show_reports

    try:
        wait_for(
            lambda: [a["dropped_reports"] for a in broker.live_agents()] == [3],
            what="the overflow count in /api/agents",
        )
        page, _ = open_page()
        log_in(page, broker)
        expect(page.get_by_test_id("dropped-reports")).to_have_text("3 dropped")
        show_reports(page)
        expect(page.get_by_test_id("report-row")).to_have_count(2)
    finally:
        broker.stop()


def test_continue_in_the_dashboard_resumes_a_thread_paused_at_breakpoint(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    command = ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4"]
    server = start_server([*command, "{bind}", "breakpoint_wsgi:app"], env, name="gunicorn")
    answers: list[HttpAnswer] = []
    request = threading.Thread(
        target=lambda: answers.append(server.get("/pause", timeout=60)), daemon=True
    )
    request.start()
    summary: dict[str, Any] = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "Paused"), None),
        what="the paused report",
    )
    from tests.e2e.browser import log_in

    page, _ = open_page()
    watcher, _ = open_page()  # a second person looking at the same pause
    for viewer in (page, watcher):
        log_in(viewer, broker)
        viewer.goto(f"{broker.url}/#/reports/{summary['id']}")
        expect(viewer.get_by_test_id("pause-bar")).to_contain_text("the thread waits for Continue")
    assert request.is_alive()
    page.get_by_test_id("continue").click()
    expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    # The other viewer's page follows live (the broker's "resumed" event), no reload.
    expect(watcher.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    expect(watcher.get_by_test_id("continue")).to_have_count(0)
    request.join(20)
    assert answers and answers[0].text == "total 7"
