"""End to end: reports from plain programs, no middleware (capture API, logging), through a
real broker, with console evals answered by the process that held the frame."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Broker, Process, frame_index, node_text, wait_for


def reports_of(broker: Broker, count: int) -> list[dict[str, Any]]:
    found = wait_for(
        lambda: (lambda rs: rs if len(rs) >= count else None)(broker.reports()),
        what=f"{count} reports",
    )
    return [broker.report(summary["id"]) for summary in found]


def panel(report: dict[str, Any], title: str) -> dict[str, str]:
    for each in report["panels"]:
        if each["title"] == title:
            return dict(each["items"])
    raise AssertionError(f"no {title} panel in {report['panels']}")


def evaluate(broker: Broker, report: dict[str, Any], function: str, code: str) -> str:
    answer = broker.evaluate(report["id"], frame_index(report, function), code)
    assert answer.status == 200, answer.text
    assert answer.json()["ok"], answer.text
    return node_text(answer.json()["result"])


def test_capture_exception_from_a_thread_and_from_a_forked_child(
    broker: Broker, tmp_path: Path
) -> None:
    command = [sys.executable, "tests/e2e/apps/handled_errors.py", "capture"]
    program = Process("capture", command, tmp_path / "capture.log", broker.agent_env())
    program.start()
    try:
        program.wait_until(lambda: "child done" in program.output(), "the child's capture")
        pids = {
            who: int(pid) for who, pid in re.findall(r"(parent|child) done (\d+)", program.output())
        }
        by_type = {r["type_name"]: r for r in reports_of(broker, 2)}
        parent, child = by_type["ZeroDivisionError"], by_type["ValueError"]

        assert parent["pid"] == pids["parent"] and child["pid"] == pids["child"]
        context = panel(parent, "Context")
        assert context == {"order": "5", "api_key": "<masked>"}
        # Evals run in the process that holds the frame, on the locals as they were at capture.
        assert evaluate(broker, parent, "charge", "os.getpid(), order_id, amount") == (
            f"({pids['parent']}, 5, 42)"
        )
        assert evaluate(broker, child, "in_child", "os.getpid(), basket") == (
            f"({pids['child']}, ['child-item'])"
        )
        assert panel(child, "Context") == {"where": "child"}  # text as it is
        # The first capture in each fresh process already returns the report's URL, the
        # broker's own dashboard (its welcome), not the default port.
        output = program.output()
        assert f"parent url ['{broker.url}/#/reports/{parent['id']}']" in output, output
        assert f"child url ['{broker.url}/#/reports/{child['id']}']" in output, output
    finally:
        program.stop()


def test_logged_exceptions_become_reports_with_the_record(broker: Broker, tmp_path: Path) -> None:
    command = [sys.executable, "tests/e2e/apps/handled_errors.py", "logging"]
    program = Process("logging", command, tmp_path / "logging.log", broker.agent_env())
    program.start()
    try:
        program.wait_until(lambda: "logging done" in program.output(), "the logged errors")
        pid = int(re.findall(r"logging done (\d+)", program.output())[0])
        by_type = {r["type_name"]: r for r in reports_of(broker, 2)}
        logged, broken = by_type["KeyError"], by_type["ValueError"]

        record = panel(logged, "Log record")
        assert record["message"] == "invoice 7 has no total"
        assert (record["logger"], record["level"]) == ("shop.billing", "ERROR")
        assert record["logged at"].endswith("in log_failure")
        assert evaluate(broker, logged, "log_failure", "os.getpid(), invoice") == (
            f"({pid}, {{'number': 7}})"
        )
        # A record whose args break %-formatting is still reported, and says why.
        message = panel(broken, "Log record")["message"]
        assert message.startswith("<message could not be formatted (TypeError")
        assert "'%d items failed'" in message
        assert evaluate(broker, broken, "log_badly_formatted", "count") == "'many'"
        # The program's own logging goes on beside the reports.
        assert "shop.billing ERROR invoice 7 has no total" in program.output()
    finally:
        program.stop()


def test_an_unretrieved_task_error_is_reported_with_the_task_frames(
    broker: Broker, tmp_path: Path
) -> None:
    command = [sys.executable, "tests/e2e/apps/handled_errors.py", "asyncio"]
    program = Process("asyncio", command, tmp_path / "asyncio.log", broker.agent_env())
    program.start()
    try:
        program.wait_until(lambda: "asyncio done" in program.output(), "the forgotten task")
        pid = int(re.findall(r"asyncio done (\d+)", program.output())[0])
        (report,) = reports_of(broker, 1)
        assert report["type_name"] == "LookupError"
        details = panel(report, "asyncio")
        assert details["message"] == "Task exception was never retrieved"
        assert "sync_stock" in details["future"]
        assert evaluate(broker, report, "sync_stock", "os.getpid(), shelf") == (
            f"({pid}, {{'sku': 'A-1', 'count': 0}})"
        )
        # The previous handler (asyncio's default) still logged it.
        assert "Task exception was never retrieved" in program.output()
    finally:
        program.stop()
