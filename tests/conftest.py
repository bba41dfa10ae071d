"""Shared fixtures: a real broker process, real app servers, and waiting on conditions.

Every process a test starts binds 127.0.0.1 on free ports, writes its output to a file in
the test's temporary directory (shown when it fails to start), and is stopped by the fixture.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, settings

from debugbroker.protocol import Hello, ReprNode, Welcome, format_node, from_wire, keys

# Property tests check what holds, never how fast: no per-example deadline and no "too slow"
# health check, which a loaded CI machine fails (a failing example is still a failure).
settings.register_profile(
    "debugbroker", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("debugbroker")

# The browser fixtures are a plugin (pytest_plugins = ["tests.e2e.browser"]) that test modules
# also import from: register it before any import so its asserts are rewritten too.
pytest.register_assert_rewrite("tests.e2e.browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by folder: ``-m "not e2e"`` runs the agent's and the broker's tests alone."""
    for item in items:
        path = Path(str(item.path))
        if "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)
        elif path.name == "test_benchmarks_quick.py":
            item.add_marker(pytest.mark.bench)


DEADLINE = 20.0
TEST_SECRET = "test-secret-of-the-broker-fixture"  # the ``Broker``'s agent secret
ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "e2e" / "apps"


def wait_for(
    predicate: Callable[[], object], timeout: float = DEADLINE, what: str = "the condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # not ready yet (connection refused, say)
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        idle.wait(0.05)


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that contains ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


_given_ports: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now, and not one this process handed out before:
    the kernel may give the same free port twice in a row, and a broker's HTTP and agent
    ports, taken one after the other before either is bound, once came out the same (CI)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free TCP port that was not handed out already")


def broker_socket(context: zmq.Context[Any], secret: str, *, curve: bool = True) -> zmq.Socket[Any]:
    """A ROUTER set up as the broker's: a CurveZMQ server with the key derived from ``secret``
    (plain zmq when not ``curve``), for fakes that real agents must trust. Bind it yourself."""
    sock: zmq.Socket[Any] = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve:
        sock.curve_server = True
        sock.curve_secretkey = keys.server_secret_key(secret).encode()
    return sock


def agent_socket(
    context: zmq.Context[Any], secret: str, *, curve: bool = True, identity: bytes = b""
) -> zmq.Socket[Any]:
    """A DEALER set up as an agent's: the CurveZMQ keys derived from ``secret`` (plain zmq
    when not ``curve``), for raw agents the real broker must admit. Connect it yourself."""
    sock: zmq.Socket[Any] = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity)
    if curve:
        client = keys.client_secret_key(secret).encode()
        sock.curve_serverkey = zmq.curve_public(keys.server_secret_key(secret).encode())
        sock.curve_publickey = zmq.curve_public(client)
        sock.curve_secretkey = client
    return sock


def proven_welcome(secret: str, hello: Hello, dashboard_url: str) -> Welcome:
    """The welcome a broker holding ``secret`` answers ``hello`` with (its proof matches)."""
    proof = keys.welcome_proof(secret, hello.agent_id, hello.nonce, dashboard_url)
    return Welcome(dashboard_url=dashboard_url, proof=proof)


@dataclass
class HttpAnswer:
    """A response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    json_body: object = None,
    timeout: float = DEADLINE,
) -> HttpAnswer:
    """One HTTP request with the standard library; errors are answers, not exceptions."""
    all_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            found = {k.lower(): v for k, v in response.headers.items()}
            return HttpAnswer(response.status, found, response.read())
    except urllib.error.HTTPError as error:
        found = {k.lower(): v for k, v in error.headers.items()}
        return HttpAnswer(error.code, found, error.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def node_text(node: dict[str, Any] | None) -> str:
    """A wire ``ReprNode`` as one line of text, as the console shows it."""
    if node is None:
        return ""
    return format_node(from_wire(ReprNode, node))


def frame_index(report: dict[str, Any], function: str) -> int:
    """The index of the first frame of ``function`` in a report's JSON."""
    for info in report["exceptions"]:
        for frame in info["frames"]:
            if frame["function"] == function:
                index: int = frame["index"]
                return index
    raise AssertionError(f"no frame {function} in {report['id']}")


