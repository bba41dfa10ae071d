"""Stepping from the dashboard, end to end: two people in two headless Chromium contexts on
the pause of a real worker (a Flask app under gunicorn -w 2, an async Starlette view under
uvicorn). One drives with the buttons, the keys and "Run to this line", both pages follow
every stop with its driver, consoles evaluate where the thread stands, and Continue lets the
HTTP request finish with the right answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, Route, WebSocketRoute, expect

from tests.conftest import AppServer, Broker, line_of, wait_for
from tests.e2e.browser import OpenPage, accessibility_problems, log_in, person

pytest_plugins = ["tests.e2e.browser"]

APPS = Path(__file__).parent / "apps"
FLASK_APP = APPS / "stepping_flask.py"
ASGI_APP = APPS / "stepping_asgi.py"
VIEW_TOKEN = "view-token-stepping-ui"
GUNICORN = ["gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "{bind}"]


def first_pause(broker: Broker) -> dict[str, Any]:
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "Paused"), None),
        what="the paused report",
    )
    return broker.report(summary["id"])


def open_pause(page: Page, broker: Broker, report: dict[str, Any]) -> None:
    page.goto(f"{broker.url}/#/reports/{report['id']}")
    expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread waits for Continue")


def stands_at(page: Page, function: str, line: int) -> None:
    """The page shows the thread at ``function``, ``line``: in the bar, and as the marked
    line of the frame the address points at, scrolled into view."""
    expect(page.get_by_test_id("stop-position")).to_have_text(f"At {function}, line {line}. ")
    frame = page.locator(".frame.targeted")
    expect(frame.locator(".frame-function")).to_have_text(function)
    expect(frame.locator(".source .line[aria-current=true]").first).to_have_attribute(
        "data-line", str(line)
    )
    expect(frame).to_be_in_viewport()
    expect(page.get_by_test_id("step-over")).to_be_enabled()


def follow(
    broker: Broker, report: dict[str, Any], pages: list[Page], act: Callable[[], None]
) -> dict[str, Any]:
    """Take a step with ``act``; every page moves to the stop it led to, which is returned."""
    act()
    following = wait_for(
        lambda: broker.report(report["id"])["next_pause"], what="the stop the step led to"
    )
    for page in pages:
        expect(page).to_have_url(re.compile(re.escape(f"#/reports/{following}/frames/")))
    return broker.report(following)


def console_of(page: Page) -> Locator:
    """The console of the frame the address points at (open)."""
    console = page.locator(".frame.targeted").get_by_test_id("console")
    expect(console).to_be_visible()
    return console


def run(console: Locator, code: str, answer: str) -> None:
    field = console.get_by_test_id("console-input")
    field.fill(code)
    field.press("Enter")
    expect(console.get_by_test_id("console-output").last).to_have_text(answer)


def run_to_line(scope: Locator, line: int) -> None:
    scope.locator(f'.line[data-line="{line}"]').get_by_test_id("run-to-line").click()


def test_two_people_step_a_flask_view_under_gunicorn(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    server = start_server([*GUNICORN, "stepping_flask:app"], env, name="gunicorn")
    request, answers = server.get_in_background("/checkout", timeout=120)
    paused = first_pause(broker)
    ada = person(open_page, broker, "Ada")
    bob = person(open_page, broker, "Bob")
    both = [ada, bob]
    for page in both:
        open_pause(page, broker, paused)
    line = partial(line_of, FLASK_APP)

    # Step over twice (the button, then F10): both pages follow, and Bob sees who stepped.
    # The first step's request is held on its way: meanwhile Ada's buttons are disabled.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    ada.route("**/api/reports/*/step", hold)
    ada.get_by_test_id("step-over").click()
    for button in ("step-over", "step-into", "step-out", "continue"):
        expect(ada.get_by_test_id(button)).to_be_disabled()
    expect(ada.get_by_test_id("step-status")).to_have_text(
        "Ada is stepping over: waiting for the next stop…"
    )
    ada.keyboard.press("F10")  # nothing: a step is under way
    assert len(held) == 1 and broker.report(paused["id"])["resumable"] is True

    def let_go() -> None:
        held[0].continue_()
        ada.unroute("**/api/reports/*/step")

    stop = follow(broker, paused, both, let_go)
    for page in both:
        stands_at(page, "checkout", line("count = len(basket)"))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped over by Ada. ")
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("F10"))
    for page in both:
        stands_at(page, "checkout", line("subtotal = sum("))
    ada.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    run(console_of(ada), "count", "2")

    # Bob runs to a line from the whole-file view; his view follows it to the new line.
    bob.locator(".frame.targeted").get_by_test_id("full-source-toggle").click()
    whole = bob.locator(".frame.targeted").get_by_test_id("full-source")
    target = line("total = with_tax(")
    stop = follow(broker, stop, both, lambda: run_to_line(whole, target))
    for page in both:
        stands_at(page, "checkout", target)
    expect(ada.get_by_test_id("step-driver")).to_have_text("Ran to this line by Bob. ")
    expect(whole.locator(".line.failing")).to_have_attribute("data-line", str(target))

    # Into the helper: Ada's console moved with the thread, and evaluates in the helper.
    stop = follow(broker, stop, both, lambda: ada.get_by_test_id("step-into").click())
    for page in both:
        stands_at(page, "with_tax", line("tax = amount // 10"))
    run(console_of(ada), "amount", "70")
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("Shift+F11"))
    for page in both:
        stands_at(page, "checkout", line("summary = f"))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped out by Ada. ")
    run(console_of(ada), "total", "77")

    # Continue (F8): the request completes with the right answer; both pages say so.
    assert request.is_alive()
    ada.keyboard.press("F8")
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
    for page in both:
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
        expect(page.get_by_test_id("step-over")).to_have_count(0)
    assert broker.report(stop["id"])["next_pause"] is None


def test_two_people_step_over_awaits_of_an_async_view_under_uvicorn(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "stepping_asgi:app"]
    server = start_server(command, env, name="uvicorn")
    request, answers = server.get_in_background("/checkout", timeout=120)
    paused = first_pause(broker)
    ada = person(open_page, broker, "Ada")
    bob = person(open_page, broker, "Bob")
    both = [ada, bob]
    for page in both:
        open_pause(page, broker, paused)
    line = partial(line_of, ASGI_APP)

    stop = follow(broker, paused, both, lambda: ada.get_by_test_id("step-over").click())
    for page in both:
        stands_at(page, "checkout", line("count = len(basket)"))
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("F10"))
    for page in both:
        stands_at(page, "checkout", line("first = await"))
    # Over an await: the next line of the same coroutine, as pdb's next.
    stop = follow(broker, stop, both, lambda: ada.keyboard.press("F10"))
    for page in both:
        stands_at(page, "checkout", line("second = await"))
    expect(bob.get_by_test_id("step-driver")).to_have_text("Stepped over by Ada. ")
    bob.locator(".frame.targeted").get_by_test_id("console-toggle").click()
    run(console_of(bob), "first", "30")

    # Into the awaited helper and out again (Bob drives now).
    stop = follow(broker, stop, both, lambda: bob.get_by_test_id("step-into").click())
    for page in both:
        stands_at(page, "price_of", line("await asyncio.sleep(0)"))
    expect(ada.get_by_test_id("step-driver")).to_have_text("Stepped into by Bob. ")
    run(console_of(bob), "sku", "'cake'")
    stop = follow(broker, stop, both, lambda: bob.get_by_test_id("step-out").click())
    for page in both:
        stands_at(page, "checkout", line("total = first + second"))
    run(console_of(bob), "second", "40")

    # Run to the last line from the frame's source, then Continue.
    last = line("return PlainTextResponse(")
    source = ada.locator(".frame.targeted .frame-code")
    stop = follow(broker, stop, both, lambda: run_to_line(source, last))
    for page in both:
        stands_at(page, "checkout", last)
    run(console_of(bob), "total", "70")
    bob.get_by_test_id("continue").click()
    request.join(30)
    assert answers and answers[0].text == "2 items, total 70"
    for page in both:
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")


def test_an_agent_with_evalex_off_refuses_a_step_clearly_and_continue_still_works(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace", STEPPING_EVALEX="0")
    server = start_server([*GUNICORN, "stepping_flask:app"], env, name="gunicorn")
    request, answers = server.get_in_background("/checkout", timeout=120)
    paused = first_pause(broker)
    page, guard = open_page()
    guard.allow("403")  # the refused step's answer, logged by Chromium
    log_in(page, broker)
    open_pause(page, broker, paused)
    expect(page.get_by_test_id("run-to-line").first).to_be_visible()
    assert accessibility_problems(page) == []
    # The help lists the step keys.
    page.keyboard.press("?")
    help_text = page.get_by_test_id("shortcut-help")
    for key in ("F10", "F11", "Shift+F11", "F8"):
        exactly = re.compile(f"^{re.escape(key)}$")
        expect(help_text.locator("kbd", has_text=exactly)).to_have_count(1)
    page.keyboard.press("Escape")

    page.get_by_test_id("step-into").click()
    error = page.get_by_test_id("step-error")
    expect(error).to_contain_text("Step refused")
    expect(error).to_contain_text("evalex=False")
    expect(page.get_by_test_id("step-over")).to_be_enabled()  # nothing moved
    assert broker.report(paused["id"])["resumable"] is True
    page.get_by_test_id("continue").click()
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
    expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")


def test_a_view_only_session_is_refused_a_step_clearly(
    tmp_path: Path, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    broker = Broker(tmp_path, "--view-token", VIEW_TOKEN).start()
    try:
        env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
        server = start_server([*GUNICORN, "stepping_flask:app"], env, name="gunicorn")
        request, answers = server.get_in_background("/checkout", timeout=120)
        paused = first_pause(broker)
        page, guard = open_page()
        guard.allow("40[13]")  # the login check before the token, and the refused step
        page.goto(broker.url)
        page.locator("#login-token").fill(VIEW_TOKEN)
        page.locator("#login-token").press("Enter")
        expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
        open_pause(page, broker, paused)
        page.get_by_test_id("step-over").click()
        expect(page.get_by_test_id("step-error")).to_have_text(
            "Step refused: this token may read reports but not step threads."
        )
        expect(page.get_by_test_id("step-over")).to_be_enabled()
        assert broker.report(paused["id"])["resumable"] is True
        assert broker.post(f"/api/reports/{paused['id']}/continue", {}).status == 200
        request.join(30)
        assert answers and answers[0].text == "2 items, total 77"
        expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    finally:
        broker.stop()


def test_a_tab_that_missed_a_step_is_told_and_finds_the_current_stop(
    broker: Broker, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    """A tab whose "resumed" and "stepped" events are lost still offers the old stop: its
    step is refused (409) with the broker's words, and the page then shows where it went."""
    env = broker.agent_env(PYTHONBREAKPOINT="debugbroker.set_trace")
    server = start_server([*GUNICORN, "stepping_flask:app"], env, name="gunicorn")
    request, answers = server.get_in_background("/checkout", timeout=120)
    paused = first_pause(broker)
    page, guard = open_page()
    guard.allow("409")

    def without_step_events(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def forward(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            try:
                kind = json.loads(text).get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind not in ("resumed", "stepped"):
                route.send(message)

        server.on_message(forward)

    page.route_web_socket(re.compile(r".*/api/ws$"), without_step_events)
    log_in(page, broker)
    open_pause(page, broker, paused)
    answer = broker.post(f"/api/reports/{paused['id']}/step", {"action": "over"})
    assert answer.status == 200, answer.text
    following = wait_for(lambda: broker.report(paused["id"])["next_pause"], what="next stop")
    expect(page.get_by_test_id("step-over")).to_be_enabled()  # it does not know
    page.get_by_test_id("step-over").click()
    expect(page.get_by_test_id("step-error")).to_have_text(
        "Cannot step: this report is not paused: its thread already went on."
    )
    expect(page.get_by_test_id("pause-bar")).to_contain_text("the thread went on")
    page.get_by_test_id("next-pause").click()
    expect(page).to_have_url(re.compile(re.escape(f"#/reports/{following}")))
    expect(page.get_by_test_id("stop-position")).to_have_text(
        f"At checkout, line {line_of(FLASK_APP, 'count = len(basket)')}. "
    )
    page.get_by_test_id("continue").click()
    request.join(30)
    assert answers and answers[0].text == "2 items, total 77"
