"""Breakpoints from the dashboard in Chromium: click a line number in a report's source (and in
the whole-file view), set one with a condition, see each worker's state live in two viewers,
and the request that reaches it pauses (a real broker, gunicorn -w 2 and Flask)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import expect

from tests.conftest import AppServer, Broker, HttpAnswer, line_of, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

APP = Path(__file__).parent / "apps" / "breakpoints_flask.py"
APP_NAME = "breakpoints-e2e"


def test_clicking_a_line_sets_a_breakpoint_that_pauses_the_next_request(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    from tests.e2e.browser import log_in

    env = broker.agent_env()
    command = ["gunicorn", "-w", "2", "--timeout", "120", "{bind}", "breakpoints_flask:app"]
    server = start_server(command, env, name="gunicorn")
    wait_for(
        lambda: len([a for a in broker.live_agents() if a["app"] == APP_NAME]) == 2,
        what="both workers' agents",
    )
    assert server.get("/boom", headers={"Accept": "text/html"}).status == 500
    summary = wait_for(lambda: next(iter(broker.reports()), None), what="the report")

    page, _ = open_page()
    watcher, _ = open_page()  # a second viewer sees the breakpoint and its states live
    log_in(page, broker)
    log_in(watcher, broker)
    expect(watcher.get_by_test_id("breakpoints-panel")).to_contain_text("None.")
    page.goto(f"{broker.url}/#/reports/{summary['id']}")

    # Click the line number of the helper's return line, in the frame's source.
    line = line_of(APP, "return amount - discount")
    frame = page.get_by_test_id("frame").filter(has_text="with_discount").last
    frame.locator(f'[data-testid="bp-line"][data-line="{line}"]').first.click()
    form = frame.get_by_test_id("bp-form")
    form.get_by_test_id("bp-condition").fill("amount > 100")
    form.get_by_test_id("bp-set").click()
    states = form.get_by_test_id("bp-state")
    expect(states).to_have_count(2)  # one per worker
    for index in range(2):
        expect(states.nth(index)).to_have_attribute("data-status", "armed")
    marker = frame.locator(f'[data-testid="bp-line"][data-line="{line}"]').first
    expect(marker).to_have_class(re.compile(r"has-breakpoint"))
    row = watcher.get_by_test_id("breakpoint")
    expect(row).to_contain_text(f"breakpoints_flask.py:{line}")
    expect(row).to_contain_text("amount > 100")
    expect(row.get_by_test_id("bp-state")).to_have_count(2)

    # A request that reaches the line with amount > 100 pauses; Continue lets it answer.
    answers: list[HttpAnswer] = []
    request = threading.Thread(target=lambda: answers.append(server.get("/price?n=3", timeout=90)))
    request.start()
    paused = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "Paused"), None),
        what="the paused report",
    )
    assert f"breakpoint at breakpoints_flask.py:{line}" in paused["message"]
    assert broker.post(f"/api/reports/{paused['id']}/continue", {}).status == 200
    request.join(30)
    assert answers and answers[0].text.startswith("3 items: 270")
    expect(row).to_contain_text("1 hit")

    # The whole-file view sets them too; the watcher disables one, then removes it.
    frame.get_by_test_id("full-source-toggle").click()
    whole = frame.get_by_test_id("full-source")
    other = line_of(APP, "subtotal = count * 100")
    whole.locator(f'[data-testid="bp-line"][data-line="{other}"]').click()
    frame.get_by_test_id("bp-form").last.get_by_test_id("bp-set").click()
    expect(watcher.get_by_test_id("breakpoint")).to_have_count(2)
    first = watcher.get_by_test_id("breakpoint").first
    first.get_by_test_id("bp-enabled").uncheck()
    expect(first.get_by_test_id("bp-state").first).to_have_attribute("data-status", "disabled")
    first.get_by_test_id("bp-remove").click()
    expect(watcher.get_by_test_id("breakpoint")).to_have_count(1)
    expect(
        page.locator(f'[data-testid="bp-line"][data-line="{line}"].has-breakpoint')
    ).to_have_count(0)
    assert os.path.basename(str(APP)) in watcher.get_by_test_id("breakpoint").inner_text()


def test_an_answer_that_arrives_after_the_agents_states_does_not_wipe_them(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    """The broker publishes the list after a change, and the agents' states can follow
    before the HTTP answer reaches the tab. The answer (states: none yet) must not replace
    them: the tab said "Disabled." for good (a CI failure of the test above)."""
    from playwright.sync_api import Route

    from tests.e2e.browser import log_in

    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "breakpoints_flask:app"], broker.agent_env()
    )
    wait_for(lambda: [a for a in broker.live_agents() if a["app"] == APP_NAME], what="the agent")
    assert server.get("/price?n=1").status == 200  # the app's module is loaded: armed, not pending
    line = line_of(APP, "return amount - discount")
    body = {"file": str(APP), "line": line, "app": APP_NAME, "condition": "amount > 10**9"}
    assert broker.post("/api/breakpoints", body).status == 201
    page, _ = open_page()
    log_in(page, broker)
    row = page.get_by_test_id("breakpoint")
    expect(row.get_by_test_id("bp-state")).to_have_attribute("data-status", "armed")

    def answer_late(route: Route) -> None:
        """Hold the PATCH's answer until the agent's new state has reached the tab."""
        answer = route.fetch()
        expect(row.get_by_test_id("bp-state")).to_have_attribute("data-status", "disabled")
        route.fulfill(response=answer)

    page.route("**/api/breakpoints/*", answer_late)
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        row.get_by_test_id("bp-enabled").uncheck()
    # One more round trip from the page: the held answer was read and merged before it ends.
    page.evaluate("async () => { await fetch('/api/status', {credentials: 'same-origin'}); }")
    expect(row.get_by_test_id("bp-state")).to_have_attribute("data-status", "disabled")
    expect(row).not_to_contain_text("Disabled.")