class Process:
    """A child process whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        env: dict[str, str],
        cwd: Path = ROOT,
    ):
        """``cwd``: where it runs (``python -m`` imports from there first)."""
        self.name = name
        self.cwd = cwd
        self.command = list(command)
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its workers die with it, and Ctrl+C in pytest spares it
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(
        self, predicate: Callable[[], object], what: str, timeout: float = DEADLINE
    ) -> Any:
        """Wait for ``predicate``; fail with the process's output if it dies or times out."""

        def check() -> object:
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.output()[-4000:]}")
            return predicate()

        try:
            return wait_for(check, timeout, what)
        except AssertionError as error:
            output = self.output()[-4000:]
            raise AssertionError(f"{error}\n--- {self.name} output ---\n{output}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown)."""
        self.stop(signal.SIGKILL)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no inherited DEBUGBROKER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGBROKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(ROOT)])
    env.update(extra)
    return env


# Broker options that keep every full report (retention off): for tests that count the
# reports stored in the SQLite file rather than the groups' counts.
KEEP_EVERY_REPORT = ("--keep-latest", "1000000000", "--max-reports", "0", "--max-db-mb", "0")


class Broker:
    """A real ``debugbroker serve`` process on free ports with its own data directory."""

    def __init__(
        self, workdir: Path, *extra_args: str, token: str = "test-token", code: Path = ROOT
    ) -> None:
        """``code``: the checkout whose ``debugbroker`` runs (another one: an older broker)."""
        self.workdir = workdir
        self.code = code
        self.data_dir = workdir / "broker-data"
        self.http_port = free_port()
        self.zmq_port = free_port()
        self.token = token
        self.secret = TEST_SECRET
        self.extra_args = list(extra_args)
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def zmq_url(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def agent_env(self, **extra: str) -> dict[str, str]:
        """What an app process needs to report to this broker."""
        return base_env(DEBUGBROKER_URL=self.zmq_url, DEBUGBROKER_SECRET=self.secret, **extra)

    def start(self) -> Broker:
        command = [
            sys.executable,
            "-m",
            "debugbroker",
            "serve",
            "--http",
            f"127.0.0.1:{self.http_port}",
            "--zmq",
            self.zmq_url,
            "--data",
            str(self.data_dir),
            "--token",
            self.token,
            "--secret",
            self.secret,
            "--agent-timeout",
            "3",
            *self.extra_args,
        ]
        env = base_env()
        if self.code != ROOT:
            env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(self.code)])
        log = self.workdir / "broker.log"
        self.process = Process("broker", command, log, env, cwd=self.code)
        self.process.start()
        self.process.wait_until(lambda: self.get("/api/agents").status == 200, "the broker")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def auth(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path: str, **kwargs: Any) -> HttpAnswer:
        return http(
            "GET", self.url + path, headers=self.auth(kwargs.pop("headers", None)), **kwargs
        )

    def post(self, path: str, json_body: object, **kwargs: Any) -> HttpAnswer:
        headers = self.auth(kwargs.pop("headers", None))
        return http("POST", self.url + path, headers=headers, json_body=json_body, **kwargs)

    def reports(self) -> list[dict[str, Any]]:
        answer = self.get("/api/reports")
        assert answer.status == 200, answer.text
        reports: list[dict[str, Any]] = answer.json()["reports"]
        return reports

    def report(self, report_id: str) -> dict[str, Any]:
        answer = self.get(f"/api/reports/{report_id}")
        assert answer.status == 200, answer.text
        report: dict[str, Any] = answer.json()
        return report

    def live_agents(self) -> list[dict[str, Any]]:
        answer = self.get("/api/agents")
        assert answer.status == 200, answer.text
        return [agent for agent in answer.json()["agents"] if agent["alive"]]

    def evaluate(self, report_id: str, index: int, code: str) -> HttpAnswer:
        return self.post(f"/api/reports/{report_id}/frames/{index}/eval", {"code": code})

    def login_url(self) -> str:
        """A fresh one-time login URL (``POST /api/login-codes``), as the banner prints."""
        answer = self.post("/api/login-codes", {})
        assert answer.status == 200, answer.text
        url: str = answer.json()["url"]
        return url

    def log_in(self, token: str | None = None) -> LoggedIn:
        """A dashboard session opened with ``token`` (default: the broker's own)."""
        answer = http(
            "POST",
            self.url + "/login",
            json_body={"token": token or self.token},
            headers={"Origin": self.url},
        )
        assert answer.status == 200, answer.text
        cookie = answer.headers["set-cookie"].split(";", 1)[0]
        return LoggedIn(cookie=cookie, key=answer.json()["key"], origin=self.url)


