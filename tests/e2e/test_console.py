"""The console end to end: a real Flask app under gunicorn with the agent, a real broker, and
two people in two headless Chromium contexts on the same report.

One runs code and both see the entry with its author, live and after a reload; an endless
loop is interrupted from the other browser and the next eval still works; the REPL collects
the lines of a block; Tab completes; Flask's request and app contexts are there; the
process console is reachable from the agent list.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from tests.conftest import DEADLINE, AppServer, Broker, node_text, wait_for
from tests.e2e.browser import OpenPage, log_in

pytest_plugins = ["tests.e2e.browser"]


@pytest.fixture
def shop(broker: Broker, start_server: Callable[..., AppServer]) -> AppServer:
    """``gunicorn -w 2`` serving the Flask shop, with the agent reporting to ``broker``."""
    command = ["gunicorn", "-w", "2", "{bind}", "console_flask:app"]
    return start_server(command, broker.agent_env(), name="gunicorn")


def raise_order(shop: AppServer, broker: Broker, order_id: int) -> dict[str, Any]:
    """Request a failing order and return the full report the broker stored."""
    known = {report["id"] for report in broker.reports()}
    answer = shop.get(f"/orders/{order_id}", headers={"Accept": "application/json"})
    assert answer.status == 500, answer.text

    def arrived() -> dict[str, Any] | None:
        fresh = [r for r in broker.reports() if r["id"] not in known]
        return broker.report(fresh[0]["id"]) if fresh else None

    report: dict[str, Any] = wait_for(arrived, what="the report of the failed order")
    return report


def view_frame(report: dict[str, Any]) -> int:
    frames = [f for info in report["exceptions"] for f in info["frames"]]
    index: int = next(f["index"] for f in frames if f["function"] == "order")
    return index


def open_console(page: Page, report: dict[str, Any], index: int, name: str) -> Locator:
    """Open the report's page at the view frame, open its console and set the display name."""
    page.goto(page.url.split("#")[0] + f"#/reports/{report['id']}/frames/{index}")
    frame = page.locator(f'[data-testid="frame"][data-index="{index}"]')
    frame.get_by_test_id("console-toggle").click()
    console = frame.get_by_test_id("console")
    console.get_by_test_id("console-name").fill(name)
    return console


def run(console: Locator, code: str) -> None:
    field = console.get_by_test_id("console-input")
    field.fill(code)
    field.press("Enter")


def test_flask_contexts_are_there_in_a_console_of_a_failed_request(
    broker: Broker, shop: AppServer
) -> None:
    report = raise_order(shop, broker, 7)
    index = view_frame(report)
    code = "from flask import request, current_app\n(request.path, current_app.name, order_id)"
    answer = broker.evaluate(report["id"], index, code)
    assert answer.status == 200, answer.text
    result = answer.json()
    assert result["ok"], result["error"]
    assert node_text(result["result"]) == "('/orders/7', 'shop', 7)"


