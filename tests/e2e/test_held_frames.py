"""Held frames end to end: the agent's caps from the environment, the broker's view of what is
held (``frames_held``, ``frames_released``), and the release control, against a real broker
and real gunicorn workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import AppServer, Broker, frame_index, http, wait_for


def raise_errors(server: AppServer, broker: Broker, count: int) -> list[dict[str, Any]]:
    """``count`` new reports from ``/boom``, oldest first (each waited for before the next)."""
    made: list[dict[str, Any]] = []
    for _ in range(count):
        before = {summary["id"] for summary in broker.reports()}
        answer = server.get("/boom", headers={"Accept": "text/html"})
        assert answer.status == 500, answer.text
        made.append(_one_new(broker, before))
    return made


def _one_new(broker: Broker, before: set[str]) -> dict[str, Any]:
    wait_for(lambda: {s["id"] for s in broker.reports()} - before, what="the new report")
    new = [s for s in broker.reports() if s["id"] not in before]
    assert len(new) == 1, new
    return new[0]


def one_worker(
    broker: Broker, start_server: Callable[..., AppServer], **env: str
) -> tuple[AppServer, dict[str, Any]]:
    server = start_server(
        ["gunicorn", "-w", "1", "{bind}", "failing_wsgi:app"], broker.agent_env(**env)
    )
    assert server.get("/pid").status == 200
    wait_for(lambda: len(broker.live_agents()) == 1, what="the worker's agent")
    return server, broker.live_agents()[0]


def audit(broker: Broker) -> list[dict[str, Any]]:
    answer = broker.get("/api/audit")
    assert answer.status == 200, answer.text
    return [e for e in answer.json()["entries"] if e["action"] == "release_frames"]


def test_the_report_cap_comes_from_the_environment_and_the_broker_sees_lru_releases(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server, agent = one_worker(broker, start_server, DEBUGBROKER_HELD_REPORTS="2")
    oldest, middle, newest = raise_errors(server, broker, 3)

    # The third report pushed the first one's frames out (LRU); the agent says so at once.
    wait_for(lambda: not broker.report(oldest["id"])["frames_held"], what="the release")
    released = broker.report(oldest["id"])
    assert released["agent_alive"] is True
    assert released["frames_released"] >= released["created"]
    for summary in (middle, newest):
        report = broker.report(summary["id"])
        assert report["frames_held"] is True and report["frames_released"] is None

    answer = broker.evaluate(oldest["id"], frame_index(released, "raw_app"), "worker_pid")
    assert answer.status == 409, answer.text
    assert answer.json()["error"].startswith("frame released")
    live = broker.evaluate(newest["id"], frame_index(released, "raw_app"), "worker_pid")
    assert live.status == 200 and live.json()["ok"], live.text

    def counted() -> bool:
        listed = [a for a in broker.live_agents() if a["agent_id"] == agent["agent_id"]]
        return bool(listed) and listed[0]["held_reports"] == 2 and listed[0]["held_bytes"] > 0

    wait_for(counted, what="the heartbeat's held_reports and held_bytes")


def test_the_memory_cap_comes_from_the_environment(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    # 0.001 MiB (1048 bytes): room for about one small frame.
    server, agent = one_worker(broker, start_server, DEBUGBROKER_HELD_MB="0.001")
    raise_errors(server, broker, 2)

    def reported() -> bool:
        listed = [a for a in broker.live_agents() if a["agent_id"] == agent["agent_id"]]
        return bool(listed) and listed[0]["held_frames"] > 0

    wait_for(reported, what="a heartbeat with held frames")
    listed = [a for a in broker.live_agents() if a["agent_id"] == agent["agent_id"]][0]
    assert 0 < listed["held_bytes"] <= 1048
    assert listed["held_reports"] == 1


def test_a_bad_cap_in_the_environment_is_ignored_with_a_warning(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server, _ = one_worker(
        broker, start_server, DEBUGBROKER_HELD_REPORTS="many", DEBUGBROKER_HELD_MB="-3"
    )
    (report,) = raise_errors(server, broker, 1)
    assert broker.report(report["id"])["frames_held"] is True  # defaults apply
    output = server.process.output()
    assert "ignoring DEBUGBROKER_HELD_REPORTS='many': expected a positive number" in output
    assert "ignoring DEBUGBROKER_HELD_MB='-3'" in output


def test_release_drops_the_frames_the_report_stays_readable_and_evals_say_why(
    tmp_path: Path, start_server: Callable[..., AppServer]
) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-abcdef").start()
    try:
        server, _ = one_worker(broker, start_server)
        first, second = raise_errors(server, broker, 2)
        report = broker.report(first["id"])
        index = frame_index(report, "raw_app")
        assert report["frames_held"] is True
        assert broker.evaluate(first["id"], index, "kept = 1").json()["ok"]

        path = f"/api/reports/{first['id']}/release"
        view = http(
            "POST",
            broker.url + path,
            headers={"Authorization": "Bearer view-token-abcdef"},
            json_body={},
        )
        assert view.status == 403, view.text
        assert broker.report(first["id"])["frames_held"] is True

        answer = broker.post(path, {})
        assert answer.status == 200, answer.text
        assert answer.json() == {"ok": True, "frames_held": False}
        after = broker.report(first["id"])
        assert after["frames_held"] is False and after["frames_released"] is not None
        assert broker.get(f"/api/reports/{first['id']}/text").status == 200

        failed = broker.evaluate(first["id"], index, "kept")
        assert failed.status == 409, failed.text
        assert "frame released" in failed.json()["error"]
        assert "released from the dashboard" in failed.json()["error"]
        # The other report keeps its frames.
        other = broker.evaluate(second["id"], index, "worker_pid")
        assert other.status == 200 and other.json()["ok"], other.text
        assert broker.report(second["id"])["frames_held"] is True

        again = broker.post(path, {})
        assert again.status == 409 and "already released" in again.json()["error"]
        assert broker.post("/api/reports/no-such-report/release", {}).status == 404

        entries = audit(broker)
        assert [(e["outcome"], e["report_id"]) for e in entries] == [
            ("failed", first["id"]),
            ("ok", first["id"]),
            ("refused", first["id"]),
        ]
        assert entries[1]["role"] == "full" and entries[2]["role"] == "view"
    finally:
        broker.stop()


def test_release_on_a_gone_process_answers_410(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server, _ = one_worker(broker, start_server)
    (report,) = raise_errors(server, broker, 1)
    server.process.stop()
    wait_for(lambda: not broker.live_agents(), what="the agent gone")
    assert broker.report(report["id"])["frames_held"] is False
    answer = broker.post(f"/api/reports/{report['id']}/release", {})
    assert answer.status == 410, answer.text
    assert answer.json()["error"].startswith("process gone")


def test_a_restarted_broker_learns_which_frames_are_still_held(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server, _ = one_worker(broker, start_server, DEBUGBROKER_HELD_REPORTS="1")
    first, second = raise_errors(server, broker, 2)
    wait_for(lambda: not broker.report(first["id"])["frames_held"], what="the LRU release")
    broker.kill()
    broker.start()
    # The agent says hello again and lists the reports it still holds.
    wait_for(lambda: broker.live_agents(), what="the agent back")
    wait_for(lambda: broker.report(second["id"])["frames_held"], what="the held report known")
    assert broker.report(first["id"])["frames_held"] is False
