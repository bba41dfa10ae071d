"""End to end: failed RQ jobs on a real ``rq worker`` (real Redis, real broker)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue

from tests.conftest import Broker, Process, RedisServer, frame_index, node_text, wait_for

pytestmark = pytest.mark.timeout(120)


def start_worker(broker: Broker, redis_server: RedisServer, tmp_path: Path, *extra: str) -> Process:
    command = [
        sys.executable, "-m", "rq.cli", "worker", "--url", redis_server.url,
        "--exception-handler", "debugbroker.rq_exception_handler", *extra,
    ]  # fmt: skip
    worker = Process("rq", command, tmp_path / "rq.log", broker.agent_env())
    worker.start()
    worker.wait_until(lambda: "Listening on" in worker.output(), "the rq worker to listen")
    return worker


def job_report(broker: Broker) -> dict[str, Any]:
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "ValueError"), None),
        what="the job's report",
    )
    return broker.report(summary["id"])


def enqueue(redis_server: RedisServer) -> str:
    connection = Redis.from_url(redis_server.url)
    try:
        job = Queue(connection=connection).enqueue("rq_jobs.charge", 4, api_token="tok-secret")
        return str(job.id)
    finally:
        connection.close()


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


def test_a_forked_work_horse_delivers_its_report_before_it_exits(
    broker: Broker, redis_server: RedisServer, tmp_path: Path
) -> None:
    worker = start_worker(broker, redis_server, tmp_path)
    try:
        enqueue(redis_server)
        report = job_report(broker)
        assert report["pid"] != worker.pid  # reported by the horse, a child of the worker
        local = next(
            v for v in report["exceptions"][-1]["frames"][-1]["locals"] if v["name"] == "worker_pid"
        )
        assert node_text(local["value"]) == str(report["pid"])
        # The horse has exited: its console says so instead of hanging.
        answer = wait_for(
            lambda: (lambda a: a if a.status == 410 else None)(
                broker.evaluate(report["id"], frame_index(report, "charge"), "1")
            ),
            what="the console to say the horse is gone",
        )
        assert answer.status == 410
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