def test_two_people_share_a_console(broker: Broker, shop: AppServer, open_page: OpenPage) -> None:
    report = raise_order(shop, broker, 7)
    index = view_frame(report)
    ada_page, _ = open_page()
    bob_page, _ = open_page()
    ada = open_console(log_in(ada_page, broker), report, index, "Ada")
    bob = open_console(log_in(bob_page, broker), report, index, "Bob")
    # The console says where it runs: the function and its file, not a frame number.
    expect(ada.locator(".console-label")).to_contain_text("Python in order (apps/console_flask.py:")

    # Ada runs code; both see the entry, with her name and the Flask request.
    run(
        ada, "from flask import request, current_app\nprint(basket)\nrequest.path, current_app.name"
    )
    for console in (ada, bob):
        entry = console.get_by_test_id("console-entry")
        expect(entry).to_have_count(1)
        expect(entry.get_by_test_id("console-author")).to_have_text("Ada")
        expect(entry.get_by_test_id("console-output")).to_have_text(
            "['tea', 'scone']\n('/orders/7', 'shop')"
        )

    # An endless loop: Bob sees it running and interrupts it; Ada's next eval works.
    run(ada, "n = 0\nwhile True:\n    n += 1")  # a block: the REPL waits for an empty line
    expect(ada.get_by_test_id("console-input")).to_have_attribute("data-continuing", "true")
    ada.get_by_test_id("console-input").press("Enter")
    loop_entry = bob.get_by_test_id("console-entry").nth(1)
    expect(loop_entry).to_have_attribute("data-state", "running")
    bob.get_by_test_id("console-interrupt").click()
    for console in (ada, bob):
        output = console.get_by_test_id("console-entry").nth(1).get_by_test_id("console-output")
        expect(output).to_contain_text("KeyboardInterrupt")
        expect(output).to_contain_text("interrupted from the dashboard")
    expect(ada.get_by_test_id("console-interrupt")).to_have_count(0)
    run(ada, "n > 0, order_id * 2")
    expect(
        bob.get_by_test_id("console-entry").nth(2).get_by_test_id("console-output")
    ).to_have_text("(True, 14)")

    # Bob writes a block line by line, as in the interpreter: Enter continues, an empty line ends.
    field = bob.get_by_test_id("console-input")
    field.fill("for item in basket:")
    field.press("Enter")
    expect(field).to_have_attribute("data-continuing", "true")
    expect(field).to_have_value("for item in basket:\n    ")
    field.press_sequentially("item.upper()")
    field.press("Enter")
    expect(field).to_have_value("for item in basket:\n    item.upper()\n    ")
    field.press("Enter")
    expect(field).to_have_value("")
    block = ada.get_by_test_id("console-entry").nth(3)
    expect(block.get_by_test_id("console-author")).to_have_text("Bob")
    expect(block.locator(".console-result")).to_have_text(["'TEA'", "'SCONE'"])

    # Tab completes names of the frame; ↑ brings back Bob's last input.
    field.fill("bas")
    field.press("Tab")
    expect(field).to_have_value("basket")
    field.fill("")
    field.press("ArrowUp")
    expect(field).to_have_value(re.compile(r"^for item in basket:\n    item.upper\(\)\n?$"))

    # A cut result loads more from the live worker with "+", for everyone.
    # A typed value shows 100 items (a local would show 8).
    run(ada, "list(range(130))")
    cut = bob.get_by_test_id("console-entry").nth(4).locator(".console-result")
    expect(cut).to_contain_text("99, … 30 more")
    cut.get_by_test_id("expand").click()
    expect(cut).to_contain_text("129")

    # The transcript survives a reload, authors included.
    bob_page.reload()
    bob = open_console(bob_page, report, index, "Bob")
    authors = bob.get_by_test_id("console-author")
    expect(authors).to_have_text(["Ada", "Ada", "Ada", "Bob", "Ada"])


# Animation frames wait in a queue while ``window.holdFrames`` is set, so a test can type a key
# between the input's render and the frame that places its cursor.
HOLD_FRAMES = """
window.heldFrames = [];
const realFrame = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (callback) => {
  if (!window.holdFrames) return realFrame(callback);
  window.heldFrames.push(callback);
  return 0;
};
"""


def test_a_key_typed_before_the_next_frame_stays_where_it_was_typed(
    broker: Broker, shop: AppServer, dashboard: Page
) -> None:
    """The continued block's cursor is placed in the next animation frame; a key typed before
    that frame (a fast typist, a loaded machine) must not have the cursor moved back before it."""
    report = raise_order(shop, broker, 7)
    dashboard.add_init_script(HOLD_FRAMES)
    dashboard.reload()
    console = open_console(dashboard, report, view_frame(report), "Ada")
    field = console.get_by_test_id("console-input")
    field.fill("for item in basket:")
    dashboard.evaluate("window.holdFrames = true")
    field.press("Enter")
    expect(field).to_have_value("for item in basket:\n    ")
    field.press_sequentially("i")
    dashboard.evaluate(
        "window.holdFrames = false;"
        "for (const frame of window.heldFrames.splice(0)) frame(performance.now())"
    )
    field.press_sequentially("tem")
    expect(field).to_have_value("for item in basket:\n    item")


