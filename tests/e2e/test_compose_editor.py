""" "Open in editor" links: container paths mapped to host paths, broker default and per user."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from playwright.sync_api import expect

from tests.conftest import APPS, AppServer, Broker, base_env, free_port, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]
HOST_PATH = "/home/dev/shop"  # where the app's files are on the editor's machine


def test_bad_editor_settings_stop_the_broker_with_a_clear_error() -> None:
    for option, message in [
        (["--editor", "emacs"], "unknown editor 'emacs'"),
        (["--path-map", "/srv"], "path map entry '/srv' is not CONTAINER=HOST"),
    ]:
        command = [sys.executable, "-m", "debugbroker", "serve", "--http", f":{free_port()}"]
        done = subprocess.run(
            [*command, *option], capture_output=True, text=True, env=base_env(), timeout=30
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_frame_links_open_the_mapped_file_and_each_user_can_change_the_editor(
    tmp_path: Path, start_server: Callable[..., AppServer], open_page: OpenPage
) -> None:
    from tests.e2e.browser import log_in

    mapping = f"{APPS}={HOST_PATH}"
    broker = Broker(tmp_path, "--editor", "vscode", "--path-map", mapping).start()
    try:
        assert broker.get("/api/editor").json() == {
            "editor": "vscode",
            "path_map": [[str(APPS), HOST_PATH]],
        }
        server = start_server(
            ["gunicorn", "-w", "1", "{bind}", "failing_wsgi:app"], broker.agent_env()
        )
        wait_for(lambda: broker.live_agents(), what="the agent")
        server.get("/boom")
        summary = wait_for(lambda: broker.reports(), what="the report")[0]
        report = broker.report(summary["id"])
        frame: dict[str, Any] = next(
            f
            for info in report["exceptions"]
            for f in info["frames"]
            if f["function"] == "compute_ratio"
        )
        line, column = frame["lineno"], frame["colno"]

        page, _ = open_page()
        log_in(page, broker)
        page.goto(f"{broker.url}/#/reports/{summary['id']}")
        link = page.locator(f'[data-testid="frame"][data-index="{frame["index"]}"]').get_by_test_id(
            "editor-link"
        )
        vscode = f"vscode://file{HOST_PATH}/failing_wsgi.py:{line}:{column + 1}"
        expect(link).to_have_attribute("href", vscode)
        expect(link).to_have_text("Open in VS Code")
        # This user prefers PyCharm and mounts the code elsewhere.
        page.get_by_text("Editor links").click()
        page.get_by_test_id("editor-choice").select_option("pycharm")
        page.get_by_test_id("editor-path-map").fill(f"{APPS}=/Users/ada/shop")
        page.get_by_test_id("editor-save").click()
        pycharm = f"pycharm://open?file={quote('/Users/ada/shop/failing_wsgi.py', safe='')}"
        expect(link).to_have_attribute("href", f"{pycharm}&line={line}")
        expect(page.get_by_test_id("editor-source")).to_contain_text("Your setting")
        page.reload()
        expect(link).to_have_attribute("href", f"{pycharm}&line={line}")  # kept per browser

        # A mistyped mapping is refused in place; the links keep working.
        page.get_by_text("Editor links").click()
        page.get_by_test_id("editor-path-map").fill("just-a-path")
        page.get_by_test_id("editor-save").click()
        expect(page.get_by_role("alert")).to_have_text(re.compile("is not CONTAINER=HOST"))
        expect(link).to_have_attribute("href", f"{pycharm}&line={line}")

        page.get_by_test_id("editor-reset").click()
        expect(link).to_have_attribute("href", vscode)
    finally:
        broker.stop()
