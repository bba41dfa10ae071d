"""The pytest plugin: failing tests become reports with live frames, one session together.

Registered as the ``debugbroker`` entry point (``pytest11``), so pytest loads it in every
session, and it does nothing unless ``--debugbroker`` is given. Then the agent starts with
the session (its app name is ``pytest <session id>``, so the dashboard shows one session's
failures together), and every failing test phase (a failed assertion, rewritten or not, an
error in a fixture's setup or teardown) is reported with a Test panel: the node id, the
phase, the session. ``--debugbroker-hold=SECONDS`` keeps the process alive that long at the
end when something failed, so consoles can open on the failures (Ctrl+C ends it sooner).
Without ``-p``/the entry point: ``pytest -p debugbroker.agent.integrations.pytest_plugin``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]

_REPORTER = "debugbroker-reporter"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--debugbroker`` and ``--debugbroker-hold=SECONDS``."""
    group = parser.getgroup("debugbroker", "report failing tests to a debugbroker broker")
    group.addoption(
        "--debugbroker",
        action="store_true",
        default=False,
        help="report failing tests to the debugbroker broker, frames held for consoles",
    )
    group.addoption(
        "--debugbroker-hold",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with failures, keep the session alive this long at the end for consoles",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start reporting when ``--debugbroker`` is given."""
    if config.getoption("debugbroker") and not config.pluginmanager.has_plugin(_REPORTER):
        hold = config.getoption("debugbroker_hold")
        if hold < 0:
            raise pytest.UsageError("--debugbroker-hold must be a number of seconds, 0 or more")
        config.pluginmanager.register(_Reporter(hold), _REPORTER)


class _Reporter:
    """Reports each failing test phase; holds the session open at the end if asked."""

    def __init__(self, hold: float) -> None:
        from debugbroker.agent.options import Options  # noqa: PLC0415 - only when active
        from debugbroker.agent.process import get_transport  # noqa: PLC0415

        self.hold = hold
        self.session = uuid.uuid4().hex[:12]
        self.urls: list[str] = []
        self.failed = 0
        # Started now, so it is connected by the first failure; its reports carry the session.
        self.transport = get_transport(Options.from_environment(app_name=f"pytest {self.session}"))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        try:
            report = outcome.get_result()
            if report.failed and call.excinfo is not None:
                self._report(item, call.when, call.excinfo.value)
        except Exception:  # the test run goes on as without us
            pass

    def _report(self, item: pytest.Item, phase: str, error: BaseException) -> None:
        from debugbroker.agent.capture.panels import make_panel  # noqa: PLC0415
        from debugbroker.agent.integrations.capture import report_error  # noqa: PLC0415

        location = item.location
        items: list[tuple[str, object]] = [
            ("node id", item.nodeid),
            ("phase", phase),
            ("run", self.session),  # "session" would be masked as a secret name
            ("location", f"{location[0]}:{(location[1] or 0) + 1}"),
        ]
        self.failed += 1
        url = report_error(error, (make_panel("Test", items, self.transport.options),))
        if url:
            self.urls.append(url)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failed:
            return
        terminalreporter.section("debugbroker")
        terminalreporter.write_line(
            f"{self.failed} failure(s) reported, session {self.session} "
            f"({self.transport.dashboard_url})"
        )
        for url in self.urls:
            terminalreporter.write_line(f"  {url}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if not self.failed or self.hold <= 0:
            return
        self.transport.wait_connected(min(self.hold, 5.0))
        print(
            f"\ndebugbroker: holding the failed tests' frames for {self.hold:g} s "
            "for consoles (Ctrl+C ends it)",
            flush=True,
        )
        try:
            threading.Event().wait(self.hold)
        except KeyboardInterrupt:
            pass