@dataclass(frozen=True)
class LoggedIn:
    """A dashboard session: its cookie (``name=value``) and key, as a browser tab holds them."""

    cookie: str
    key: str
    origin: str

    def headers(self, *, key: bool = True) -> dict[str, str]:
        """What the dashboard sends: the cookie, its Origin and (unless not) the key."""
        found = {"Cookie": self.cookie, "Origin": self.origin}
        if key:
            found["X-Debugbroker-Key"] = self.key
        return found


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A started broker, stopped after the test."""
    started = Broker(tmp_path).start()
    yield started
    started.stop()


class AppServer:
    """A real app server process (gunicorn, uvicorn…) serving one of ``tests/e2e/apps``."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> HttpAnswer:
        return http("GET", self.url + path, **kwargs)

    def get_in_background(
        self, path: str, timeout: float
    ) -> tuple[threading.Thread, list[HttpAnswer]]:
        """GET ``path`` from a thread (it blocks while the request is paused): the thread, and
        the list its answer goes into; none when the server stopped (a failed test)."""
        answers: list[HttpAnswer] = []

        def send() -> None:
            try:
                answers.append(self.get(path, timeout=timeout))
            except OSError:  # the server stopped: the test's assertions say why
                pass

        request = threading.Thread(target=send, daemon=True)
        request.start()
        return request, answers


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """Start an app server: ``start_server(["gunicorn", "-w", "3", "{bind}", "app:app"], env)``.

    ``{port}`` and ``{bind}`` (``--bind 127.0.0.1:PORT``) in the command are filled in; the
    server counts as started once ``GET /`` answers.
    """
    started: list[AppServer] = []

    def start(command: Sequence[str], env: dict[str, str], name: str = "server") -> AppServer:
        port = free_port()
        filled: list[str] = []
        for part in command:
            if part == "{bind}":
                filled += ["--bind", f"127.0.0.1:{port}"]
            else:
                filled.append(part.replace("{port}", str(port)))
        if filled[0] in ("gunicorn", "uvicorn"):
            filled = [sys.executable, "-m", filled[0], *filled[1:]]
        process = Process(name, filled, tmp_path / f"{name}-{len(started)}.log", env)
        process.start()
        server = AppServer(process, port)
        started.append(server)
        process.wait_until(lambda: server.get("/").status < 500, f"{name} to answer")
        return server

    yield start
    for server in started:
        server.process.stop()


class RedisServer:
    """A real ``redis-server`` on a free port, persistence off (Celery's and RQ's broker)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.process = Process(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            workdir / "redis.log",
            base_env(),
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisServer:
        self.process.start()
        self.process.wait_until(self.answers, "redis-server to answer PING")
        return self


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started ``redis-server``, stopped after the test."""
    started = RedisServer(tmp_path).start()
    yield started
    started.process.stop()


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs on a directory (``mount_tmpfs(path, "3m")``), unmounted after."""
    mounted: list[Path] = []

    def mount(path: Path, size: str, *options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        command = ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options])]
        done = subprocess.run([*command, "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_file_system(path: Path) -> None:
    """Write ``path`` until its file system is full."""
    with path.open("wb", buffering=0) as file:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0" * 512):
            try:
                while True:
                    file.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
