"""6. Dashboard: bundle size, first render of a big report, a 10,000-report list.

Headless Debian Chromium driven by Playwright against a real broker. The reports come from a
real agent (in this process) raising real errors: one big report (the 31-frame traceback
with large locals of benchmark 2) and many small ones.

- Bundle: ``broker/static/app.js`` gzipped at level 9 (and the CSS), against Werkzeug's
  debugger page assets (``debugger.js`` + ``style.css``) gzipped the same way.
- First render: navigation to ``/#/reports/{id}`` until all 31 frames are in the DOM and
  those on screen show their source and locals (polled each animation frame),
  read as ``performance.now()`` in the page (from navigation start: HTML, bundle, the API
  call with highlighting, rendering). The median is over a returning user's loads: the
  browser has the dashboard's versioned bundle and CSS cached from an earlier visit (the
  login) and asks the broker for the page and the report only. A first visit (a new
  browser context, nothing cached) is measured apart, as its own row. Werkzeug: navigation
  to the failing URL until its debugger page has loaded (its server renders the page while
  handling the error).
- List: ``/`` until the first rows show ("open"), then scrolling the list to its end while
  older reports load, one step per animation frame ("scroll": total time, and the longest
  and 95th-percentile frame).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import werkzeug.debug

from debugbroker import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport

from .common import (
    BENCH_APPS,
    ROOT,
    Broker,
    Process,
    Row,
    Settings,
    app_env,
    free_port,
    http,
    start_broker,
    stored_reports,
    wait_for,
)
from .error_path import FRAMES, deep_app

__all__ = ["run"]

BUNDLE_TARGET_KB = 60.0
RENDER_TARGET_MS = 200.0
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KB = 1024


def _gzipped(*paths: Path) -> int:
    return sum(len(gzip.compress(path.read_bytes(), compresslevel=9)) for path in paths)


def _bundle_rows(settings: Settings) -> list[Row]:
    static = ROOT / "broker" / "static"
    shared = Path(werkzeug.debug.__file__).parent / "shared"
    js = _gzipped(static / "app.js") / KB
    css = _gzipped(static / "app.css") / KB
    werkzeug_js = _gzipped(shared / "debugger.js") / KB
    werkzeug_all = _gzipped(shared / "debugger.js", shared / "style.css") / KB
    return [
        Row(
            "6 dashboard",
            "JS bundle, gzip -9 (app.js)",
            js,
            werkzeug_js,
            "KB",
            f"<= {BUNDLE_TARGET_KB:.0f} KB",
            js <= BUNDLE_TARGET_KB,
            f"with CSS {js + css:.1f} KB; Werkzeug debugger.js + style.css {werkzeug_all:.1f} KB "
            "(Werkzeug renders its page on the server)",
        )
    ]


def _small_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise KeyError(f"missing item {environ['n']}")


def _call(app: Any, environ: dict[str, Any]) -> None:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/list",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    b"".join(app(base | environ, lambda *args: None))


def _fill(broker: Broker, count: int) -> str:
    """Raise ``count`` small errors and one big one through a real agent; the big one's id."""
    options = Options(
        broker_url=broker.zmq_url,
        secret=broker.secret,
        app_name="dashboard-bench",
        queue_size=count + 10,
        held_reports=8,
        repeat_burst=0,  # every error a stored report (the storm policy would count them)
    )
    transport = get_transport(options)
    try:
        if not transport.wait_connected(20):
            raise RuntimeError("the agent did not connect")
        small = DebuggedApplication(_small_app, options=options)
        for n in range(count):
            _call(small, {"n": n})
            if n % 500 == 0:  # keep the queue short: the broker stores as we go
                wait_for(lambda: transport.queued_reports < 1_000, 120, "the queue to drain")
        big = DebuggedApplication(deep_app, options=options)
        environ: dict[str, Any] = {"HTTP_ACCEPT": "text/plain"}
        _call(big, environ)
        wait_for(lambda: stored_reports(broker) >= count + 1, 300, f"{count + 1} stored reports")
        newest = broker.get("/api/reports?limit=1").json()["reports"][0]
        if newest["type_name"] != "ValueError":
            raise RuntimeError(f"the newest report is {newest['type_name']}, not the big one")
        return str(newest["id"])
    finally:
        transport.close()


