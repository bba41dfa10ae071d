"""The audit log against a real broker and a real agent: every eval and admission is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.broker.test_security_agents import start_agent  # noqa: F401 - a fixture
from tests.conftest import Broker, http, wait_for


def frame_of(report: dict[str, Any], function: str) -> int:
    for info in report["exceptions"]:
        for frame in info["frames"]:
            if frame["function"] == function:
                index: int = frame["index"]
                return index
    raise AssertionError(f"no frame {function}")


def audit(broker: Broker, **headers: str) -> list[dict[str, Any]]:
    answer = broker.get("/api/audit", headers=headers)
    assert answer.status == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def test_every_eval_is_audited_with_who_what_where_when_and_outcome(
    tmp_path: Path,
    start_agent: Any,  # noqa: F811
) -> None:
    broker = Broker(tmp_path, "--view-token", "view-token-abcdef").start()
    try:
        start_agent(broker.zmq_url, broker.secret, CONSOLE="1")
        wait_for(lambda: broker.reports(), what="the agent's report")
        summary = broker.reports()[0]
        report = broker.report(summary["id"])
        index = frame_of(report, "failing")
        path = f"/api/reports/{summary['id']}/frames/{index}/eval"
        name = {"X-Debugbroker-Name": quote("Ada Lövelace\n<b>")}

        ok = broker.post(path, {"code": "secret_local"}, headers=name)
        assert ok.status == 200 and ok.json()["ok"], ok.text
        raised = broker.post(path, {"code": "1/0"})
        assert raised.status == 200 and not raised.json()["ok"]
        view = http(
            "POST",
            broker.url + path,
            headers={"Authorization": "Bearer view-token-abcdef"},
            json_body={"code": "import os"},
        )
        assert view.status == 403
        missing = broker.post(f"/api/reports/{summary['id']}/frames/999/eval", {"code": "2"})
        assert missing.status == 404
        bad = broker.post(path, {"code": 3})
        long = broker.post(path, {"code": "x" * 100_001})
        assert (bad.status, long.status) == (400, 413)
        refused_rows = [entry for entry in audit(broker) if entry["action"] == "eval"][:2]
        assert [(e["outcome"], e["detail"][:8]) for e in refused_rows] == [
            ("refused", "HTTP 413"),
            ("refused", "HTTP 400"),
        ]
        assert len(refused_rows[0]["code"]) == 100_000  # bounded, still recorded

        evals = [entry for entry in audit(broker) if entry["action"] == "eval"][2:]
        assert [entry["code"] for entry in evals] == ["2", "import os", "1/0", "secret_local"]
        newest_first = [entry["id"] for entry in evals]
        assert newest_first == sorted(newest_first, reverse=True)
        by_code = {entry["code"]: entry for entry in evals}
        first = by_code["secret_local"]
        assert first["role"] == "full"
        assert first["name"] == "Ada Lövelace<b>"  # control characters dropped, text kept
        assert first["client"] == "127.0.0.1"
        assert first["report_id"] == summary["id"]
        assert first["frame_index"] == index
        assert first["agent_id"] == summary["agent_id"]
        assert first["outcome"] == "ok"
        assert abs(first["at"] - summary["created"]) < 120
        assert by_code["1/0"]["outcome"] == "raised"
        assert by_code["import os"]["role"] == "view"
        assert by_code["import os"]["outcome"] == "refused"
        assert "403" in by_code["import os"]["detail"]
        assert by_code["2"]["outcome"] == "failed" and by_code["2"]["frame_index"] == 999
        admitted = [entry for entry in audit(broker) if entry["action"] == "agent_admitted"]
        assert [entry["agent_id"] for entry in admitted] == [summary["agent_id"]]

        # Completions look attributes up (code may run): audited too.
        assert broker.post(path.replace("/eval", "/complete"), {"text": "secret_l"}).status == 200
        newest = audit(broker)[0]
        assert (newest["action"], newest["code"], newest["outcome"]) == (
            "complete",
            "secret_l",
            "ok",
        )

        # A process console's evals are audited too (no report, no frame).
        process = broker.post(f"/api/agents/{summary['agent_id']}/eval", {"code": "40 + 2"})
        assert process.status == 200, process.text
        newest = audit(broker)[0]
        assert (newest["action"], newest["code"], newest["outcome"]) == ("eval", "40 + 2", "ok")
        assert newest["agent_id"] == summary["agent_id"]
        assert newest["report_id"] == "" and newest["frame_index"] is None

        # Only the full token reads the log.
        view_read = http(
            "GET", broker.url + "/api/audit", headers={"Authorization": "Bearer view-token-abcdef"}
        )
        assert view_read.status == 403
        assert http("GET", broker.url + "/api/audit").status == 401
        assert broker.get("/api/audit?limit=0").status == 400
        assert len(audit(broker)) == len(broker.get("/api/audit?limit=1000").json()["entries"])
        before = evals[1]["id"]
        assert [e["id"] for e in broker.get(f"/api/audit?before={before}").json()["entries"]][
            0
        ] < before

        # The log survives a broker restart (it is in the SQLite file).
        broker.stop()
        broker.start()
        assert [e["code"] for e in audit(broker) if e["action"] == "eval"][:1] == ["40 + 2"]
    finally:
        broker.stop()


def test_an_agent_without_evalex_refuses_with_its_reason_and_the_attempt_is_audited(
    tmp_path: Path,
    start_agent: Any,  # noqa: F811
) -> None:
    broker = Broker(tmp_path).start()
    try:
        start_agent(broker.zmq_url, broker.secret, evalex=False)
        wait_for(lambda: broker.reports(), what="the agent's report")
        summary = broker.reports()[0]
        index = frame_of(broker.report(summary["id"]), "failing")
        path = f"/api/reports/{summary['id']}/frames/{index}"
        for action in ("eval", "complete"):
            body = {"code": "1"} if action == "eval" else {"text": "x"}
            refused = broker.post(f"{path}/{action}", body)
            assert refused.status == 403, refused.text
            assert refused.json()["reason"] == "disabled"
            assert "evalex=False" in refused.json()["error"]
            newest = audit(broker)[0]
            assert (newest["action"], newest["outcome"]) == (action, "failed")
            assert newest["detail"].startswith("HTTP 403: code execution is disabled")
    finally:
        broker.stop()
