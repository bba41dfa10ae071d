"""Breakpoints and stepping together, end to end (issue 21's "Tests"): two people in two
headless Chromium contexts. Ada clicks a line of a view in a report's source to set a
breakpoint in every process of the app; a request that reaches it pauses, both reach the
paused report from the live list, Ada steps (over, into a helper, out) and reads locals in the
console while Bob follows every stop and sees who drove; Continue lets the HTTP request answer
right. Under gunicorn -w 2 -k gthread the same breakpoint then pauses the other worker too;
under uvicorn the view is async and a step goes over an await."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.conftest import AppServer, Broker, line_of, wait_for
from tests.e2e.browser import OpenPage, person
from tests.e2e.test_stepping_browser import console_of, follow, run, stands_at

pytest_plugins = ["tests.e2e.browser"]

APPS = Path(__file__).parent / "apps"
FLASK_APP = APPS / "breakpoints_flask.py"
ASGI_APP = APPS / "breakpoints_asgi.py"
GUNICORN = ["gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "--timeout", "120"]
# How many requests may go to the first worker before one reaches the other (each is paused
# and continued in turn): the kernel hands a connection to either worker, so a few do.
OTHER_WORKER_TRIES = 40


def paused_ids(broker: Broker) -> set[str]:
    return {r["id"] for r in broker.reports() if r["type_name"] == "Paused"}


def new_pause(broker: Broker, known: set[str]) -> dict[str, Any]:
    """The paused report that is not among ``known`` (waited for), in full."""
    fresh = wait_for(lambda: paused_ids(broker) - known, what="a new paused report")
    assert len(fresh) == 1, fresh
    return broker.report(fresh.pop())


def frame_named(page: Page, function: str) -> Locator:
    """The report's frame of ``function`` (the innermost, if it is there twice)."""
    name = page.locator(".frame-function", has_text=re.compile(f"^{re.escape(function)}$"))
    return page.get_by_test_id("frame").filter(has=name).last


def click_to_set(page: Page, frame: Locator, line: int) -> None:
    """Click ``line``'s number in ``frame``'s source and set a breakpoint in every process."""
    frame.locator(f'[data-testid="bp-line"][data-line="{line}"]').first.click()
    form = frame.get_by_test_id("bp-form")
    expect(form.get_by_test_id("bp-scope")).to_have_value("app")
    form.get_by_test_id("bp-set").click()
    marker = frame.locator(f'[data-testid="bp-line"][data-line="{line}"]').first
    expect(marker).to_have_class(re.compile(r"\bhas-breakpoint\b"))


def armed_everywhere(page: Page, workers: int) -> None:
    """``page``'s breakpoints panel shows one breakpoint, armed in ``workers`` processes."""
    states = page.get_by_test_id("breakpoint").get_by_test_id("bp-state")
    expect(states).to_have_count(workers)
    for index in range(workers):
        expect(states.nth(index)).to_have_attribute("data-status", "armed")


def reach_from_the_list(page: Page, broker: Broker, report: dict[str, Any]) -> None:
    """The paused report shows up in ``page``'s live list; open it from there."""
    row = page.locator(f'[data-testid="report-row"][data-id="{report["id"]}"]')
    expect(row).to_contain_text("Paused")
    row.locator("a").click()
    expect(page).to_have_url(re.compile(re.escape(f"#/reports/{report['id']}")))
    expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread waits for Continue")


def to_the_list(page: Page, broker: Broker) -> None:
    page.goto(f"{broker.url}/#/reports")
    expect(page.get_by_test_id("breakpoints-panel")).to_be_visible()


