"""End to end, the storm policy: gunicorn workers raising one error many times send a few
full reports and count the rest; the group's total is every request, exactly."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import AppServer, Broker, wait_for

REQUESTS = 120
BURST = 3


def test_one_error_many_times_is_counted_exactly_with_few_full_reports(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    env = broker.agent_env(DEBUGBROKER_REPEAT_BURST=str(BURST), DEBUGBROKER_REPEAT_RATE="0.0001")
    server = start_server(["gunicorn", "-w", "2", "{bind}", "failing_wsgi:app"], env)
    wait_for(lambda: broker.live_agents(), what="an agent")
    repeated = []
    for _ in range(REQUESTS):
        answer = server.get("/boom", headers={"Accept": "text/plain"})
        assert answer.status == 500, answer.text
        assert "ZeroDivisionError" in answer.text
        assert answer.headers.get("x-debugbroker-report")  # the representative report
        if "counted, not captured" in answer.text:
            repeated.append(answer.headers["x-debugbroker-report"])
    assert len(repeated) >= REQUESTS - 2 * BURST

    def one_group() -> bool:
        groups = broker.get("/api/groups").json()["groups"]
        return len(groups) == 1 and groups[0]["count"] == REQUESTS

    wait_for(one_group, what=f"one group of {REQUESTS}")
    [group] = broker.get("/api/groups").json()["groups"]
    assert group["kept"] <= 2 * BURST  # at most each worker's burst of full reports
    assert sum(group["hourly"]) == REQUESTS
    reports = {report["id"] for report in broker.reports()}
    assert {link.rsplit("/", 1)[1] for link in repeated} <= reports  # each link a stored report
    assert all(agent["repeats_unknown"] == 0 for agent in broker.live_agents())
    assert "repeated: counted, not captured" in server.process.output()
