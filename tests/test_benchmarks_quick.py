"""The benchmarks' quick mode runs end to end, so CI catches a benchmark that broke.

No timing is asserted here (timings belong in ``benchmarks/``): only that every benchmark
ran, printed its rows, and that the error storm accounted for every 500 exactly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, base_env

EXPECTED_ROWS = (
    "1 happy path",
    "2 error -> 500",
    "3 console round trip",
    "4 error storm",
    "5 memory",
    "6 dashboard",
    "8 days of errors",
)


@pytest.mark.timeout(900)  # every benchmark once, each with its own servers
def test_quick_mode_runs_every_benchmark() -> None:
    env = base_env()
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    # The failing benchmark's traceback first: CI shows only the start of a long message.
    start = done.stderr.find("benchmark ")
    failures = done.stderr[start : start + 6000] if start >= 0 else done.stderr[-6000:]
    assert done.returncode == 0, f"{failures}\nstdout:\n{done.stdout}"
    for name in EXPECTED_ROWS:
        assert name in done.stdout, f"no row for {name}:\n{done.stdout}"
    accounting = next(
        line
        for line in done.stdout.splitlines()
        if "500s = stored + shed + queued + counted" in line
    )
    assert accounting.rstrip().endswith("yes"), accounting
    assert "FAILED" not in done.stderr


def test_an_unknown_benchmark_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nonsense"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown benchmark(s): nonsense" in done.stderr
