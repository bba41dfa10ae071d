"""CurveZMQ between real agents and a real broker started with ``--curve``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import zmq

from tests.broker.test_security_agents import start_agent  # noqa: F401 - a fixture
from tests.conftest import Broker, base_env, free_port, wait_for


def test_curve_admits_the_right_key_only(tmp_path: Path, start_agent: Any) -> None:  # noqa: F811
    broker = Broker(tmp_path, "--curve").start()
    try:
        public = (broker.data_dir / "curve_public.key").read_text().strip()
        secret_file = broker.data_dir / "curve_secret.key"
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        assert zmq.curve_public(secret_file.read_text().strip().encode()).decode() == public
        assert broker.process is not None
        output = broker.process.output()
        assert f"DEBUGBROKER_SERVER_KEY={public}" in output
        assert secret_file.read_text().strip() not in output

        wrong_key = zmq.curve_keypair()[0].decode()
        wrong = start_agent(broker.zmq_url, broker.secret, DEBUGBROKER_SERVER_KEY=wrong_key)
        wrong.wait_until(lambda: "the handshake failed" in wrong.output(), "the agent to say why")
        assert "DEBUGBROKER_SERVER_KEY" in wrong.output()
        plain = start_agent(broker.zmq_url, broker.secret)
        plain.wait_until(lambda: "--curve" in plain.output(), "the plain agent to say why")
        malformed = start_agent(broker.zmq_url, broker.secret, DEBUGBROKER_SERVER_KEY="abc")
        malformed.wait_until(
            lambda: "40-character public key" in malformed.output(), "the bad-key agent"
        )
        wait_for(
            lambda: broker.get("/api/status").json()["relay"]["handshake_failed"] >= 2,
            what="the broker to count failed handshakes",
        )
        assert broker.live_agents() == [] and broker.reports() == []

        start_agent(broker.zmq_url, broker.secret, DEBUGBROKER_SERVER_KEY=public)
        wait_for(lambda: len(broker.live_agents()) == 1, what="the agent with the right key")
        wait_for(lambda: len(broker.reports()) == 1, what="its report")
        assert wrong.alive() and plain.alive()  # the app runs on without its agent

        # The key pair survives a restart, so configured agents keep working.
        broker.stop()
        broker.start()
        assert (broker.data_dir / "curve_public.key").read_text().strip() == public
        wait_for(lambda: len(broker.live_agents()) == 1, what="the agent to reconnect")
    finally:
        broker.stop()


def test_a_broken_key_file_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "curve_secret.key").write_text("not a key\n")
    command = [sys.executable, "-m", "debugbroker", "serve", "--curve", "--data", str(data)]
    command += ["--http", f"127.0.0.1:{free_port()}", "--zmq", f"tcp://127.0.0.1:{free_port()}"]
    done = subprocess.run(command, env=base_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "does not hold a CurveZMQ secret key" in done.stderr
