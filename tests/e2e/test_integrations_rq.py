"""End to end: failed RQ jobs on a real ``rq worker`` (real Redis, real broker)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from tests.conftest import Broker, Process, RedisServer, frame_index, node_text, wait_for

pytestmark = pytest.mark.timeout(120)


def start_worker(
    broker: Broker, redis_server: RedisServer, tmp_path: Path, *extra: str, hold: str = "60"
) -> Process:
    command = [
        sys.executable, "-m", "rq.cli", "worker", "--url", redis_server.url,
        "--exception-handler", "debugbroker.rq_exception_handler", *extra,
    ]  # fmt: skip
    env = broker.agent_env(DEBUGBROKER_RQ_HOLD=hold)
    worker = Process("rq", command, tmp_path / "rq.log", env)
    worker.start()
    worker.wait_until(lambda: "Listening on" in worker.output(), "the rq worker to listen")
    return worker


def job_report(broker: Broker, order: int = 4) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for summary in broker.reports():
            if summary["message"].startswith(f"card declined for order {order} "):
                return summary
        return None

    summary = wait_for(found, what=f"the report of the job for order {order}")
    return broker.report(summary["id"])


def enqueue(redis_server: RedisServer, order: int = 4) -> str:
    connection = Redis.from_url(redis_server.url)
    try:
        job = Queue(connection=connection).enqueue("rq_jobs.charge", order, api_token="tok-secret")
        return str(job.id)
    finally:
        connection.close()


def is_queued(redis_server: RedisServer, job_id: str) -> bool:
    connection = Redis.from_url(redis_server.url)
    try:
        return bool(Job.fetch(job_id, connection=connection).get_status() == JobStatus.QUEUED)
    finally:
        connection.close()


def gone(broker: Broker, report: dict[str, Any]) -> None:
    """Wait until the horse's agent is gone (without using its console, which would keep it),
    then check that the report's console says so (410)."""
    wait_for(
        lambda: all(a["agent_id"] != report["agent_id"] for a in broker.live_agents()),
        what="the horse's agent to leave",
    )
    answer = broker.evaluate(report["id"], frame_index(report, "charge"), "1")
    assert answer.status == 410, answer.text


def test_a_failed_job_under_simple_worker_has_a_console_in_the_worker(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    worker = start_worker(
        broker, redis_server, tmp_path, "--worker-class", "rq.worker.SimpleWorker"
    )
    try:
        job_id = enqueue(redis_server)
        report = job_report(broker)
        job = dict(next(p for p in report["panels"] if p["title"] == "Job")["items"])
        assert (job["function"], job["id"], job["args"]) == ("rq_jobs.charge", job_id, "(4,)")
        assert job["kwargs"] == "{'api_token': '********************'}"
        assert job["queue"] == "default"
        answer = broker.evaluate(report["id"], frame_index(report, "charge"), "os.getpid(), amount")
        assert answer.status == 200, answer.text
        assert node_text(answer.json()["result"]) == f"({worker.pid}, 40)"
        # RQ's own handling went on: the job is in the failed registry, the worker lives.
        worker.wait_until(lambda: "ValueError: card declined" in worker.output(), "rq's log")
    finally:
        worker.stop()


def test_a_forked_work_horse_keeps_a_console_until_its_frames_are_released(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    """rq's default Worker forks a horse per job: the horse holds the failed job's frames for
    consoles, then exits on Release frames, and the worker goes on to its next job."""
    worker = start_worker(broker, redis_server, tmp_path)
    try:
        enqueue(redis_server)
        report = job_report(broker)
        horse = report["pid"]
        assert horse != worker.pid  # reported by the horse, a child of the worker
        job = dict(next(p for p in report["panels"] if p["title"] == "Job")["items"])
        assert "DEBUGBROKER_RQ_HOLD" in job["console"]
        charge = frame_index(report, "charge")
        answer = broker.evaluate(report["id"], charge, "import os\nos.getpid(), amount, worker_pid")
        assert answer.status == 200, answer.text
        assert node_text(answer.json()["result"]) == f"({horse}, 40, {horse})"
        assert broker.evaluate(report["id"], charge, "seen = amount * 2").status == 200
        assert node_text(broker.evaluate(report["id"], charge, "seen").json()["result"]) == "80"
        # The worker waits for its horse meanwhile: a second job stays queued.
        second_id = enqueue(redis_server, order=5)
        assert is_queued(redis_server, second_id)
        assert broker.evaluate(report["id"], charge, "seen").status == 200
        assert is_queued(redis_server, second_id)
        # Release frames: the horse exits, its console says so, the worker takes the next job.
        released = broker.post(f"/api/reports/{report['id']}/release", {})
        assert released.status == 200, released.text
        gone(broker, report)
        second = job_report(broker, order=5)
        assert second["pid"] not in (worker.pid, horse)
        gone_later = broker.post(f"/api/reports/{second['id']}/release", {})
        assert gone_later.status == 200, gone_later.text
    finally:
        worker.stop()


def test_a_work_horse_nobody_uses_exits_after_its_hold(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    """DEBUGBROKER_RQ_HOLD bounds the hold: unused for that long, the horse exits by itself
    (and with 0 at once, after delivering its report)."""
    for hold in ("1", "0"):
        worker = start_worker(broker, redis_server, tmp_path, hold=hold)
        try:
            order = 6 if hold == "1" else 7
            enqueue(redis_server, order=order)
            report = job_report(broker, order=order)
            local = next(
                v
                for v in report["exceptions"][-1]["frames"][-1]["locals"]
                if v["name"] == "worker_pid"
            )
            assert node_text(local["value"]) == str(report["pid"])
            job = dict(next(p for p in report["panels"] if p["title"] == "Job")["items"])
            assert ("console" in job) is (hold != "0")
            gone(broker, report)
        finally:
            worker.stop()


def test_a_holding_work_horse_exits_when_its_worker_dies(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The horse runs in its own process group: killed with its worker's group, it would
    not die with it, so it watches its worker and stops holding once it is gone."""
    worker = start_worker(broker, redis_server, tmp_path)
    try:
        enqueue(redis_server, order=8)
        report = job_report(broker, order=8)
        answer = broker.evaluate(report["id"], frame_index(report, "charge"), "amount")
        assert answer.status == 200 and node_text(answer.json()["result"]) == "80"
        worker.kill()
        gone(broker, report)
    finally:
        worker.stop()


WORKER_API = """
import sys
from redis import Redis
from rq import Queue, SimpleWorker
import debugbroker

connection = Redis.from_url(sys.argv[1])
worker = SimpleWorker(
    [Queue(connection=connection)],
    connection=connection,
    exception_handlers=[debugbroker.rq_exception_handler],
)
print("Listening on default", flush=True)
worker.work()
"""


def test_the_handler_given_to_worker_in_code(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    command = [sys.executable, "-c", WORKER_API, redis_server.url]
    worker = Process("rq-api", command, tmp_path / "rq-api.log", broker.agent_env())
    worker.start()
    try:
        worker.wait_until(lambda: "Listening on" in worker.output(), "the worker")
        enqueue(redis_server)
        report = job_report(broker)
        answer = broker.evaluate(report["id"], frame_index(report, "charge"), "worker_pid")
        assert answer.status == 200, answer.text
        assert node_text(answer.json()["result"]) == str(worker.pid)
    finally:
        worker.stop()