def test_the_process_console_from_the_agent_list(
    broker: Broker, shop: AppServer, open_page: OpenPage
) -> None:
    # With console=True every worker's agent starts with the app, before any request of its own.
    def both_workers() -> list[dict[str, Any]] | None:
        consoles = [agent for agent in broker.live_agents() if agent["console"]]
        return consoles if len(consoles) == 2 else None

    consoles = wait_for(both_workers, what="both workers' agents with a console")
    pid = consoles[-1]["pid"]
    page, _ = open_page()
    log_in(page, broker)
    row = page.get_by_test_id("agent-row").filter(has_text=str(pid))
    row.get_by_test_id("agent-console-toggle").click()
    console = page.get_by_test_id("agent-console").get_by_test_id("console")
    run(console, "import os\nos.getpid()")
    expect(console.get_by_test_id("console-output")).to_have_text(str(pid))


def test_top_level_await_runs_on_the_apps_own_loop_under_uvicorn(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "starlette_app:app"]
    server = start_server(command, broker.agent_env(), name="uvicorn")
    answer = server.get("/boom", headers={"Accept": "application/json"})
    assert answer.status == 500, answer.text
    report_id = answer.headers["x-debugbroker-report"].rsplit("/", 1)[1]
    report = wait_for(
        lambda: any(r["id"] == report_id for r in broker.reports()) and broker.report(report_id),
        what="the report",
    )
    frames = [f for info in report["exceptions"] for f in info["frames"]]
    index = next(f["index"] for f in frames if f["function"] == "fetch_total")
    # uvicorn runs its loop (uvloop when installed) on the main thread; evals run on their own
    # thread, so an await that ends on the main thread ran on the app's loop.
    code = (
        "import threading\nawait asyncio.sleep(0)\nprint('awaited')\n"
        "threading.current_thread() is threading.main_thread(), sum(items)"
    )
    result = broker.evaluate(report_id, index, code).json()
    assert result["ok"], result["error"]
    assert result["output"] == "awaited\n" and node_text(result["result"]) == "(True, 6)"


