"""End to end: the pytest plugin in a real pytest subprocess, through a real broker."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from tests.conftest import Broker, Process, frame_index, node_text, wait_for

# The entry point is there once the package is installed from this tree; before that, -p.
INSTALLED = any(e.name == "debugbroker" for e in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "debugbroker.agent.integrations.pytest_plugin"]
SAMPLE = """
import pytest

@pytest.fixture
def broken_fixture():
    settings = {"dsn": "sqlite://"}
    raise RuntimeError("fixture could not connect to " + settings["dsn"])

def test_passes():
    assert True

def test_total_is_wrong():
    items = [3, 4]
    total = sum(items)
    assert total == 8

def test_uses_the_broken_fixture(broken_fixture):
    pass
"""


def write_sample(tmp_path: Path) -> Path:
    sample = tmp_path / "suite" / "test_sample.py"
    sample.parent.mkdir()
    sample.write_text(SAMPLE)
    # The suite's own ini file makes it the rootdir, as a project's is: without one, pytest
    # looks for a config file up to / (CI once met one in /tmp, and the node ids changed).
    (sample.parent / "pytest.ini").write_text("[pytest]\n")
    return sample


def pytest_command(sample: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PLUGIN,
            *options, str(sample)]  # fmt: skip


def test_failing_tests_are_reported_with_node_ids_and_held_for_consoles(
    broker: Broker, tmp_path: Path
) -> None:
    sample = write_sample(tmp_path)
    # Without --debugbroker the plugin does nothing.
    quiet = subprocess.run(
        pytest_command(sample), env=broker.agent_env(), capture_output=True, timeout=60
    )
    assert quiet.returncode == 1, quiet.stdout
    assert b"debugbroker" not in quiet.stdout

    command = pytest_command(sample, "--debugbroker", "--debugbroker-hold=120")
    run = Process("pytest", command, tmp_path / "pytest.log", broker.agent_env())
    run.start()
    try:
        run.wait_until(lambda: "holding the failed tests' frames" in run.output(), "the hold")
        assert "2 failure(s) reported, session" in run.output()
        summaries = wait_for(
            lambda: (lambda rs: rs if len(rs) == 2 else None)(broker.reports()), what="2 reports"
        )
        reports = {r["type_name"]: broker.report(r["id"]) for r in summaries}
        assertion, fixture = reports["AssertionError"], reports["RuntimeError"]
        assert "assert 7 == 8" in assertion["message"]  # pytest's rewritten assertion

        def test_panel(report: dict[str, Any]) -> dict[str, str]:
            (panel,) = report["panels"]
            return dict(panel["items"])

        assert test_panel(assertion)["node id"] == "test_sample.py::test_total_is_wrong"
        assert test_panel(assertion)["phase"] == "call"
        assert test_panel(fixture)["node id"] == "test_sample.py::test_uses_the_broken_fixture"
        assert test_panel(fixture)["phase"] == "setup"
        session = test_panel(assertion)["run"]
        assert test_panel(fixture)["run"] == session
        assert assertion["app"] == fixture["app"] == f"pytest {session}"
        # One run is one agent: the dashboard's agent filter shows its failures together.
        assert assertion["agent_id"] == fixture["agent_id"]
        together = broker.get(f"/api/reports?agent={assertion['agent_id']}").json()["reports"]
        assert {r["id"] for r in together} == {assertion["id"], fixture["id"]}

        answer = broker.evaluate(
            assertion["id"],
            frame_index(assertion, "test_total_is_wrong"),
            "__import__('os').getpid(), total",
        )
        assert answer.status == 200, answer.text
        assert answer.json()["ok"], answer.text
        assert node_text(answer.json()["result"]) == f"({run.pid}, 7)"
        answer = broker.evaluate(fixture["id"], frame_index(fixture, "broken_fixture"), "settings")
        assert node_text(answer.json()["result"]) == "{'dsn': 'sqlite://'}"
    finally:
        run.stop()


def test_a_negative_hold_is_a_usage_error(tmp_path: Path) -> None:
    sample = write_sample(tmp_path)
    done = subprocess.run(
        pytest_command(sample, "--debugbroker", "--debugbroker-hold=-1"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 4
    assert b"--debugbroker-hold must be a number of seconds" in done.stderr
