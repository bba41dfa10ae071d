"""End to end: failed Celery tasks on real worker processes (real Redis, real broker)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.conftest import Broker, Process, RedisServer, frame_index, line_of, node_text, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Celery]:
    """A Celery client that only sends tasks."""
    app = Celery("client", broker=redis_server.url)
    yield app
    app.close()


def start_worker(
    broker: Broker, redis_server: RedisServer, tmp_path: Path, *options: str
) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat", *options,
    ]  # fmt: skip
    worker = Process(
        "celery", command, tmp_path / "celery.log",
        broker.agent_env(REDIS_URL=redis_server.url),
    )  # fmt: skip
    worker.start()
    worker.wait_until(lambda: " ready." in worker.output(), "the celery worker to be ready")
    return worker


def charge(client: Celery, order_id: int, **kwargs: object) -> None:
    client.send_task("celery_app.charge", args=[order_id], kwargs=kwargs)


def task_reports(broker: Broker, count: int, type_name: str = "ValueError") -> list[dict[str, Any]]:
    found = wait_for(
        lambda: (lambda rs: rs if len(rs) >= count else None)(
            [r for r in broker.reports() if r["type_name"] == type_name]
        ),
        # A recycled child (--max-tasks-per-child) starts its own agent before it reports:
        # three new processes on a loaded machine can take longer than the usual deadline.
        timeout=60.0,
        what=f"{count} task reports",
    )
    return [broker.report(summary["id"]) for summary in found]


def task_panel(report: dict[str, Any]) -> dict[str, str]:
    (panel,) = [p for p in report["panels"] if p["title"] == "Task"]
    return dict(panel["items"])


def console(broker: Broker, report: dict[str, Any], code: str) -> str:
    answer = broker.evaluate(report["id"], frame_index(report, "charge"), code)
    assert answer.status == 200, answer.text
    assert answer.json()["ok"], answer.text
    return node_text(answer.json()["result"])


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_a_failed_task_has_a_console_in_the_process_that_ran_it(
    broker: Broker, redis_server: RedisServer, client: Celery, tmp_path: Path, pool: str
) -> None:
    worker = start_worker(broker, redis_server, tmp_path, "--pool", pool, "--concurrency", "2")
    try:
        for order_id in (1, 2, 3):
            charge(client, order_id, api_token="tok-secret", note="x" * 50_000)
        reports = task_reports(broker, 3)
        seen_orders: set[int] = set()
        for report in reports:
            task = task_panel(report)
            assert task["name"] == "celery_app.charge"
            assert "'api_token': '********************'" in task["kwargs"]
            assert "tok-secret" not in str(report["panels"])
            assert len(task["kwargs"]) < 6_000  # the huge note is cut
            assert (task["retries"], task["queue"]) == ("0", "celery")
            # The console runs in the process that ran the task, on the task's locals as they
            # were before Celery cleared the frame.
            pid, parent, order_id, amount = (
                int(part)
                for part in console(broker, report, "os.getpid(), os.getppid(), order_id, amount")
                .strip("()")
                .split(", ")
            )
            assert pid == report["pid"]
            assert amount == order_id * 10
            seen_orders.add(order_id)
            if pool == "prefork":
                assert parent == worker.pid  # a pool child of the worker
            else:
                assert pid == worker.pid
        assert seen_orders == {1, 2, 3}
    finally:
        worker.stop()


def test_recycled_children_report_from_their_own_agent(
    broker: Broker, redis_server: RedisServer, client: Celery, tmp_path: Path
) -> None:
    worker = start_worker(
        broker, redis_server, tmp_path, "--pool", "prefork", "--concurrency", "1",
        "--max-tasks-per-child", "2",
    )  # fmt: skip
    try:
        for order_id in (1, 2, 3):
            charge(client, order_id)
        by_order = {
            int(task_panel(r)["args"].strip("[]()").rstrip(",")): r for r in task_reports(broker, 3)
        }
        first, third = by_order[1], by_order[3]
        assert first["pid"] != third["pid"]  # the first child ran two tasks and was replaced
        assert by_order[2]["pid"] == first["pid"]
        assert console(broker, third, "os.getpid(), order_id") == f"({third['pid']}, 3)"
    finally:
        worker.stop()


def test_unprintable_and_huge_task_args_are_shown_safely(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    program = Process(
        "eager",
        [sys.executable, "-c", EAGER],
        tmp_path / "eager.log",
        broker.agent_env(REDIS_URL=redis_server.url),
    )
    program.start()
    try:
        (report,) = task_reports(broker, 1, "TypeError")  # Unprintable() * 10
        task = task_panel(report)
        assert task["args"] == "[<broken repr (RuntimeError: no repr)>]"
        assert "...(99930 more)" in task["kwargs"]
        assert console(broker, report, "order_id.__class__.__name__") == "'Unprintable'"
    finally:
        program.stop()


# Eager mode runs the task in this very process, with args that no pickle could carry.
EAGER = """
import threading
import celery_app
celery_app.app.conf.task_always_eager = True
celery_app.charge.apply(args=[celery_app.Unprintable()], kwargs={"note": "y" * 100_000})
print("eager done", flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_breakpoint_set_in_a_task_pauses_the_worker_that_runs_it(
    broker: Broker, redis_server: RedisServer, client: Celery, tmp_path: Path, pool: str
) -> None:
    """A breakpoint reaches the workers before any task failed: the pool children start their
    agents as they start (the solo worker with its first task), and a task's thread stops
    there on every Python (3.10/3.11 hook it at task_prerun)."""
    source = Path(__file__).parent / "apps" / "celery_app.py"
    line = line_of(source, "a breakpoint's line")
    worker = start_worker(broker, redis_server, tmp_path, "--pool", pool, "--concurrency", "2")
    try:
        if pool == "prefork":  # both children say hello before any task
            agents = wait_for(
                lambda: (lambda found: found if len(found) == 2 else None)(broker.live_agents()),
                what="the two pool children's agents",
            )
        else:
            client.send_task("celery_app.add_up", args=[0])  # the solo worker's agent starts
            agents = wait_for(broker.live_agents, what="the solo worker's agent")
        # Named after the Celery app (no DEBUGBROKER_APP given), so breakpoints can be set.
        assert {agent["app"] for agent in agents} == {"celery_app"}
        body = {"app": "celery_app", "file": str(source), "line": line}
        answer = broker.post("/api/breakpoints", body)
        assert answer.status == 201, answer.text
        made = answer.json()["breakpoint"]

        def armed_everywhere() -> bool:
            (found,) = [
                bp for bp in broker.get("/api/breakpoints").json()["breakpoints"]
                if bp["id"] == made["id"]
            ]  # fmt: skip
            statuses = [state["status"] for state in found["states"].values()]
            return len(statuses) == len(agents) and set(statuses) == {"armed"}

        wait_for(armed_everywhere, what="the breakpoint armed in every worker process")

        client.send_task("celery_app.add_up", args=[20])
        summary = wait_for(
            lambda: next((r for r in broker.reports() if r["type_name"] == "Paused"), None),
            what="the task paused at the breakpoint",
        )
        report = broker.report(summary["id"])
        assert f"breakpoint at celery_app.py:{line}" in report["message"]
        answer = broker.evaluate(report["id"], frame_index(report, "add_up"), "doubled, count")
        assert node_text(answer.json()["result"]) == "(40, 20)"
        assert broker.post(f"/api/reports/{report['id']}/continue", {}).status == 200
        worker.wait_until(
            lambda: "add_up" in worker.output() and "succeeded" in worker.output()
            and ": 41" in worker.output(),
            "the task to finish with 41",
        )  # fmt: skip
    finally:
        worker.stop()
