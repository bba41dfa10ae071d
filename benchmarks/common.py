"""What every benchmark shares: the result row, timing helpers, RSS, and the real processes.

The processes (a real broker, app servers) come from ``tests/conftest.py``, so benchmarks
and tests start them the same way; ``python -m benchmarks`` must run from the repository root.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import APPS, ROOT, Broker, Process, base_env, free_port, http, wait_for

__all__ = [
    "APPS",
    "BENCH_APPS",
    "ROOT",
    "Broker",
    "Process",
    "Row",
    "Settings",
    "base_env",
    "best_per_call",
    "free_port",
    "gc_paused",
    "gunicorn_command",
    "http",
    "percentile",
    "rss_bytes",
    "wait_for",
    "start_broker",
    "stored_reports",
    "children_of",
    "app_env",
]

BENCH_APPS = Path(__file__).resolve().parent / "apps"


@dataclass(frozen=True, slots=True)
class Settings:
    """How hard to run: ``quick`` only checks that every benchmark works end to end."""

    quick: bool
    workdir: Path
    reports: int | None = None  # ``--reports N``: the size of the benchmarks that take one


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: our number, Werkzeug's (same run), the target and the verdict."""

    benchmark: str
    metric: str
    ours: float | None
    werkzeug: float | None
    unit: str
    target: str
    met: bool | None  # None: no target, or not judged (quick mode)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Ours divided by Werkzeug's (below 1 is better for times and sizes)."""
        if self.ours is None or not self.werkzeug:
            return None
        return self.ours / self.werkzeug


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect first, then keep the cyclic GC out of a timed loop."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def best_per_call(run: Callable[[int], float], loops: int, repeats: int) -> float:
    """The best (least disturbed) per-call time of ``run(loops)`` over ``repeats`` runs."""
    return min(run(loops) / loops for _ in range(repeats))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.5 = median) by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process from ``/proc`` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def app_env(broker: Broker | None = None, **extra: str) -> dict[str, str]:
    """Environment for an app process: the benchmark apps importable, the agent configured."""
    env = broker.agent_env(**extra) if broker is not None else base_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_APPS), env["PYTHONPATH"]])
    return env


def gunicorn_command(port: int, app: str, workers: int = 1, *extra: str) -> list[str]:
    """``gunicorn -w WORKERS`` on 127.0.0.1:PORT serving ``app`` (a benchmarks/apps module)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        *extra,
        app,
    ]


def start_broker(settings: Settings, name: str, *extra_args: str) -> Broker:
    """A real broker process with its own directory under the run's work directory."""
    workdir = settings.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    return Broker(workdir, *extra_args).start()


def stored_reports(broker: Broker) -> int:
    """How many reports the broker stored: its groups' counts, read from its SQLite file
    (retention keeps fewer full reports than it counts)."""
    path = broker.data_dir / "debugbroker.sqlite3"
    with (
        closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as connection,
        connection,
    ):
        # Every report counted in its group (retention keeps fewer full reports).
        (count,) = connection.execute("SELECT COALESCE(SUM(total), 0) FROM groups").fetchone()
    return int(count)


def now() -> float:
    return time.perf_counter()


PYTHON = sys.executable
