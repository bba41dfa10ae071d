"""5. Memory: many errors with a 1 MB local each, in one app process.

Each side runs in its own fresh process (``apps/memory_worker.py``) so that RSS is its own:
debugbroker with a real broker connected, Werkzeug as it is. debugbroker runs all 10,000
errors; Werkzeug keeps every frame it showed forever (about 1 MB each here), so it runs
fewer and its growth per error is projected to 10,000 (the note says how many ran).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .common import BENCH_APPS, ROOT, Row, Settings, app_env, start_broker, stored_reports, wait_for

__all__ = ["run"]

TARGET_MB = 50.0
MB = 1024 * 1024


def _worker(which: str, count: int, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(BENCH_APPS / "memory_worker.py"), which, str(count)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory worker ({which}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(settings: Settings) -> list[Row]:
    """Rows: RSS growth over the run (ours measured, Werkzeug projected from its run)."""
    ours_count, werkzeug_count = (300, 30) if settings.quick else (10_000, 300)
    broker = start_broker(settings, "memory")
    try:
        # Every error a full capture holding its 1 MB local (the held-frame caps are what
        # is measured): the storm policy off, or repeats would only be counted.
        ours = _worker("ours", ours_count, app_env(broker, DEBUGBROKER_REPEAT_BURST="0"))

        def settled() -> bool:  # the last reports may still be on their way to SQLite
            before = stored_reports(broker)
            time.sleep(0.5)
            return stored_reports(broker) == before

        wait_for(settled, 60, "the broker to store the last reports")
        stored = stored_reports(broker)
    finally:
        broker.stop()
    werkzeug = _worker("werkzeug", werkzeug_count, app_env())
    ours_growth = (ours["after"] - ours["before"]) / MB
    ours_peak = (ours["peak"] - ours["before"]) / MB
    werkzeug_growth = (werkzeug["after"] - werkzeug["before"]) / MB
    projected = werkzeug_growth * ours_count / werkzeug_count
    met = None if settings.quick else ours_peak <= TARGET_MB
    return [
        Row(
            "5 memory",
            f"RSS growth, {ours_count:,} errors with a 1 MB local",
            ours_peak,
            projected,
            "MB",
            f"<= {TARGET_MB:.0f} MB",
            met,
            f"ours: peak {ours_peak:.1f} MB, end {ours_growth:.1f} MB, "
            f"{int(ours['held_frames'])} frames held, {int(ours['dropped_reports'])} shed, "
            f"{stored} stored; Werkzeug: {werkzeug_growth:.0f} MB after {werkzeug_count} "
            f"errors ({int(werkzeug['held_frames'])} frames kept), projected linearly",
        )
    ]
