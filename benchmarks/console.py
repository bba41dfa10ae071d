"""3. Console round trip: an eval typed in the browser, answered by the process that failed.

debugbroker, as the dashboard makes it: an ``eval`` message on the dashboard's WebSocket
(opened with the session cookie, the session's key proven by its first message, as the
dashboard does; aiohttp's client) to a real broker process, which routes it over ZeroMQ to
the real agent in a gunicorn worker, which evaluates in the held frame and answers back the
same way; the broker's ``console`` events for the entry reach the same socket, as they reach
the dashboard. Beside it, the HTTP API scripts use: ``POST /api/reports/{id}/frames/{index}/eval``
on one keep-alive connection. Completion (Tab) is timed the same two ways.

Werkzeug: its in-process console over HTTP on its own threaded server, the URL its page's
JavaScript requests: ``/?__debugger__=yes&cmd=CODE&frm=FRAME&s=SECRET`` (the secret and frame
id are read from the error page, as the page's script does). Werkzeug answers
``Connection: close``, so each eval opens a connection, as a browser would have to.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import urllib.parse
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import aiohttp
import zmq

from debugbroker import protocol
from debugbroker.broker.wire import WireResult, decode_message
from debugbroker.protocol import (
    CompleteRequest,
    EvalRequest,
    Hello,
    ReportMessage,
    Welcome,
    encoder,
    keys,
)

from .common import (
    BENCH_APPS,
    Broker,
    Process,
    Row,
    Settings,
    app_env,
    free_port,
    gunicorn_command,
    http,
    percentile,
    start_broker,
    wait_for,
)

__all__ = ["run", "run_after_burst", "BURST_ERRORS"]

CODE = "worker_pid + 1"
COMPLETE = "worker_p"  # completes to worker_pid
# Errors raised before the evals of ``run_after_burst``: past both held-frame caps (64
# reports, 32 MB by default), as in issue 22 where 60 such errors made every eval wait for
# the agent's 100 ms poll.
BURST_ERRORS = 100


def _start(name: str, command: list[str], env: dict[str, str], workdir: Path, port: int) -> Process:
    process = Process(name, command, workdir / f"{name}.log", env)
    process.start()
    process.wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/").status == 200, name)
    return process


def _time_evals(send: Any, count: int) -> list[float]:
    for _ in range(min(count, 20)):  # warm up the connection and the frame's namespace
        send()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        samples.append(time.perf_counter() - started)
    return samples


def _burst(port: int, errors: int) -> None:
    """Raise ``errors`` of benchmark 2's 31-frame errors with large locals in the server."""
    for _ in range(errors):
        answer = http("GET", f"http://127.0.0.1:{port}/deep", headers={"Accept": "text/plain"})
        if answer.status != 500:
            raise RuntimeError(f"/deep answered {answer.status}")


