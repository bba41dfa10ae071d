"""8. Days of errors: N reports of 1,000 fingerprints into a real broker, then reads.

A real ``debugbroker serve`` with its default retention; a real zmq DEALER says hello and
sends ``ReportMessage``s encoded by the agent's encoder (the agent protocol), with
heartbeats, as fast as the broker takes them (zmq's high-water mark paces the sender). Each
report has a frame with a few locals (about 2 KB of JSON); its function name picks one of
1,000 fingerprints. Measured: the ingest rate (first send to the last report stored), the
same ingest into today's broker just before (the code before issue 19's store, ``BASELINE_COMMIT``
taken from this repository's history, or ``DEBUGBROKER_BENCH_BASELINE``: another commit or a
checkout; at most ``_BASELINE_MAX`` reports, as it keeps every one) against this broker's rate
over as many first reports (from its progress, read twice a second), the data dir's size,
``GET /api/reports``, ``GET /api/groups`` and a search's p50/p95 (and the first search's
time: it indexes the reports stored in the last minute, see ``search``), the broker's RSS, and
whether the groups' counts add up to N exactly. N: ``--reports N``, else
``DEBUGBROKER_BENCH_REPORTS``, else one million (``--quick``: 3,000).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from debugbroker.protocol import (
    ExceptionInfo,
    FrameInfo,
    Heartbeat,
    Report,
    ReportMessage,
    ReprNode,
    Variable,
    Welcome,
)
from debugbroker.protocol.encoder import encode
from tests.broker.test_security_agents import RawAgent

from .common import ROOT, Broker, Row, Settings, percentile, rss_bytes

__all__ = ["BASELINE_COMMIT", "run"]

FINGERPRINTS = 1_000
FULL_N = 1_000_000
QUICK_N = 3_000
# Today's broker: main just before issue 19's store (groups, retention, search) was merged.
BASELINE_COMMIT = "6c891db4fe93949e30397005eb7536244c26c37a"
_BASELINE_MAX = 100_000  # it keeps every report: about 5 KB each on disk
_READS = 40
MB = 1024 * 1024


def _report(agent_id: str, number: int) -> Report:
    kind = number % FINGERPRINTS
    frame = FrameInfo(
        index=0,
        frame_id=None,
        filename="shop/views.py",
        lineno=40 + kind % 7,
        function=f"view_{kind}",
        module="shop.views",
        context_start=38,
        context=("def view(request):", "    cart = load(request)", "    raise ValueError(cart)"),
        locals=tuple(
            Variable(
                name=f"local_{index}",
                value=ReprNode(kind="str", type_name="str", text=f"'value {index} of {number}'"),
            )
            for index in range(12)
        ),
    )
    return Report(
        id=uuid.uuid4().hex,
        agent_id=agent_id,
        created=time.time(),
        type_name="ValueError",
        message=f"cart {number} of kind {kind} is invalid",
        text="Traceback (most recent call last):\n  File shop/views.py\nValueError: cart\n" * 8,
        exceptions=(
            ExceptionInfo(
                type_name="ValueError", module="builtins", message="cart", frames=(frame,)
            ),
        ),
        pid=os.getpid(),
        host="bench",
        app="shop",
    )


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, all its threads (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ingest(broker: Broker, count: int, mark: int = 0) -> tuple[float, float, float | None]:
    """``_send``: the reports per second, the broker's CPU µs per report meanwhile, and the
    rate over the first ``mark`` reports (None without a mark or when the samples miss it)."""
    pid = broker.process.pid if broker.process else 0
    cpu = _cpu_seconds(pid)
    seconds, samples = _send(broker, count)
    return count / seconds, (_cpu_seconds(pid) - cpu) / count * 1e6, _rate_at(samples, mark)


def _rate_at(samples: list[tuple[float, int]], mark: int) -> float | None:
    """The rate over the first ``mark`` reports: when the stored count crossed ``mark``,
    interpolated between the progress samples (seconds, stored) on either side of it."""
    if mark <= 0:
        return None
    before = (0.0, 0)
    for after in samples:
        if after[1] >= mark:
            (t0, n0), (t1, n1) = before, after
            crossed = t0 + (t1 - t0) * (mark - n0) / max(1, n1 - n0)
            return mark / crossed if crossed > 0 else None
        before = after
    return None


def _send(broker: Broker, count: int) -> tuple[float, list[tuple[float, int]]]:
    """Send ``count`` reports as one agent; the seconds until the broker counted them all,
    and the progress read about twice a second: (seconds since the first send, stored)."""
    agent = RawAgent(broker.zmq_url, secret=broker.secret)  # the agent's socket and keys
    samples: list[tuple[float, int]] = []
    try:
        if not isinstance(agent.hello(broker.secret, agent.identity.decode()), Welcome):
            raise RuntimeError("the broker did not welcome the benchmark agent")
        identity = agent.identity.decode()
        socket = agent.socket
        started = time.perf_counter()
        beat = time.monotonic()
        for number in range(count):
            socket.send(encode(ReportMessage(report=_report(identity, number))))
            if time.monotonic() - beat > 0.5:
                socket.send(encode(Heartbeat(held_frames=0)))
                beat = time.monotonic()
                while socket.poll(0):
                    socket.recv_multipart()  # acknowledgements and requests: not answered
                samples.append((time.perf_counter() - started, _stored(broker)))
        deadline = time.monotonic() + max(120.0, count / 200)
        while (stored := _stored(broker)) < count:
            samples.append((time.perf_counter() - started, stored))
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stored} of {count} reports were stored")
            socket.send(encode(Heartbeat(held_frames=0)))
            while socket.poll(0):
                socket.recv_multipart()
            time.sleep(0.2)  # polling the broker's count, not a synchronisation
        seconds = time.perf_counter() - started
        samples.append((seconds, count))
        return seconds, samples
    finally:
        agent.close()


def _stored(broker: Broker) -> int:
    """The reports the broker says it stored (counted) so far: a cheap read to poll."""
    answer = broker.get("/api/status")
    return int(answer.json()["relay"]["reports"]) if answer.status == 200 else 0


def _seen(broker: Broker) -> int:
    """The reports the groups counted: their totals."""
    answer = broker.get("/api/groups?limit=1000")
    if answer.status != 200:
        return 0
    return sum(int(group["count"]) for group in answer.json()["groups"])


def _timed(broker: Broker, path: str) -> tuple[float, float]:
    """p50 and p95 in ms of ``_READS`` GETs of ``path``."""
    samples = []
    for _ in range(_READS):
        started = time.perf_counter()
        answer = broker.get(path)
        samples.append((time.perf_counter() - started) * 1e3)
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status} {answer.text[:200]}")
    return percentile(samples, 0.5), percentile(samples, 0.95)


def _data_size(broker: Broker) -> int:
    return sum(path.stat().st_size for path in broker.data_dir.glob("debugbroker.sqlite3*"))


def baseline_code(workdir: Path) -> tuple[Path, str] | None:
    """Today's broker's code and its name: a checkout, or a commit of this repository
    extracted into ``workdir``; None when git cannot give it (a shallow clone)."""
    chosen = os.environ.get("DEBUGBROKER_BENCH_BASELINE", BASELINE_COMMIT)
    if Path(chosen, "broker").is_dir():
        return Path(chosen), chosen
    target = workdir / "baseline-code"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", chosen],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target, f"commit {chosen[:12]}"


def run(settings: Settings) -> list[Row]:
    """Ingest, then read: one row per measure."""
    count = settings.reports or (
        QUICK_N if settings.quick else int(os.environ.get("DEBUGBROKER_BENCH_REPORTS", FULL_N))
    )
    workdir = settings.workdir / "retention"
    workdir.mkdir(parents=True, exist_ok=True)
    # Today's broker first, then this one: the rate ratio compares the same number of reports
    # (today's broker keeps every one, so at most ``_BASELINE_MAX``) ingested one right after
    # the other, so that the machine's load changes as little as it can between the two.
    baseline_rate: float | None = None
    baseline_cpu: float | None = None
    base_count = min(count, _BASELINE_MAX)
    baseline_note = "no baseline run"
    code = None if settings.quick else baseline_code(settings.workdir)
    if code is not None:
        base_dir = settings.workdir / "retention-baseline"
        base_dir.mkdir(parents=True, exist_ok=True)
        baseline = Broker(base_dir, "--agent-timeout", "30", code=code[0]).start()
        try:
            baseline_rate, baseline_cpu, _ = _ingest(baseline, base_count)
        finally:
            baseline.stop()
        baseline_note = f"today's broker ({code[1]}): {baseline_rate:,.0f}/s over {base_count:,}"
    broker = Broker(workdir, "--agent-timeout", "30").start()
    try:
        rate, cpu, first_rate = _ingest(broker, count, base_count if code is not None else 0)
        groups = broker.get("/api/groups?limit=1000").json()["groups"]
        exact = len(groups) == min(count, FINGERPRINTS) and _seen(broker) == count
        kept = sum(int(group["kept"]) for group in groups)
        list_p50, list_p95 = _timed(broker, "/api/reports?limit=50")
        groups_p50, groups_p95 = _timed(broker, "/api/groups?limit=50")
        started = time.perf_counter()  # the first one indexes the reports not yet indexed
        broker.get("/api/reports?limit=50&q=kind+77")
        first_search = (time.perf_counter() - started) * 1e3
        search_p50, search_p95 = _timed(broker, "/api/reports?limit=50&q=kind+77")
        rss = rss_bytes(broker.process.pid if broker.process else 0) / MB
        size = _data_size(broker) / MB
    finally:
        broker.stop()
    judged = None if settings.quick else True
    return [
        Row(
            "8 days of errors",
            f"ingest, {count:,} reports of {FINGERPRINTS:,} fingerprints",
            rate,
            None,
            "reports/s",
            "",
            None,
            f"{count / rate:.1f} s for {count:,} reports"
            + (f"; {rate / baseline_rate:.2f}x {baseline_note}" if baseline_rate else ""),
        ),
        Row(
            "8 days of errors",
            f"ingest rate over the first {base_count:,} / today's broker's over as many",
            None if baseline_rate is None or first_rate is None else first_rate / baseline_rate,
            None,
            "x",
            ">= 1.00x",
            None
            if baseline_rate is None or first_rate is None or judged is None
            else first_rate >= baseline_rate,
            "run one after the other, today's first"
            + (f"; {first_rate:,.0f}/s against {baseline_note}" if first_rate else ""),
        ),
        Row(
            "8 days of errors",
            "broker CPU per report ingested (lower is better)",
            cpu,
            None,
            "µs",
            "",
            None,
            "all its threads, from /proc; "
            + (f"today's broker {baseline_cpu:,.0f} µs" if baseline_cpu else "no baseline run"),
        ),
        Row(
            "8 days of errors",
            "data dir size",
            size,
            None,
            "MB",
            "<= 1024 MB",
            None if judged is None else size <= 1024,
            f"{kept:,} full reports kept of {count:,}",
        ),
        Row(
            "8 days of errors",
            "counts exact (groups' totals = sent)",
            1.0 if exact else 0.0,
            None,
            "",
            "yes",
            exact,
        ),
        Row("8 days of errors", "GET /api/reports p50", list_p50, None, "ms", "", None),
        Row(
            "8 days of errors",
            "GET /api/reports p95",
            list_p95,
            None,
            "ms",
            "<= 20 ms",
            None if judged is None else list_p95 <= 20,
        ),
        Row("8 days of errors", "GET /api/groups p50", groups_p50, None, "ms", "", None),
        Row(
            "8 days of errors",
            "GET /api/groups p95",
            groups_p95,
            None,
            "ms",
            "<= 20 ms",
            None if judged is None else groups_p95 <= 20,
        ),
        Row(
            "8 days of errors",
            "first search after the ingest",
            first_search,
            None,
            "ms",
            "",
            None,
            "it indexes the reports stored in the last minute first",
        ),
        Row("8 days of errors", "search p50", search_p50, None, "ms", "", None),
        Row(
            "8 days of errors",
            "search p95",
            search_p95,
            None,
            "ms",
            "<= 50 ms",
            None if judged is None else search_p95 <= 50,
        ),
        Row("8 days of errors", "broker RSS at the end", rss, None, "MB", "", None),
    ]