_REPORT_FETCHED = """
(id) => {
  const entry = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/reports/' + id) && !e.name.includes('/source'))
    .pop();
  return entry ? entry.responseEnd : -1;
}
"""
# Installed before any page script (add_init_script), so that the times do not depend on when
# Playwright gets to ask: on every animation frame of a report page, "shown" is noted once all
# the frames are in the DOM and every frame on screen shows its source and locals (bodies
# further down render when scrolled near, or when the browser is idle), "complete" once no
# frame body is pending any more.
_RENDER_WATCH = """
(() => {
  if (!location.hash.startsWith('#/reports/')) return;
  const shown = SHOWN;
  const frames = () => document.querySelectorAll('[data-testid=frame]');
  const onScreenReady = () => [...frames()].every((frame) => {
    const box = frame.getBoundingClientRect();
    const visible = box.bottom > 0 && box.top < window.innerHeight;
    return !visible || frame.querySelector('[data-pending]') === null;
  });
  const times = {};
  const check = () => {
    if (times.shown === undefined && frames().length >= shown && onScreenReady()) {
      times.shown = performance.now();
    }
    if (times.shown !== undefined
        && document.querySelector('[data-testid=frame] [data-pending]') === null) {
      times.complete = performance.now();
      window.__firstRender = times;
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();
"""
_RENDERED = """
async () => {
  const deadline = performance.now() + 30000;
  while (window.__firstRender === undefined) {
    if (performance.now() > deadline) throw new Error('the report did not render');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return window.__firstRender;
}
"""
_LOAD_TIME = "performance.timing.loadEventEnd - performance.timing.navigationStart"
_SCROLL_SCRIPT = """
async ([deadlineMs]) => {
  const rows = () => document.querySelectorAll('[data-testid=report-row]');
  const list = document.querySelector('.report-list');
  let scroller = list;
  while (scroller && scroller.scrollHeight <= scroller.clientHeight + 1) {
    scroller = scroller.parentElement;
  }
  if (!scroller) scroller = document.scrollingElement;
  const frames = [];
  const start = performance.now();
  let last = start;
  let stillAtEnd = 0;
  while (performance.now() - start < deadlineMs) {
    scroller.scrollTop += 3000;
    await new Promise((resolve) => requestAnimationFrame(resolve));
    const now = performance.now();
    frames.push(now - last);
    last = now;
    const atEnd = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 2;
    stillAtEnd = atEnd ? stillAtEnd + 1 : 0;
    if (stillAtEnd > 60) break;  // a second at the end with nothing more loading
  }
  const heights = scroller.scrollHeight;
  return {frames, total: performance.now() - start, rowsInDom: rows().length, heights};
}
"""


def _first_visit(browser: Any, broker: Broker, report_id: str, shown: int) -> float:
    """The first render of the report in a new browser context: an empty cache."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        context.add_init_script(_RENDER_WATCH.replace("SHOWN", str(shown)))
        # Log in without loading the dashboard (the context's requests share its cookies);
        # the tab gets the session key as the dashboard keeps it, in sessionStorage.
        login = context.request.post(
            f"{broker.url}/login", data={"token": broker.token}, headers={"Origin": broker.url}
        )
        if login.status != 200:
            raise RuntimeError(f"the login answered {login.status}, not 200")
        key = json.dumps(login.json()["key"])
        context.add_init_script(f"sessionStorage.setItem('debugbroker:session-key', {key})")
        page = context.new_page()
        page.goto(f"{broker.url}/#/reports/{report_id}")
        return float(page.evaluate(_RENDERED)["shown"])
    finally:
        context.close()


def _wait_for_rows(page: Any, broker: Broker, refused: list[str], clock_offset: float) -> None:
    """Wait for the list's first rows; when they never come, say what the page shows, which
    answers the broker refused, whether the wall clock was stepped, and the broker's log."""
    try:
        page.wait_for_selector("[data-testid=report-row]", timeout=30_000)
    except Exception as error:
        try:
            shown = page.inner_text("body")[:1500]
        except Exception as unreadable:
            shown = f"(the page could not be read: {unreadable!r})"
        step = time.time() - time.monotonic() - clock_offset
        log = broker.process.output()[-3000:] if broker.process is not None else "(not started)"
        raise RuntimeError(
            f"no report row showed on {page.url} within 30 s; the page shows:\n{shown}\n"
            f"answers of 400 and over the page saw: {refused[-20:] or 'none'}\n"
            f"the wall clock moved {step:+.3f} s against the monotonic one during the run\n"
            f"the broker's log ends:\n{log}"
        ) from error