def test_the_driver_sees_the_answer_at_once_and_once(
    broker: Broker, shop: AppServer, open_page: OpenPage
) -> None:
    """The eval's answer shows the result in the driver's console by itself (its
    WebSocket console events are dropped here); a normal tab gets it from the WebSocket, and
    the driver, with both the answer and the event, shows it once."""
    report = raise_order(shop, broker, 7)
    index = view_frame(report)
    deaf_page, _ = open_page()
    dropped: list[str] = []

    def without_console_events(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def forward(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            try:
                kind = json.loads(text).get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind == "console":
                dropped.append(text)
            else:
                route.send(message)

        server.on_message(forward)

    deaf_page.route_web_socket(re.compile(r".*/api/ws$"), without_console_events)
    deaf = open_console(log_in(deaf_page, broker), report, index, "Ada")
    other_page, _ = open_page()
    other = open_console(log_in(other_page, broker), report, index, "Bob")

    run(deaf, "order_id * 3")
    entry = deaf.get_by_test_id("console-entry")
    expect(entry).to_have_count(1)
    expect(entry).to_have_attribute("data-state", "done")
    expect(entry.get_by_test_id("console-author")).to_have_text("Ada")
    expect(entry.get_by_test_id("console-output")).to_have_text("21")
    expect(other.get_by_test_id("console-entry").get_by_test_id("console-output")).to_have_text(
        "21"
    )
    wait_for(lambda: len(dropped) >= 2, what="the dropped running and done events")

    # With the WebSocket too (Bob's tab), the answer and the event are one entry.
    run(other, "order_id * 4")
    expect(other.get_by_test_id("console-entry")).to_have_count(2)
    expect(other.get_by_test_id("console-entry").nth(1)).to_have_attribute("data-state", "done")
    expect(other.get_by_test_id("console-output")).to_have_text(["21", "28"])


def until(page: Page, predicate: Callable[[], bool], what: str) -> None:
    """Wait for ``predicate`` while Playwright delivers the page's events (socket frames)."""
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def console_commands(message: str | bytes, kind: str) -> str | None:
    """The code of an ``eval`` (or text of a ``complete``) message a tab sent, else None."""
    text = message if isinstance(message, str) else message.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != kind:
        return None
    return str(data.get("code", data.get("text", "")))


def test_the_console_runs_over_the_websocket_and_through_a_broker_restart(
    broker: Broker, shop: AppServer, open_page: OpenPage
) -> None:
    """Evals and completions go over the open WebSocket (no HTTP request each); the broker
    restarts (same data dir and ports); the console works on, and over the socket again."""
    report = raise_order(shop, broker, 7)
    index = view_frame(report)
    page, guard = open_page()
    guard.allow(r"WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource|502|503")
    sent: list[tuple[str, str]] = []  # (kind, code) of console messages on any socket
    proofs: list[bool] = []  # the broker's answers to the sockets' keys

    def watch(socket: Any) -> None:
        def on_sent(payload: str | bytes) -> None:
            for kind in ("eval", "complete"):
                code = console_commands(payload, kind)
                if code is not None:
                    sent.append((kind, code))

        def on_received(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else ""
            if text.startswith('{"type":"auth"'):
                proofs.append(json.loads(text)["ok"] is True)

        socket.on("framesent", on_sent)
        socket.on("framereceived", on_received)

    page.on("websocket", watch)
    over_http: list[str] = []
    page.on(
        "request",
        lambda request: (
            over_http.append(request.url)
            if request.method == "POST" and re.search(r"/(eval|complete)$", request.url)
            else None
        ),
    )
    console = open_console(log_in(page, broker), report, index, "Ada")
    until(page, lambda: proofs == [True], "the socket to prove the session key")

    run(console, "order_id * 3")
    outputs = console.get_by_test_id("console-output")
    expect(outputs).to_have_text(["21"])
    field = console.get_by_test_id("console-input")
    field.fill("order_i")
    field.press("Tab")
    expect(field).to_have_value("order_id")
    assert sent == [("eval", "order_id * 3"), ("complete", "order_i")]
    assert over_http == []

    broker.stop()
    expect(page.get_by_test_id("connection-status")).not_to_have_attribute("data-state", "open")
    broker.start()  # same data dir and ports: the session and the report are still there
    wait_for(lambda: len(broker.live_agents()) == 2, what="both workers back with the broker")
    run(console, "order_id * 4")  # over HTTP if the socket is not back yet, else over it
    expect(outputs).to_have_text(["21", "28"])

    until(page, lambda: proofs == [True, True], "the reconnected socket to prove the key")
    before = len(over_http)
    run(console, "order_id * 5")
    expect(outputs).to_have_text(["21", "28", "35"])
    assert sent[-1] == ("eval", "order_id * 5") and len(over_http) == before
    # Everyone's transcript (a reload) has all three, in order, from the one store.
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    console = open_console(page, report, index, "Ada")
    expect(console.get_by_test_id("console-output")).to_have_text(["21", "28", "35"])


def test_the_console_falls_back_to_http_when_the_socket_cannot_prove_the_key(
    broker: Broker, shop: AppServer, open_page: OpenPage
) -> None:
    """A socket the broker never answers with a proven key (here the key is dropped on the
    way): the console sends its evals over HTTP, and they work."""
    report = raise_order(shop, broker, 7)
    index = view_frame(report)
    page, _ = open_page()

    def without_the_key(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith('{"type":"auth"'):
                return
            server.send(message)

        route.on_message(to_server)

    page.route_web_socket(re.compile(r".*/api/ws$"), without_the_key)
    over_http: list[str] = []
    page.on(
        "request",
        lambda request: (
            over_http.append(request.url)
            if request.method == "POST" and request.url.endswith("/eval")
            else None
        ),
    )
    console = open_console(log_in(page, broker), report, index, "Ada")
    run(console, "order_id * 6")
    expect(console.get_by_test_id("console-output")).to_have_text(["42"])
    assert len(over_http) == 1