def test_two_people_break_and_step_in_a_flask_view_in_both_gunicorn_workers(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    env = broker.agent_env()
    server = start_server([*GUNICORN, "{bind}", "breakpoints_flask:app"], env, name="gunicorn")
    workers = wait_for(
        lambda: (
            (found := [a for a in broker.live_agents() if a["app"] == "breakpoints-e2e"])
            and len(found) == 2
            and found
        ),
        what="both workers' agents",
    )
    # A report of the app whose frame shows the view: a count that is not a number.
    assert server.get("/price?n=many").status == 500
    failed = wait_for(lambda: next(iter(broker.reports()), None), what="the view's report")
    line = partial(line_of, FLASK_APP)

    ada = person(open_page, broker, "Ada")
    bob = person(open_page, broker, "Bob")
    both = [ada, bob]
    expect(bob.get_by_test_id("breakpoints-panel")).to_contain_text("None.")
    ada.goto(f"{broker.url}/#/reports/{failed['id']}")
    view = frame_named(ada, "price")
    click_to_set(ada, view, line("count = int("))
    armed_everywhere(bob, 2)  # Bob's list shows it, armed in each worker
    expect(bob.get_by_test_id("breakpoint")).to_contain_text(
        f"breakpoints_flask.py:{line('count = int(')}"
    )
    expect(bob.get_by_test_id("breakpoint")).to_contain_text("every process of breakpoints-e2e")

    # The request pauses at the breakpoint; both reach the paused report from the live list.
    for page in both:
        to_the_list(page, broker)
    known = paused_ids(broker)
    request, answers = server.get_in_background("/price?n=3", timeout=120)
    paused = new_pause(broker, known)
    assert f"breakpoint at breakpoints_flask.py:{line('count = int(')}" in paused["message"]
    for page in both:
        reach_from_the_list(page, broker, paused)
        expect(page.get_by_test_id("stop-position")).to_have_text(
            f"At price, line {line('count = int(')}. "
        )

    # Over twice; Ada reads a local in the console, and Bob sees the entry.
    stop = follow(broker, paused, both, lambda: ada.get_by_test_id("step-over").click())
    for page in both:
        stands_at(page, "price", line("subtotal = count * 100"))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped over by Ada. ")
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("F10"))
    for page in both:
        stands_at(page, "price", line("total = with_discount("))
    ada.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    run(console_of(ada), "subtotal", "300")
    bob.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    expect(console_of(bob).get_by_test_id("console-output").last).to_have_text("300")

    # Into the helper and out again.
    stop = follow(broker, stop, both, lambda: ada.get_by_test_id("step-into").click())
    for page in both:
        stands_at(page, "with_discount", line("discount = amount // 10"))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped into by Ada. ")
    stop = follow(broker, stop, both, lambda: ada.get_by_test_id("step-out").click())
    for page in both:
        stands_at(page, "price", line('return f"{count} items'))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped out by Ada. ")
    run(console_of(ada), "total", "270")

    # Continue: the request answers right; both pages say the thread went on.
    assert request.is_alive()
    ada.get_by_test_id("continue").click()
    request.join(30)
    assert not request.is_alive() and answers and answers[0].text.startswith("3 items: 270")
    first_pid = int(re.findall(r"pid (\d+)", answers[0].text)[0])
    for page in both:
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    assert broker.report(stop["id"])["next_pause"] is None

    # Requests until the other worker reaches the same breakpoint (the first worker's pauses
    # are continued as they come); Bob opens that pause from the list and continues it.
    for page in both:
        to_the_list(page, broker)
    tries = 0
    while True:
        tries += 1
        assert tries <= OTHER_WORKER_TRIES, f"{tries - 1} requests all went to the first worker"
        known = paused_ids(broker)
        request, answers = server.get_in_background("/price?n=5", timeout=120)
        other = new_pause(broker, known)
        if other["agent_id"] != paused["agent_id"]:
            break
        assert broker.post(f"/api/reports/{other['id']}/continue", {}).status == 200
        request.join(30)
        assert answers and answers[0].text.startswith("5 items: 450")
    assert other["agent_id"] in {agent["agent_id"] for agent in workers}
    assert f"breakpoint at breakpoints_flask.py:{line('count = int(')}" in other["message"]
    reach_from_the_list(bob, broker, other)
    reach_from_the_list(ada, broker, other)
    bob.get_by_test_id("continue").click()
    request.join(30)
    assert not request.is_alive() and answers and answers[0].text.startswith("5 items: 450")
    assert int(re.findall(r"pid (\d+)", answers[0].text)[0]) != first_pid
    for page in both:
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    # Each worker counted its hits: the first one paused every request but the last.
    to_the_list(bob, broker)
    states = bob.get_by_test_id("breakpoint").get_by_test_id("bp-state")
    for agent in workers:
        hits = tries if agent["agent_id"] == paused["agent_id"] else 1
        state = states.filter(has_text=f"pid {agent['pid']} on")
        expect(state).to_contain_text(f"· {hits} hit{'' if hits == 1 else 's'}")


def test_two_people_break_in_an_async_view_and_step_over_an_await_under_uvicorn(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "breakpoints_asgi:app"]
    server = start_server(command, broker.agent_env(), name="uvicorn")
    wait_for(
        lambda: any(a["app"] == "breakpoints-asgi" for a in broker.live_agents()),
        what="the uvicorn agent",
    )
    assert server.get("/double?n=many").status == 500
    failed = wait_for(lambda: next(iter(broker.reports()), None), what="the view's report")
    line = partial(line_of, ASGI_APP)

    ada = person(open_page, broker, "Ada")
    bob = person(open_page, broker, "Bob")
    both = [ada, bob]
    ada.goto(f"{broker.url}/#/reports/{failed['id']}")
    # From the whole-file view this time.
    view = frame_named(ada, "double")
    view.get_by_test_id("full-source-toggle").click()
    whole = view.get_by_test_id("full-source")
    whole.locator(f'[data-testid="bp-line"][data-line="{line("n = int(")}"]').click()
    view.get_by_test_id("bp-form").last.get_by_test_id("bp-set").click()
    expect(whole.locator(f'[data-testid="bp-line"][data-line="{line("n = int(")}"]')).to_have_class(
        re.compile(r"\bhas-breakpoint\b")
    )
    armed_everywhere(bob, 1)

    for page in both:
        to_the_list(page, broker)
    known = paused_ids(broker)
    request, answers = server.get_in_background("/double?n=21", timeout=120)
    paused = new_pause(broker, known)
    for page in both:
        reach_from_the_list(page, broker, paused)
        expect(page.get_by_test_id("stop-position")).to_have_text(
            f"At double, line {line('n = int(')}. "
        )

    stop = follow(broker, paused, both, lambda: ada.get_by_test_id("step-over").click())
    for page in both:
        stands_at(page, "double", line("result = await compute(n)"))
    # Over the await: the next line of the same coroutine, as pdb's next.
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("F10"))
    for page in both:
        stands_at(page, "double", line("return PlainTextResponse("))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped over by Ada. ")
    ada.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    run(console_of(ada), "result", "42")
    bob.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    expect(console_of(bob).get_by_test_id("console-output").last).to_have_text("42")

    assert request.is_alive()
    ada.get_by_test_id("continue").click()
    request.join(30)
    assert not request.is_alive() and answers and answers[0].text == "21 doubled: 42"
    for page in both:
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    assert broker.report(stop["id"])["next_pause"] is None
