"""Shared Playwright fixtures: Debian's Chromium, guarded pages, a logged-in dashboard.

Use them from a test module with ``pytest_plugins = ["tests.e2e.browser"]``.

Every page opened here fails its test when the page logs a console error, throws an
uncaught exception or opens a dialog (``alert``, ``confirm``…), unless the test declared
that console error as expected with ``Guard.allow``. Playwright cannot download browsers on
this machine, so Chromium is Debian's (``apt-get install chromium``); without it the tests
that need a browser are skipped with that reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    expect,
    sync_playwright,
)

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report
from tests.conftest import Broker, wait_for

__all__ = [
    "OpenPage",
    "CHROMIUM_ARGS",
    "Guard",
    "SCREENSHOTS",
    "Seed",
    "VIEWPORT",
    "accessibility_problems",
    "chromium",
    "dashboard",
    "log_in",
    "open_page",
    "seed",
    "show_reports",
    "agent",
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A laptop screen (CSS pixels): what the screenshots and layout checks use.
VIEWPORT = {"width": 1440, "height": 900}
ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
# axe-core is a dev dependency of the dashboard (frontend/package.json): `npm ci` installs it.
AXE_SCRIPT = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@dataclass
class Guard:
    """What a page did that a test must not ignore: console errors, page errors, dialogs."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console errors matching ``pattern`` (a 401 on purpose, a dropped socket)."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if not any(pattern.search(text) for pattern in self.allowed):
            self.console_errors.append(f"{text} (at {message.location.get('url', '?')})")

    def on_page_error(self, error: Any) -> None:
        self.page_errors.append(str(error))

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def problems(self) -> list[str]:
        """Everything that went wrong so far, one line each."""
        return (
            [f"console error: {text}" for text in self.console_errors]
            + [f"uncaught page error: {text}" for text in self.page_errors]
            + [f"dialog opened: {text}" for text in self.dialogs]
        )

    def check(self) -> None:
        """Fail now if the page misbehaved."""
        found = self.problems()
        assert not found, "the page misbehaved:\n" + "\n".join(found)


# Module scope, not session: Playwright's sync API runs an event loop in the test thread while
# it is started, and tests elsewhere that call asyncio.run() would then fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by the tests of one module."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


OpenPage = Callable[..., tuple[Page, Guard]]


@pytest.fixture
def open_page(chromium: Browser) -> Iterator[OpenPage]:
    """``open_page(color_scheme="light", **context_options)`` gives a fresh guarded page.

    Each call gets its own browser context (cookies, storage), so two calls are two users.
    The guards are checked when the test ends.
    """
    opened: list[tuple[BrowserContext, Guard]] = []

    def open_one(color_scheme: str = "light", **options: Any) -> tuple[Page, Guard]:
        options.setdefault("viewport", VIEWPORT)
        context = chromium.new_context(color_scheme=color_scheme, **options)  # type: ignore[arg-type]
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        guard = Guard()
        page = context.new_page()
        page.on("console", guard.on_console)
        page.on("pageerror", guard.on_page_error)
        page.on("dialog", guard.on_dialog)
        opened.append((context, guard))
        return page, guard

    yield open_one
    for context, _ in opened:
        context.close()
    for _, guard in opened:
        guard.check()


def log_in(page: Page, broker: Broker) -> Page:
    """Log ``page`` in through a one-time login URL and wait for the live event stream."""
    response = page.goto(broker.login_url())
    assert response is not None and response.ok, response and response.status
    page.wait_for_url(f"{broker.url}/")  # the code is not left in the address bar
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    return page


def show_reports(page: Page) -> Page:
    """Go from the home view (errors grouped) to the flat list of single reports, one click."""
    page.get_by_test_id("reports-link").click()
    expect(page.get_by_test_id("reports-link")).to_have_attribute("aria-current", "page")
    return page


def person(open_page: OpenPage, broker: Broker, name: str) -> Page:
    """A logged-in dashboard tab of someone called ``name`` (their console display name)."""
    page, _ = open_page()
    page.add_init_script(f"localStorage.setItem('debugbroker:name', {json.dumps(name)})")
    return log_in(page, broker)


@pytest.fixture
def dashboard(broker: Broker, open_page: OpenPage) -> Page:
    """A page logged in to the ``broker`` fixture's dashboard, showing the flat report list
    (``#/reports``; the home view is the grouped one)."""
    page, _ = open_page()
    return show_reports(log_in(page, broker))


def accessibility_problems(
    page: Page, *, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """Run axe-core on the page as it is now; the violations of these impacts, one line each."""
    if not AXE_SCRIPT.exists():
        pytest.fail(f"axe-core is missing: run `npm ci` in frontend/ (looked for {AXE_SCRIPT})")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    results: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in results["violations"]:
        if violation.get("impact") not in impacts:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
        found.append(
            f"{violation['impact']} {violation['id']}: {violation['help']} at {targets}"
            + (
                f"\n    {violation['nodes'][0].get('failureSummary', '')}"
                if violation["nodes"]
                else ""
            )
        )
    return found


# --- reports for the dashboard, sent as an agent sends them -----------------------------------

Seed = Callable[..., list[Report]]


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    """A real agent transport in this process, connected to ``broker`` over zmq."""
    options = Options(
        broker_url=broker.zmq_url, secret=broker.secret, app_name="seeded", queue_size=20_000
    )
    transport = Transport(options, eval_dispatcher)
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def _captured(message: str) -> BaseException:
    def lookup(key: str) -> None:
        table = {"known": 1}
        table[key]  # noqa: B018 - the failing lookup

    try:
        lookup(message)
    except KeyError as error:
        return error
    raise AssertionError("unreachable")


@pytest.fixture
def seed(broker: Broker, agent: Transport) -> Seed:
    """``seed(count, message)`` sends ``count`` reports as an agent would; oldest first."""

    def send(count: int = 1, message: str = "missing") -> list[Report]:
        template = build_report(
            _captured(message),
            report_id=uuid.uuid4().hex,
            agent_id=agent.agent_id,
            options=agent.options,
            registry=agent.registry,
        )
        start = time.time() - count * 0.001
        reports = [template] if count == 1 else []
        reports += [
            dataclasses.replace(template, id=uuid.uuid4().hex, created=start + n * 0.001)
            for n in range(count if count > 1 else 0)
        ]
        for report in reports:
            agent.submit_report(report)
        last = reports[-1].id
        wait_for(
            lambda: broker.get(f"/api/reports/{last}").status == 200,
            timeout=120,
            what=f"{count} seeded reports",
        )
        return reports

    return send