def _browser_rows(settings: Settings, broker: Broker, report_id: str, count: int) -> list[Row]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    werkzeug_port = free_port()
    werkzeug_server = Process(
        "werkzeug-deep",
        [sys.executable, str(BENCH_APPS / "werkzeug_deep.py"), str(werkzeug_port)],
        settings.workdir / "dashboard" / "werkzeug.log",
        app_env(),
    )
    werkzeug_server.start()
    loads = 3 if settings.quick else 15
    first_visits = 2 if settings.quick else 5
    report = broker.report(report_id)
    shown = sum(1 for f in report["exceptions"][-1]["frames"] if not f.get("hidden"))
    try:
        werkzeug_server.wait_until(
            lambda: http("GET", f"http://127.0.0.1:{werkzeug_port}/").status == 200, "werkzeug"
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                context.add_init_script(_RENDER_WATCH.replace("SHOWN", str(shown)))
                page = context.new_page()
                refused: list[str] = []
                page.on(
                    "response",
                    lambda answer: (
                        refused.append(f"{answer.status} {answer.url}")
                        if answer.status >= 400
                        else None
                    ),
                )
                clock_offset = time.time() - time.monotonic()
                page.goto(broker.login_url())
                page.wait_for_url(f"{broker.url}/")
                ours: list[float] = []
                fetched: list[float] = []
                complete: list[float] = []
                for _ in range(loads):
                    page.goto("about:blank")
                    page.goto(f"{broker.url}/#/reports/{report_id}")
                    times = page.evaluate(_RENDERED)
                    ours.append(float(times["shown"]))
                    complete.append(float(times["complete"]))
                    fetched.append(float(page.evaluate(_REPORT_FETCHED, report_id)))
                cold = [
                    _first_visit(browser, broker, report_id, shown) for _ in range(first_visits)
                ]
                theirs: list[float] = []
                for _ in range(loads):
                    page.goto("about:blank")
                    page.goto(f"http://127.0.0.1:{werkzeug_port}/deep", wait_until="load")
                    theirs.append(float(page.evaluate(_LOAD_TIME)))
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(f"{broker.url}/#/reports")  # the flat list (the home is the groups)
                _wait_for_rows(page, broker, refused, clock_offset)
                opened = (time.perf_counter() - started) * 1e3
                scroll = page.evaluate(_SCROLL_SCRIPT, [10_000 if settings.quick else 60_000])
                loaded_text = page.get_by_test_id("report-count").inner_text()
                context.close()
            finally:
                browser.close()
    finally:
        werkzeug_server.stop()
    frames = sorted(scroll["frames"]) or [0.0]
    p95 = frames[min(len(frames) - 1, int(0.95 * len(frames)))]
    render = statistics.median(ours)
    return [
        Row(
            "6 dashboard",
            f"first render of a {FRAMES}-frame report (median of {loads})",
            render,
            statistics.median(theirs),
            "ms",
            f"<= {RENDER_TARGET_MS:.0f} ms",
            None if settings.quick else render <= RENDER_TARGET_MS,
            f"until the {shown} shown frames are in the DOM (the agent's own frame is hidden) "
            "and those on screen show source and locals; a returning user's loads (the "
            "versioned bundle and CSS are cached from the login); the rest rendered "
            f"at {statistics.median(complete):.0f} ms; "
            f"the report's JSON had arrived at {statistics.median(fetched):.0f} ms; "
            "Werkzeug: its debugger page for the same error, load event",
        ),
        Row(
            "6 dashboard",
            f"first render, first visit (nothing cached; median of {first_visits})",
            statistics.median(cold),
            None,
            "ms",
            "-",
            None,
            "the same report in a new browser context: the HTML, bundle and CSS come from "
            f"the broker; {', '.join(f'{ms:.0f}' for ms in cold)} ms",
        ),
        Row(
            "6 dashboard",
            f"{count:,}-report list: open",
            opened,
            None,
            "ms",
            "smooth",
            None,
            "navigation until the first rows show",
        ),
        Row(
            "6 dashboard",
            f"{count:,}-report list: scroll to the end",
            float(scroll["total"]),
            None,
            "ms",
            "smooth",
            None if settings.quick else p95 <= 50.0,
            f"frames: p95 {p95:.0f} ms, longest {frames[-1]:.0f} ms, {len(frames)} frames; "
            f"{scroll['rowsInDom']} rows in the DOM at the end; list says {loaded_text!r}",
        ),
    ]


def run(settings: Settings) -> list[Row]:
    """Rows: bundle size, big report first render, list open and scroll."""
    rows = _bundle_rows(settings)
    count = 200 if settings.quick else 10_000
    (settings.workdir / "dashboard").mkdir(parents=True, exist_ok=True)
    # Every report kept (the list shows stored reports; by default a group keeps 20 of them).
    broker = start_broker(
        settings,
        "dashboard-broker",
        "--keep-latest",
        str(count + 10),
        "--max-reports",
        str(count + 1_000),
    )
    try:
        report_id = _fill(broker, count)
        rows += _browser_rows(settings, broker, report_id, count)
    finally:
        broker.stop()
    return rows
