"""Run the benchmarks and print the table: ``python -m benchmarks [--quick] [--only NAME,...]``.

Every benchmark measures Werkzeug's ``DebuggedApplication`` in the same run where a
comparison makes sense, and the table shows the ratio. ``--quick`` only checks that each
benchmark runs end to end (small counts, no verdicts); a benchmark that fails is reported
and makes the exit status 1. ``--markdown`` prints the table as Markdown (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import (
    breakpoints,
    console,
    dashboard,
    error_path,
    handled_errors,
    happy_path,
    memory,
    retention,
    storm,
)
from .common import Row, Settings

__all__ = ["BENCHMARKS", "main", "machine", "format_table"]

BENCHMARKS: dict[str, Callable[[Settings], list[Row]]] = {
    "happy_path": happy_path.run,
    "error_path": error_path.run,
    "console": console.run,
    "console_burst": console.run_after_burst,
    "storm": storm.run,
    "memory": memory.run,
    "dashboard": dashboard.run,
    "handled_errors": handled_errors.run,
    "retention": retention.run,
    "idle_breakpoint": breakpoints.run,
}


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
        "load average": load,
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(row: Row) -> str:
    return {True: "yes", False: "NO", None: "-"}[row.met]


def format_table(rows: Sequence[Row], markdown: bool) -> str:
    """The rows as an aligned text table, or as a Markdown table."""
    header = ["benchmark", "metric", "debugbroker", "Werkzeug", "ratio", "unit", "target", "met"]
    lines = [
        [
            row.benchmark,
            row.metric,
            _number(row.ours),
            _number(row.werkzeug),
            f"{row.ratio:.2f}x" if row.ratio is not None else "-",
            row.unit,
            row.target,
            _verdict(row),
        ]
        for row in rows
    ]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines]
        notes = [f"- **{row.benchmark}, {row.metric}**: {row.note}" for row in rows if row.note]
        return "\n".join(out + ([""] + notes if notes else []))
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    out.append("  ".join("-" * width for width in widths))
    out += [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    notes = [f"  {row.benchmark} / {row.metric}: {row.note}" for row in rows if row.note]
    return "\n".join(out + (["", "notes:", *notes] if notes else []))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, print the table; 1 if any benchmark failed to run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only check every benchmark runs")
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--reports",
        type=int,
        default=None,
        metavar="N",
        help="reports to ingest in 'retention' (default 1,000,000; --quick 3,000)",
    )
    arguments = parser.parse_args(argv)
    chosen = [name.strip() for name in arguments.only.split(",") if name.strip()] or list(
        BENCHMARKS
    )
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if arguments.reports is not None and arguments.reports < 1:
        parser.error("--reports must be at least 1")
    info = machine()
    print("machine: " + "; ".join(f"{key} {value}" for key, value in info.items()), flush=True)
    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="debugbroker-bench-") as workdir:
        settings = Settings(quick=arguments.quick, workdir=Path(workdir), reports=arguments.reports)
        for name in chosen:
            started = time.monotonic()
            print(f"running {name}...", file=sys.stderr, flush=True)
            try:
                rows += BENCHMARKS[name](settings)
            except Exception:
                failed.append(name)
                print(f"benchmark {name} FAILED:\n{traceback.format_exc()}", file=sys.stderr)
            print(f"  {name}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    print(format_table(rows, arguments.markdown))
    print(f"load average at the end: {machine()['load average']}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
