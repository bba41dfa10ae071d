"""The store under faults, through real broker processes: a full disk, a damaged file, a
data dir in use, and a broker killed mid-storm (docs/limits.md, "The store under faults").

The full disk is a real one: a 3 MB tmpfs mounted on the broker's data dir, filled by the
test with a file and emptied again (mounting needs root, as in CI).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import expect

from tests.conftest import APPS, KEEP_EVERY_REPORT, Broker, base_env, fill_file_system, wait_for
from tests.e2e.browser import OpenPage, log_in

pytest_plugins = ["tests.e2e.browser"]
BANNER_TIMEOUT_MS = 20_000  # the broker announces the store every second

STORM_DEADLINE = 90.0


class Sender:
    """``tests/e2e/apps/report_sender.py``: a real agent that reports errors on command."""

    def __init__(self, broker: Broker, log_path: Path) -> None:
        self.log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, str(APPS / "report_sender.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=broker.agent_env(),
            text=True,
        )

    def ask(self, command: str) -> dict[str, Any]:
        stdin: IO[str] | None = self.popen.stdin
        stdout: IO[str] | None = self.popen.stdout
        assert stdin is not None and stdout is not None
        stdin.write(command + "\n")
        stdin.flush()
        line = stdout.readline()
        assert line, f"the sender exited (code {self.popen.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        try:
            self.ask("quit")
        except (AssertionError, OSError, ValueError):
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                pipe.close()
        self.log.close()


@pytest.fixture
def senders(tmp_path: Path) -> Iterator[Callable[[Broker], Sender]]:
    started: list[Sender] = []

    def start(broker: Broker) -> Sender:
        sender = Sender(broker, tmp_path / f"sender-{len(started)}.log")
        started.append(sender)
        return sender

    yield start
    for sender in started:
        sender.close()


def _store_status(broker: Broker) -> dict[str, Any]:
    answer = broker.get("/api/status")
    assert answer.status == 200, answer.text
    store: dict[str, Any] = answer.json()["store"]
    return store


def _stored_ids(broker: Broker) -> set[str]:
    """Every report id the broker has stored (paged by creation time)."""
    ids: set[str] = set()
    before = ""
    while True:
        page = broker.get(f"/api/reports?limit=1000{before}").json()["reports"]
        ids.update(report["id"] for report in page)
        if len(page) < 1000:
            return ids
        before = f"&before={min(report['created'] for report in page)!r}"


def _serve_fails(data_dir: Path, *extra: str) -> str:
    """Run ``debugbroker serve`` on ``data_dir``, expect it to refuse to start; its output."""
    command = [sys.executable, "-m", "debugbroker", "serve", "--data", str(data_dir)]
    command += ["--http", "127.0.0.1:0", "--zmq", "tcp://127.0.0.1:0", "--token", "t", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=base_env(), timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    assert output.count("\n") <= 2, output  # one line that says it all
    return output


# --- a full disk -----------------------------------------------------------------------


def test_a_full_disk_keeps_reports_waiting_sheds_past_the_bound_and_stores_them_later(
    tmp_path: Path,
    mount_tmpfs: Callable[..., Path],
    senders: Callable[[Broker], Sender],
    open_page: OpenPage,
) -> None:
    broker = Broker(tmp_path, "--max-waiting-reports", "300", *KEEP_EVERY_REPORT)
    mount_tmpfs(broker.data_dir, "6m")  # 320 full reports with their search index
    broker.start()
    try:
        page, _ = open_page()
        log_in(page, broker)
        banner = page.get_by_test_id("store-banner")
        sender = senders(broker)
        sender.ask("storm 20")
        wait_for(lambda: sender.ask("state")["stored_reports"] == 20, what="20 acknowledged")
        first = sender.ask("state")["sent"][0]
        assert _store_status(broker) | {"stored": 20} == {
            "stored": 20,
            "waiting": 0,
            "shed": 0,
            "not_stored": 0,
            "writes_waiting": 0,
            "writes_shed": 0,
            "fault": None,
            "shed_reason": None,
        }

        filler = broker.data_dir / "filler"
        fill_file_system(filler)
        sender.ask("storm 100")
        wait_for(
            lambda: _store_status(broker)["waiting"] == 100,
            STORM_DEADLINE,
            "100 reports waiting on the full disk",
        )
        status = _store_status(broker)
        assert status["fault"] == "the disk is full"
        assert status["stored"] == 20 and status["shed"] == 0
        assert sender.ask("state")["stored_reports"] == 20  # none of them acknowledged
        expect(banner).to_contain_text(
            "100 reports could not be stored: the disk is full.", timeout=BANNER_TIMEOUT_MS
        )

        # No code runs while its audit row cannot be written; the refusal is kept for the log.
        refused = broker.evaluate(first, 0, "1 + 1")
        assert refused.status == 507, refused.text
        assert "audit row cannot be written (the disk is full)" in refused.json()["error"]
        assert _store_status(broker)["writes_waiting"] >= 1

        sender.ask("storm 400")  # 500 waiting in all: past the bound of 300
        wait_for(
            lambda: _store_status(broker)["shed"] == 200,
            STORM_DEADLINE,
            "200 reports shed",
        )
        status = _store_status(broker)
        assert (status["waiting"], status["shed_reason"]) == (300, "the disk is full")
        expect(banner).to_contain_text(
            "500 reports could not be stored: the disk is full. 300 wait", timeout=BANNER_TIMEOUT_MS
        )
        expect(banner).to_contain_text("200 were shed")

        filler.unlink()  # space is back: everything waiting is stored, in order
        wait_for(
            lambda: _store_status(broker)["fault"] is None,
            STORM_DEADLINE,
            "the store to write again",
        )
        expect(banner).to_have_count(0, timeout=BANNER_TIMEOUT_MS)  # until it clears
        status = _store_status(broker)
        assert status | {"shed_reason": None} == {
            "stored": 320,
            "waiting": 0,
            "shed": 200,
            "not_stored": 0,
            "writes_waiting": 0,
            "writes_shed": 0,
            "fault": None,
            "shed_reason": None,
        }
        state = wait_for(
            lambda: (s := sender.ask("state"))["stored_reports"] == 320 and s,
            what="320 acknowledged",
        )
        stored = _stored_ids(broker)
        assert len(stored) == 320
        assert set(state["acked"]) == stored  # acknowledged exactly when stored
        assert stored == set(state["sent"][:120] + state["sent"][120:320])  # the oldest kept
        entries = broker.get("/api/audit").json()["entries"]
        evals = [entry for entry in entries if entry["action"] == "eval"]
        assert [(e["report_id"], e["outcome"]) for e in evals] == [(first, "refused")]
        assert "the disk is full" in evals[0]["detail"]
        assert broker.evaluate(first, 0, "1 + 1").status != 507  # evals run again
    finally:
        broker.stop()


def test_an_eval_whose_audit_row_fails_on_a_disk_full_just_now_is_refused(
    tmp_path: Path,
    mount_tmpfs: Callable[..., Path],
    senders: Callable[[Broker], Sender],
) -> None:
    """The disk fills between two writes: the eval's own audit row is the first write to
    fail, so the store knew of no fault when the eval came in; it is refused all the same."""
    broker = Broker(tmp_path)
    mount_tmpfs(broker.data_dir, "3m")
    broker.start()
    try:
        sender = senders(broker)
        sender.ask("storm 1")
        wait_for(lambda: sender.ask("state")["stored_reports"] == 1, what="1 acknowledged")
        report = sender.ask("state")["sent"][0]
        assert _store_status(broker)["fault"] is None
        fill_file_system(broker.data_dir / "filler")
        # Rows fit in the WAL's own space for a while (they are stored: no refusal is due);
        # the first row that needs more is the first write to fail, and its eval is refused.
        code = f"len({'x' * 90_000!r})"
        for _ in range(100):
            refused = broker.evaluate(report, 0, code)
            if refused.status != 200:
                break
        assert refused.status == 507, refused.text
        assert "audit row cannot be written (the disk is full)" in refused.json()["error"]
        assert _store_status(broker)["fault"] == "the disk is full"
    finally:
        broker.stop()


# --- start-up checks -------------------------------------------------------------------


def test_a_data_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "debugbroker.sqlite3").write_bytes(b"this is not a SQLite database at all\n" * 50)
    output = _serve_fails(data)
    assert "is not a debugbroker database (file is not a database)" in output
    assert f"mv {data / 'debugbroker.sqlite3'} " in output and "--data" in output


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    connection = sqlite3.connect(data / "debugbroker.sqlite3")
    connection.execute("PRAGMA user_version = 999")
    connection.close()
    output = _serve_fails(data)
    assert "written by a newer debugbroker (schema version 999" in output
    assert "Upgrade debugbroker" in output


def test_a_data_dir_that_cannot_be_written_is_refused_with_what_to_do(
    tmp_path: Path, mount_tmpfs: Callable[..., Path]
) -> None:
    data = mount_tmpfs(tmp_path / "data", "1m", "ro")  # read-only even for root
    output = _serve_fails(data)
    assert f"the data dir {data} cannot be written (Read-only file system)" in output
    assert "pick another data dir with --data DIR" in output


def test_a_data_dir_in_use_names_the_other_broker_and_a_killed_one_leaves_no_stale_lock(
    tmp_path: Path,
) -> None:
    first = Broker(tmp_path).start()
    try:
        assert first.process is not None
        output = _serve_fails(first.data_dir)
        assert f"the data dir {first.data_dir} is in use by another broker" in output
        assert f"pid {first.process.pid}, dashboard {first.url}/, agents {first.zmq_url}" in output
        assert "Stop that broker first, or give this one another data dir with --data" in output
        first.kill()  # SIGKILL: nothing cleans up, the kernel drops the lock
        second = Broker(tmp_path).start()  # the same data dir
        second.stop()
    finally:
        first.stop()


# --- crash safety ----------------------------------------------------------------------


def test_a_broker_killed_mid_storm_loses_no_report_it_acknowledged(
    tmp_path: Path, senders: Callable[[Broker], Sender]
) -> None:
    broker = Broker(tmp_path, *KEEP_EVERY_REPORT).start()
    try:
        sender = senders(broker)
        wait_for(lambda: broker.live_agents(), what="the sender's agent")
        sender.ask("storm 3000")
        wait_for(
            lambda: sender.ask("state")["stored_reports"] >= 300,
            STORM_DEADLINE,
            "300 reports acknowledged",
        )
        broker.kill()  # SIGKILL, in the middle of the storm
        before = sender.ask("state")
        acked_before = set(before["acked"])
        assert 300 <= len(acked_before) < 3000, len(acked_before)

        broker.start()  # the same data dir and ports: the agent reconnects and sends on
        stored = _stored_ids(broker)
        assert acked_before <= stored, f"{len(acked_before - stored)} acknowledged reports lost"

        # Let the rest of the storm arrive, then count both sides.
        def settled() -> dict[str, Any] | None:
            state = sender.ask("state")
            done = len(state["sent"]) == 3000 and state["queued"] == 0
            return state if done and state["stored_reports"] >= len(stored) else None

        after = wait_for(settled, STORM_DEADLINE, "the storm to end")
        stored = wait_for(
            lambda: (ids := _stored_ids(broker)) >= set(after["acked"]) and ids,
            what="every acknowledged report in the store",
        )
        sent = set(after["sent"])
        assert stored <= sent
        lost = sent - stored  # in the broker's buffers and batch when it was killed
        assert not (lost & set(after["acked"]))
        print(f"sent {len(sent)}, acknowledged {len(set(after['acked']))}, stored {len(stored)}")
    finally:
        broker.stop()


def test_the_store_keeps_its_schema_version(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    broker.stop()
    connection = sqlite3.connect(broker.data_dir / "debugbroker.sqlite3")
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
    finally:
        connection.close()
    from debugbroker.broker.store.schema import SCHEMA_VERSION

    assert version == SCHEMA_VERSION >= 1
    assert os.path.exists(broker.data_dir / "broker.lock")
