"""The OpenAPI description, and schemathesis fuzzing the real broker's HTTP API against it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from debugbroker.protocol import ReportMessage, Welcome
from tests.broker.test_security_agents import RawAgent, a_report
from tests.conftest import Broker, base_env, http, wait_for

SEED = os.environ.get("DEBUGBROKER_FUZZ_SEED", "1")  # fixed by default: CI stays reproducible
EXAMPLES = os.environ.get("DEBUGBROKER_FUZZ_EXAMPLES", "25")
_SCHEMATHESIS = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


def description(broker: Broker) -> dict[str, Any]:
    answer = http("GET", broker.url + "/api/openapi.json")
    assert answer.status == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    found: dict[str, Any] = answer.json()
    return found


def test_the_description_is_public_and_lists_the_api(broker: Broker) -> None:
    spec = description(broker)  # no token
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in (
        "/api/reports",
        "/api/reports/{report_id}",
        "/api/reports/{report_id}/text",
        "/api/reports/{report_id}/frames/{index}/eval",
        "/api/agents",
        "/api/status",
        "/api/audit",
    ):
        assert path in paths, path
        for operation in paths[path].values():
            assert "security" not in operation  # the global rule: a token or the cookie
            assert {"401", "429"} <= set(operation["responses"])
    assert spec["security"] == [{"token": []}, {"session": []}]
    assert paths["/api/openapi.json"]["get"]["security"] == []


def _filled(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "0" if m.group(1) == "index" else "x", path)


def test_every_described_route_refuses_requests_without_a_token(broker: Broker) -> None:
    spec = description(broker)
    guarded = [
        (method.upper(), _filled(path), {"code": "1"} if method == "post" else None)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") != []
    ]
    assert len(guarded) >= 8
    for method, path, body in guarded:
        answer = http(method, broker.url + path, json_body=body)
        assert answer.status == 401, (method, path, answer.status)
    # A stale session cookie is refused everywhere (and not counted: no back-off delays) ...
    name = spec["components"]["securitySchemes"]["session"]["name"]
    assert name == broker.log_in().cookie.split("=", 1)[0]
    stale = {"Cookie": f"{name}=stale", "Origin": broker.url, "X-Debugbroker-Key": "stale"}
    for method, path, body in guarded:
        answer = http(method, broker.url + path, headers=stale, json_body=body)
        assert answer.status == 401, (method, path, answer.status)
    # ... and a wrong token too (counted: past the limit the answer is 429, and slower).
    wrong = {"Authorization": "Bearer wrong"}
    for method, path, body in guarded[:8]:
        answer = http(method, broker.url + path, headers=wrong, json_body=body)
        assert answer.status in (401, 429), (method, path, answer.status)


def _schemathesis(broker: Broker, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-c",
        _SCHEMATHESIS,
        "run",
        broker.url + "/api/openapi.json",
        "--header",
        f"Authorization: Bearer {broker.token}",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--exclude-path",
        "/login",  # wrong tokens on purpose would rate-limit the run's own client
        # The stateful phase feeds ids from answers into paths, the audit log's empty
        # report_id of an agent admission too, and "/api/reports//share" is no route.
        "--phases",
        "examples,coverage,fuzzing",
        *args,
    ]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.once  # about 100 s: run under the main Python only
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    broker: Broker, tmp_path: Path
) -> None:
    # Some data to read: an admitted agent with one report.
    agent = RawAgent(broker.zmq_url)
    try:
        assert isinstance(agent.hello(broker.secret), Welcome)
        agent.send_message(ReportMessage(report=a_report(agent.identity.decode())))
        wait_for(lambda: len(broker.reports()) == 1, what="the report")
        described = _schemathesis(
            broker,
            tmp_path,
            "--checks",
            "all",
            # Checked by the test above instead: its wrong tokens would rate-limit the run.
            "--exclude-checks",
            "ignored_auth",
            "--exclude-tag",
            "undescribed",
        )
        assert described.returncode == 0, described.stdout[-8000:] + described.stderr[-2000:]
        assert "passed" in described.stdout
        # Routes other modules added without a detailed schema: no 5xx, right content types.
        undescribed = _schemathesis(
            broker,
            tmp_path,
            "--checks",
            "not_a_server_error,content_type_conformance,response_headers_conformance",
            "--include-tag",
            "undescribed",
        )
        no_operations = "No operations" in undescribed.stdout + undescribed.stderr
        assert undescribed.returncode == 0 or no_operations, (
            undescribed.stdout[-8000:] + undescribed.stderr[-2000:]
        )
    finally:
        agent.close()
    assert broker.process is not None and broker.process.alive()
    log = broker.process.output()
    assert "internal error" not in log and "debugbroker.auth ERROR" not in log
    assert broker.token not in log