def _ours(
    settings: Settings, broker: Broker, count: int, burst: int = 0
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Round trips, after ``burst`` errors: evals and completions over the dashboard's
    WebSocket (``ws``, ``ws_complete``) and over HTTP (``http``, ``http_complete``), and
    ``GET /api/status`` on the HTTP connection (``status``: the broker's HTTP and
    authentication alone, no agent and no SQLite); and the worker's agent counters before."""
    workdir = settings.workdir / "console"
    port = free_port()

    command = gunicorn_command(port, "bench_wsgi:app")
    # The burst must be full reports with held frames (past both caps): storm policy off.
    env = app_env(broker, DEBUGBROKER_REPEAT_BURST="0")
    server = _start("gunicorn", command, env, workdir, port)
    try:
        _burst(port, burst)
        answer = http("GET", f"http://127.0.0.1:{port}/boom", headers={"Accept": "text/plain"})
        if answer.status != 500:
            raise RuntimeError(f"/boom answered {answer.status}")
        report_id = answer.headers["x-debugbroker-report"].rsplit("/", 1)[-1]

        def stored() -> Any:
            answer = broker.get(f"/api/reports/{report_id}")
            return answer.json() if answer.status == 200 else None

        report = wait_for(stored, 60, "the report")
        stats = http("GET", f"http://127.0.0.1:{port}/stats").json()
        frames = [f for info in report["exceptions"] for f in info["frames"]]
        index = next(f["index"] for f in frames if f["function"] == "raw_app")
        expected = str(server_pid(port) + 1)
        console = f"reports/{report_id}/frames/{index}"
        samples = asyncio.run(_over_socket(broker, console, count, expected))
        samples |= _over_http(broker, console, count, expected)
        return samples, stats
    finally:
        server.stop()


def _check_eval(status: int, data: Any, expected: str) -> None:
    if status != 200 or not data.get("ok"):
        raise RuntimeError(f"eval failed: {status} {data}")
    if expected not in json.dumps(data.get("result")):
        raise RuntimeError(f"eval answered {data.get('result')}, expected {expected}")


def _check_completion(status: int, data: Any) -> None:
    if status != 200 or "worker_pid" not in data.get("matches", ()):
        raise RuntimeError(f"completion failed: {status} {data}")


def _over_http(broker: Broker, console: str, count: int, expected: str) -> dict[str, list[float]]:
    connection = HTTPConnection("127.0.0.1", broker.http_port, timeout=20)
    headers = {"Authorization": f"Bearer {broker.token}", "Content-Type": "application/json"}

    def post(route: str, body: bytes) -> tuple[int, Any]:
        connection.request("POST", f"/api/{console}/{route}", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    eval_body = json.dumps({"code": CODE}).encode()
    complete_body = json.dumps({"text": COMPLETE}).encode()

    def send() -> None:
        _check_eval(*post("eval", eval_body), expected)

    def complete() -> None:
        _check_completion(*post("complete", complete_body))

    def status() -> None:
        connection.request("GET", "/api/status", headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /api/status answered {response.status}")

    try:
        return {
            "http": _time_evals(send, count),
            "http_complete": _time_evals(complete, count),
            "status": _time_evals(status, count),
        }
    finally:
        connection.close()


async def _over_socket(
    broker: Broker, console: str, count: int, expected: str
) -> dict[str, list[float]]:
    """The dashboard's way: log in (cookie + key), open the WebSocket with the dashboard's
    Origin, prove the key, then one command at a time, timed until its answer."""
    # unsafe: the broker is on an IP address, whose cookies aiohttp's jar skips by default.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        login = await session.post(
            broker.url + "/login", json={"token": broker.token}, headers={"Origin": broker.url}
        )
        key = (await login.json())["key"]
        url = broker.url.replace("http", "ws", 1) + "/api/ws"
        async with session.ws_connect(url, headers={"Origin": broker.url}) as socket:
            await socket.send_str(json.dumps({"type": "auth", "key": key}))
            while True:
                message = json.loads(await socket.receive_str(timeout=20))
                if message.get("type") == "auth":
                    if not message["ok"]:
                        raise RuntimeError(f"the socket's key was refused: {message}")
                    break
            numbers = iter(range(1, 10**9))

            async def command(fields: dict[str, Any]) -> tuple[int, Any]:
                number = next(numbers)
                await socket.send_str(json.dumps({**fields, "id": number, "console": console}))
                while True:  # the entry's console events come too, as to the dashboard
                    text = await socket.receive_str(timeout=20)
                    if text.startswith('{"type":"answer"'):
                        answer = json.loads(text)
                        if answer["id"] == number:
                            return answer["status"], answer["body"]

            async def timed(fields: dict[str, Any], check: Any) -> list[float]:
                for _ in range(min(count, 20)):
                    check(*await command(fields))
                samples = []
                for _ in range(count):
                    started = time.perf_counter()
                    status, body = await command(fields)
                    samples.append(time.perf_counter() - started)
                    check(status, body)
                return samples

            def check_eval(status: int, body: Any) -> None:
                _check_eval(status, body, expected)

            # As the dashboard sends Enter: interactive (the broker asks if a block is open).
            eval_message = {"type": "eval", "code": CODE, "interactive": True, "name": "bench"}
            complete_message = {"type": "complete", "text": COMPLETE}
            return {
                "ws": await timed(eval_message, check_eval),
                "ws_complete": await timed(complete_message, _check_completion),
            }


def server_pid(port: int) -> int:
    return int(http("GET", f"http://127.0.0.1:{port}/pid").text)


def _werkzeug(settings: Settings, count: int, burst: int = 0) -> list[float]:
    workdir = settings.workdir / "console"
    port = free_port()
    command = [sys.executable, str(BENCH_APPS / "werkzeug_server.py"), str(port)]
    server = _start("werkzeug", command, app_env(), workdir, port)
    try:
        _burst(port, burst)
        page = http("GET", f"http://127.0.0.1:{port}/boom", headers={"Accept": "text/html"}).text
        secret_match = re.search(r'SECRET = "([^"]+)"', page)
        frame_match = re.search(
            r'<div class="frame" id="frame-(\d+)">\s*<h4>[^<]*<cite[^>]*>[^<]*</cite>,\s*'
            r'line <em[^>]*>\d+</em>,\s*in <code class="function">raw_app</code>',
            page,
        )
        if secret_match is None or frame_match is None:
            raise RuntimeError("could not find the secret and frame on Werkzeug's page")
        query = urllib.parse.urlencode(
            {"__debugger__": "yes", "cmd": CODE, "frm": frame_match[1], "s": secret_match[1]}
        )
        expected = str(server_pid(port) + 1)

        def send() -> None:
            connection = HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                connection.request("GET", f"/?{query}")
                response = connection.getresponse()
                data = response.read().decode()
            finally:
                connection.close()
            if response.status != 200 or expected not in data:
                raise RuntimeError(f"Werkzeug's console answered {response.status}: {data[:200]}")

        return _time_evals(send, count)
    finally:
        server.stop()


def _agent_hop(settings: Settings, count: int) -> dict[str, list[float]]:
    """The agent's part alone, evals (``eval``) and completions (``complete``): a bare ZeroMQ
    ROUTER (no HTTP, no SQLite) asks the real agent in a gunicorn worker, the way the
    broker's relay does, encoding with the relay's encoder and reading the answer with its
    decoder (msgspec, ``broker/wire.py``)."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.curve_server = True  # as the real broker's: the agent trusts only its secret's key
    router.curve_secretkey = keys.server_secret_key("hop").encode()
    zmq_port = router.bind_to_random_port("tcp://127.0.0.1")
    port = free_port()
    env = app_env(DEBUGBROKER_URL=f"tcp://127.0.0.1:{zmq_port}", DEBUGBROKER_SECRET="hop")
    command = gunicorn_command(port, "bench_wsgi:app")
    server = _start("gunicorn-hop", command, env, settings.workdir, port)

    def receive(kind: type[Any], timeout: float = 20.0) -> tuple[bytes, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if router.poll(100):
                identity, payload = router.recv_multipart()
                message = protocol.decode(payload)
                if isinstance(message, Hello):
                    proof = keys.welcome_proof("hop", message.agent_id, message.nonce, "")
                    welcome = Welcome(dashboard_url="", proof=proof)
                    router.send_multipart([identity, protocol.encode(welcome)])
                if isinstance(message, kind):
                    return identity, message
        raise RuntimeError(f"no {kind.__name__} from the agent")

    try:
        answer = http("GET", f"http://127.0.0.1:{port}/boom", headers={"Accept": "text/plain"})
        if answer.status != 500:
            raise RuntimeError(f"/boom answered {answer.status}")
        identity, message = receive(ReportMessage)
        frames = [f for info in message.report.exceptions for f in info.frames]
        frame_id = next(f.frame_id for f in frames if f.function == "raw_app")
        sequence = iter(range(10**9))

        def ask(make: Any) -> None:
            request_id = f"r{next(sequence)}"
            router.send_multipart([identity, encoder.encode(make(request_id))])
            while True:  # as the relay reads: the agent's answer, decoded by msgspec
                if not router.poll(20_000):
                    raise RuntimeError("no answer from the agent")
                _, payload = router.recv_multipart()
                result = decode_message(payload)
                if isinstance(result, WireResult) and result.request_id == request_id:
                    if not result.wire["ok"]:
                        raise RuntimeError(f"the request failed: {result.wire}")
                    return

        def evaluate(request_id: str) -> EvalRequest:
            return EvalRequest(
                request_id=request_id, frame_id=frame_id, code=CODE, interactive=True
            )

        def complete(request_id: str) -> CompleteRequest:
            return CompleteRequest(request_id=request_id, frame_id=frame_id, text=COMPLETE)

        return {
            "eval": _time_evals(lambda: ask(evaluate), count),
            "complete": _time_evals(lambda: ask(complete), count),
        }
    finally:
        server.stop()
        router.close(linger=0)
        context.term()


def _floor(settings: Settings, count: int) -> dict[str, list[float]]:
    """The same paths with no work in them (``apps/floor.py``): ``hop``, a CurveZMQ ROUTER
    here asking a DEALER thread that polls as the agent's I/O thread does and echoes;
    ``pipeline``, the dashboard's path: a WebSocket to an aiohttp process that relays each
    message over CurveZMQ to such an echo and the answer back. What is left above these is
    debugbroker's own work."""
    workdir = settings.workdir / "console"
    secret = "floor"
    floor = str(BENCH_APPS / "floor.py")
    request = encoder.encode(EvalRequest(request_id="r1", frame_id="f" * 32, code=CODE))
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.curve_server = True
    router.curve_secretkey = keys.server_secret_key(secret).encode()
    zmq_port = router.bind_to_random_port("tcp://127.0.0.1")
    echo = _started(workdir, "floor-echo", floor, "echo", f"tcp://127.0.0.1:{zmq_port}", secret)
    try:
        if not router.poll(20_000):
            raise RuntimeError("the floor's echo process did not connect")
        identity, _ = router.recv_multipart()

        def ask() -> None:
            router.send_multipart([identity, request])
            if not router.poll(20_000):
                raise RuntimeError("no echo")
            router.recv_multipart()

        hop = _time_evals(ask, count)
    finally:
        echo.stop()
        router.close(linger=0)
        context.term()
    http_port, zmq_port = free_port(), free_port()
    relay = _started(workdir, "floor-relay", floor, "relay", str(http_port), str(zmq_port), secret)
    try:
        echo = _started(
            workdir, "floor-echo-2", floor, "echo", f"tcp://127.0.0.1:{zmq_port}", secret
        )
        try:
            relay.wait_until(
                lambda: http("GET", f"http://127.0.0.1:{http_port}/ready").status == 200,
                "the relay",
            )
            pipeline = asyncio.run(_floor_socket(http_port, count))
        finally:
            echo.stop()
    finally:
        relay.stop()
    return {"hop": hop, "pipeline": pipeline}


def _started(workdir: Path, name: str, *command: str) -> Process:
    """``python COMMAND...`` started, its output in ``workdir/NAME.log``."""
    process = Process(name, [sys.executable, *command], workdir / f"{name}.log", app_env())
    process.start()
    return process


async def _floor_socket(port: int, count: int) -> list[float]:
    """Round trips of the dashboard's eval message through the floor's relay."""
    text = json.dumps(
        {
            "type": "eval",
            "code": CODE,
            "interactive": True,
            "name": "bench",
            "id": 1,
            "console": "reports/r/frames/0",
        }
    )
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as socket:
            for _ in range(min(count, 20)):
                await socket.send_str(text)
                json.loads(await socket.receive_str(timeout=20))
            samples = []
            for _ in range(count):
                started = time.perf_counter()
                await socket.send_str(text)
                json.loads(await socket.receive_str(timeout=20))  # as the benchmark's client
                samples.append(time.perf_counter() - started)
            return samples


def run(settings: Settings) -> list[Row]:
    """Rows: p50 and p99 round trip of evals and completions as the dashboard makes them
    (WebSocket), the HTTP API's, Werkzeug's (in-process console), the agent hop alone and
    the broker's HTTP floor."""
    count = 20 if settings.quick else 1_000
    (settings.workdir / "console").mkdir(parents=True, exist_ok=True)
    broker = start_broker(settings, "console-broker")
    try:
        samples, _ = _ours(settings, broker, count)
    finally:
        broker.stop()
    werkzeug = _werkzeug(settings, count)
    hop = _agent_hop(settings, count)
    floor = _floor(settings, count)
    rows = []
    section = "3 console round trip"
    for key, what in (
        ("ws", "evals (dashboard: WebSocket -> broker -> agent)"),
        ("ws_complete", "completions (dashboard: WebSocket)"),
    ):
        for name, fraction, factor in (("p50", 0.5, 0.6), ("p99", 0.99, 1.5)):
            mine = percentile(samples[key], fraction) * 1e3
            theirs = percentile(werkzeug, fraction) * 1e3
            met = None if settings.quick else mine <= theirs * factor
            if name == "p50" and met is not None:
                met = met and mine <= 0.5
            target = "<= 0.5 ms, <= 0.6x Werkzeug" if name == "p50" else "<= 1.5x Werkzeug"
            rows.append(
                Row(section, f"{name} over {count} {what}", mine, theirs, "ms", target, met)
            )
    for key, what in (("http", "evals"), ("http_complete", "completions")):
        mine = percentile(samples[key], 0.5) * 1e3
        note = f"p99 {percentile(samples[key], 0.99) * 1e3:.2f} ms; one keep-alive connection"
        rows.append(
            Row(
                section,
                f"p50 over {count} {what} (HTTP API, for scripts)",
                mine,
                percentile(werkzeug, 0.5) * 1e3,
                "ms",
                "-",
                None,
                note,
            )
        )
    for key, what, rest in (
        (
            "eval",
            "evals",
            "; the rest of the full round trip is the broker: the WebSocket message, the audit "
            "row appended to its journal before the code is sent, the relay's asyncio side of "
            "the hop (over HTTP, also the commit of the transcript entry and the audit outcome "
            "before the answer)",
        ),
        ("complete", "completions", ""),
    ):
        mine = percentile(hop[key], 0.5) * 1e3
        rows.append(
            Row(
                section,
                f"p50 of the agent hop alone, {what} (bare ZeroMQ ROUTER -> agent)",
                mine,
                percentile(werkzeug, 0.5) * 1e3,
                "ms",
                "<= 0.3 ms",
                None if settings.quick else mine <= 0.3,
                f"p99 {percentile(hop[key], 0.99) * 1e3:.2f} ms{rest}",
            )
        )
    werkzeug_p50 = percentile(werkzeug, 0.5) * 1e3
    for key, what, note in (
        (
            "pipeline",
            "the dashboard's path with no work in it (WebSocket -> aiohttp relay -> CurveZMQ echo)",
            "the same eval message as the first row through apps/floor.py: a WebSocket to an "
            "aiohttp process that relays it over CurveZMQ to a thread polling as the agent's "
            "does, which sends it straight back; no auth, audit, eval or repr. What the first "
            "row spends above this is debugbroker's work",
        ),
        (
            "hop",
            "a CurveZMQ round trip with no work in it (ROUTER -> echo thread)",
            "the agent hop's path to apps/floor.py's echo: what the agent hop rows spend above "
            "this is the agent's work (decode, eval, repr, encode)",
        ),
    ):
        floor_samples = floor[key]
        rows.append(
            Row(
                section,
                f"p50 of {what}",
                percentile(floor_samples, 0.5) * 1e3,
                werkzeug_p50,
                "ms",
                "-",
                None,
                f"p99 {percentile(floor_samples, 0.99) * 1e3:.2f} ms; {note}",
            )
        )
    rows.append(
        Row(
            section,
            "p50 of GET /api/status alone (the broker's HTTP + auth floor)",
            percentile(samples["status"], 0.5) * 1e3,
            percentile(werkzeug, 0.5) * 1e3,
            "ms",
            "-",
            None,
            f"p99 {percentile(samples['status'], 0.99) * 1e3:.2f} ms; same keep-alive connection",
        )
    )
    return rows


def run_after_burst(settings: Settings) -> list[Row]:
    """Rows: p50 and p99 round trip after a burst of errors that fills the held frames."""
    count = 20 if settings.quick else 300
    burst = 5 if settings.quick else BURST_ERRORS
    (settings.workdir / "console").mkdir(parents=True, exist_ok=True)
    broker = start_broker(settings, "console-burst-broker")
    try:
        samples, stats = _ours(settings, broker, count, burst)
        ours = samples["ws"]
    finally:
        broker.stop()
    werkzeug = _werkzeug(settings, count, burst)
    held = (
        f"{burst} errors of 31 frames with large locals, then the eval's own; the agent "
        f"held {stats['held_reports']} reports, {stats['held_bytes'] / 2**20:.1f} MB "
        f"({stats['held_frames']} frames) before the evals; Werkzeug holds every frame"
    )
    rows = []
    for name, fraction, factor in (("p50", 0.5, 1.0), ("p99", 0.99, 2.0)):
        mine, theirs = percentile(ours, fraction) * 1e3, percentile(werkzeug, fraction) * 1e3
        rows.append(
            Row(
                "3b console after a burst",
                f"{name} over {count} evals after {burst} errors (held-frame caps reached; "
                "WebSocket)",
                mine,
                theirs,
                "ms",
                "<= Werkzeug" if factor == 1.0 else "<= 2x Werkzeug",
                None if settings.quick else mine <= theirs * factor,
                held if name == "p50" else "",
            )
        )
    return rows
