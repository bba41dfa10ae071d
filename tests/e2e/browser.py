"""Shared Playwright fixtures: Debian's Chromium, guarded pages, a logged-in dashboard.

Use them from a test module with ``pytest_plugins = ["tests.e2e.browser"]``.

Every page opened here fails its test when the page logs a console error, throws an
uncaught exception or opens a dialog (``alert``, ``confirm``…), unless the test declared
that console error as expected with ``Guard.allow``. Playwright cannot download browsers on
this machine, so Chromium is Debian's (``apt-get install chromium``); without it the tests
that need a browser are skipped with that reason.
"""

from __future__ import annotations

import re
import shutil
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

from tests.conftest import Broker

__all__ = [
    "OpenPage",
    "CHROMIUM_ARGS",
    "Guard",
    "SCREENSHOTS",
    "VIEWPORT",
    "accessibility_problems",
    "chromium",
    "dashboard",
    "log_in",
    "open_page",
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


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by the whole test session."""
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
    """Log ``page`` in through ``/login?token=`` and wait for the live event stream."""
    response = page.goto(f"{broker.url}/login?token={broker.token}")
    assert response is not None and response.ok, response and response.status
    assert page.url == f"{broker.url}/", page.url  # the token is not left in the address bar
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    return page


@pytest.fixture
def dashboard(broker: Broker, open_page: OpenPage) -> Page:
    """A page logged in to the ``broker`` fixture's dashboard, showing the report list."""
    page, _ = open_page()
    return log_in(page, broker)


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
