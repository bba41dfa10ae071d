"""The ``debugbroker`` command as users start it: ``demo`` and ``serve`` in real processes."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from debugbroker.broker.cli.main import build_parser, config_from_args, parse_http
from debugbroker.broker.store.groups import Retention
from tests.conftest import HttpAnswer, Process, base_env, free_port, http, wait_for


def test_demo_starts_a_broker_an_app_and_a_first_error(tmp_path: Path) -> None:
    http_port, zmq_port, app_port = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "debugbroker", "demo",
        "--http", f"127.0.0.1:{http_port}",
        "--zmq", f"tcp://127.0.0.1:{zmq_port}",
        "--app", f"127.0.0.1:{app_port}",
        "--data", str(tmp_path / "data"),
    ]  # fmt: skip
    demo = Process("demo", command, tmp_path / "demo.log", base_env())
    demo.start()
    try:
        output = demo.wait_until(
            lambda: "first error:" in demo.output() and demo.output(), "the demo's first error"
        )
        login = re.search(r"log in:\s+(http://\S+/)\?code=(\S+)", output)
        assert login, output
        token = (tmp_path / "data" / "token").read_text().strip()
        assert len(token) >= 43 and token not in output  # 32 random bytes, never printed
        report_url = re.search(r"first error: (\S+)", output)
        assert report_url and report_url.group(1).startswith(f"http://127.0.0.1:{http_port}/#/")
        report_id = report_url.group(1).rsplit("/", 1)[1]
        headers = {"Authorization": f"Bearer {token}"}
        report_api = f"http://127.0.0.1:{http_port}/api/reports/{report_id}"

        def stored() -> HttpAnswer | None:
            answer = http("GET", report_api, headers=headers)
            return answer if answer.status == 200 else None

        # The 500 (and so the printed link) comes before its report reaches the broker.
        report = wait_for(stored, what="the first error's report")
        assert report.json()["type_name"] == "ValueError"
        assert "(the agent is connected)" in output
        # The app itself works, and its bad page raises a fresh error.
        assert http("GET", f"http://127.0.0.1:{app_port}/").status == 200
        assert http("GET", f"http://127.0.0.1:{app_port}/checkout?coupon=X").status == 500

        def listed() -> list[dict[str, Any]]:
            answer = http("GET", f"http://127.0.0.1:{http_port}/api/reports", headers=headers)
            reports: list[dict[str, Any]] = answer.json()["reports"]
            return reports

        wait_for(lambda: len(listed()) == 2, what="the second report")
        # The printed URL's code opens a session (the dashboard posts it), once.
        assert login.group(1) == f"http://127.0.0.1:{http_port}/"
        code = {"code": login.group(2)}
        answer = http("POST", f"{login.group(1)}login", json_body=code)
        assert answer.status == 200 and answer.json()["key"]
        assert "HttpOnly" in answer.headers["set-cookie"]
        assert http("POST", f"{login.group(1)}login", json_body=code).status == 401
    finally:
        demo.stop()
    assert demo.popen is not None and demo.popen.returncode == 0, demo.output()


def test_serve_rejects_a_bad_address_with_a_clear_message(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "debugbroker", "serve", "--http", "nowhere:port"]
    broken = Process("serve", command, tmp_path / "serve.log", base_env())
    broken.start()
    assert broken.popen is not None and broken.popen.wait(60) == 2
    assert "expected HOST:PORT" in broken.output() and "Traceback" not in broken.output()


def _banner_or_exit(broker: Process) -> bool:
    return "data:" in broker.output() or not broker.alive()


def test_the_banner_says_what_agents_export_when_the_secret_is_given(tmp_path: Path) -> None:
    """A given secret is in no file agents could read: the banner asks for it (never prints
    it); a wildcard bind becomes an address agents can connect to."""
    for attempt in range(3):
        # A port free on 127.0.0.1 a moment ago may be taken on 0.0.0.0 by then (an outgoing
        # connection's ephemeral port on a busy machine): new ports, a few times.
        http_port, zmq_port = free_port(), free_port()
        command = [
            sys.executable, "-m", "debugbroker", "serve",
            "--http", f"127.0.0.1:{http_port}",
            "--zmq", f"tcp://0.0.0.0:{zmq_port}",
            "--data", str(tmp_path / f"data{attempt}"),
            "--secret", "given-secret-value",
        ]  # fmt: skip
        broker = Process("broker", command, tmp_path / f"broker{attempt}.log", base_env())
        broker.start()
        wait_for(functools.partial(_banner_or_exit, broker), what="the banner or the exit")
        if "data:" in broker.output():
            break
        assert "Address already in use" in broker.output(), broker.output()
        broker.stop()
    try:
        output = broker.output()
        exports = [line.strip() for line in output.splitlines() if "export " in line]
        assert exports == [
            f"export DEBUGBROKER_URL=tcp://127.0.0.1:{zmq_port}",
            "export DEBUGBROKER_SECRET=...  # the secret you gave this broker",
            f"export DEBUGBROKER_PUBLIC_URL=http://127.0.0.1:{http_port}",
        ]
        assert "given-secret-value" not in output
    finally:
        broker.stop()


def test_retention_options_reach_the_config_and_bad_ones_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["serve", "--data", str(tmp_path), "--retain-days", "7", "--max-reports", "500"]
        + ["--max-db-mb", "0", "--keep-first", "1", "--keep-latest", "2"]
    )
    args.http = parse_http(args.http)  # as main() does
    config, _ = config_from_args(args)
    assert config.retention == Retention(
        retain_days=7.0, max_reports=500, max_db_mb=0.0, keep_first=1, keep_latest=2
    )
    args = parser.parse_args(["serve", "--data", str(tmp_path)])
    args.http = parse_http(args.http)
    defaults, _ = config_from_args(args)
    assert defaults.retention == Retention()
    for bad in (["--max-reports", "-1"], ["--retain-days", "nan"], ["--keep-first", "1.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *bad])
        error = capsys.readouterr().err
        assert "must be 0 or more" in error or "not a number" in error, error
