"""The dashboard's comfort features in headless Chromium, against a real broker.

Themes, the new-error count in the tab title, keyboard shortcuts and keyboard-only use,
an axe-core accessibility check, the virtualized list and permalinks.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Broker, wait_for

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage, Seed

pytest_plugins = ["tests.e2e.browser"]

LIGHT_BACKGROUND = "rgb(246, 247, 249)"
DARK_BACKGROUND = "rgb(13, 17, 23)"


def background(page: Page) -> str:
    value: str = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    return value


# --- themes ---------------------------------------------------------------------------------


def test_the_theme_follows_the_system_until_switched_and_the_switch_is_remembered(
    broker: Broker, open_page: OpenPage
) -> None:
    from tests.e2e.browser import log_in

    dark_page, _ = open_page(color_scheme="dark")
    log_in(dark_page, broker)
    switch = dark_page.get_by_test_id("theme-switch")
    expect(switch).to_have_text("◐ Theme: System")
    assert background(dark_page) == DARK_BACKGROUND

    light_page, _ = open_page(color_scheme="light")
    log_in(light_page, broker)
    assert background(light_page) == LIGHT_BACKGROUND

    # System → Light in the dark system: light wins, and stays after a reload.
    switch.click()
    expect(switch).to_have_text("☀ Theme: Light")
    expect(dark_page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(dark_page) == LIGHT_BACKGROUND
    dark_page.reload()
    expect(switch).to_have_text("☀ Theme: Light")
    assert background(dark_page) == LIGHT_BACKGROUND

    # Light → Dark, also in a second tab of the same browser (same storage).
    switch.click()
    expect(switch).to_have_text("☾ Theme: Dark")
    assert background(dark_page) == DARK_BACKGROUND
    second = dark_page.context.new_page()
    second.goto(broker.url + "/")
    expect(second.get_by_test_id("theme-switch")).to_have_text("☾ Theme: Dark")
    assert background(second) == DARK_BACKGROUND
    second.close()

    # Dark → System: the system's dark again; the other browser never changed.
    switch.click()
    expect(switch).to_have_text("◐ Theme: System")
    expect(dark_page.locator("html")).not_to_have_attribute("data-theme", "dark")
    assert background(dark_page) == DARK_BACKGROUND
    assert background(light_page) == LIGHT_BACKGROUND
    expect(light_page.get_by_test_id("theme-switch")).to_have_text("◐ Theme: System")


# --- tab title ------------------------------------------------------------------------------


def test_new_errors_are_counted_in_the_tab_title_until_the_list_is_seen(
    dashboard: Page, seed: Seed
) -> None:
    first = seed(1, "first")[0]
    rows = dashboard.get_by_test_id("report-row")
    expect(rows).to_have_count(1)
    expect(dashboard).to_have_title("debugbroker · 1 report")

    rows.first.locator("a").click()
    expect(dashboard).to_have_title("KeyError: 'first' · debugbroker")
    seed(1, "second")
    expect(dashboard).to_have_title("(1 new) KeyError: 'first' · debugbroker")
    seed(1, "third")
    expect(dashboard).to_have_title("(2 new) KeyError: 'first' · debugbroker")
    assert first.id in dashboard.url

    dashboard.go_back()
    expect(dashboard).to_have_title("debugbroker · 3 reports")
    expect(rows).to_have_count(3)


# --- virtualized list -----------------------------------------------------------------------


def rendered_rows(page: Page) -> int:
    count: int = page.evaluate("document.querySelectorAll('[data-testid=report-row]').length")
    return count


def test_ten_thousand_reports_scroll_to_the_end_with_few_rows_in_the_page(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    from tests.e2e.browser import log_in, show_reports

    started = time.monotonic()
    seeded = seed(10_000, "many")
    seeded_seconds = time.monotonic() - started
    dashboard, _ = open_page()
    show_reports(log_in(dashboard, broker))
    rows = dashboard.get_by_test_id("report-row")
    newest, oldest = seeded[-1], seeded[0]
    expect(rows.first).to_have_attribute("data-id", newest.id)
    expect(dashboard.get_by_test_id("report-count")).to_have_text("100+")
    assert rendered_rows(dashboard) < 60

    # Scroll down, as a user holding End would, until the oldest report is on screen.
    started = time.monotonic()
    last_row = dashboard.locator(f'[data-testid="report-row"][data-id="{oldest.id}"]')

    def at_the_end() -> bool:
        dashboard.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        return last_row.count() == 1 and last_row.is_visible()

    wait_for(at_the_end, timeout=60, what="the oldest of 10,000 reports")
    scrolled_seconds = time.monotonic() - started
    expect(dashboard.get_by_test_id("report-count")).to_have_text("10000")
    assert last_row.get_attribute("aria-posinset") == "10000"
    assert last_row.get_attribute("aria-setsize") == "10000"
    # Only the rows around the viewport exist, at the end as at the start.
    assert rendered_rows(dashboard) < 60
    # The list is as tall as 10,000 rows would be.
    height = dashboard.evaluate("document.querySelector('.report-list').offsetHeight")
    assert height >= 10_000 * 62
    print(
        f"\n10,000 reports: seeded in {seeded_seconds:.1f} s, "
        f"scrolled to the end in {scrolled_seconds:.1f} s"
    )

    # Searching covers every loaded report, and the result is virtualized too.
    dashboard.get_by_test_id("report-search").fill(oldest.id)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", oldest.id)
    expect(dashboard.get_by_test_id("report-count")).to_have_text("1 of 10000")


# --- keyboard -------------------------------------------------------------------------------


def assert_focus_on(page: Page, report_id: str) -> None:
    """The keyboard focus is on the row of ``report_id`` (it follows the selection)."""
    wait_for(lambda: focused_report_id(page) == report_id, what=f"the focus on {report_id}")


def focused_report_id(page: Page) -> str | None:
    found: str | None = page.evaluate(
        "document.activeElement?.closest('[data-testid=report-row]')?.dataset.id ?? null"
    )
    return found


def test_keyboard_shortcuts_move_through_reports_search_and_show_help(
    dashboard: Page, seed: Seed
) -> None:
    sent = [seed(1, f"report {number}")[0] for number in range(4)]
    newest_first = [report.id for report in reversed(sent)]
    rows = dashboard.get_by_test_id("report-row")
    expect(rows).to_have_count(4)
    keyboard = dashboard.keyboard

    # j/k move the selection (and the focus) through the list.
    keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    assert_focus_on(dashboard, newest_first[0])
    keyboard.press("j")
    keyboard.press("j")
    keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    assert_focus_on(dashboard, newest_first[1])
    expect(rows.nth(0)).not_to_have_class(re.compile(r"\bselected\b"))

    # Enter opens it; j/k on a report page open the next and previous report.
    keyboard.press("Enter")
    expect(dashboard).to_have_url(re.compile(f"#/reports/{newest_first[1]}$"))
    expect(dashboard.get_by_test_id("report-title")).to_have_text("KeyError: 'report 2'")
    keyboard.press("j")
    expect(dashboard).to_have_url(re.compile(f"#/reports/{newest_first[2]}$"))
    expect(dashboard.get_by_test_id("report-title")).to_have_text("KeyError: 'report 1'")
    keyboard.press("k")
    keyboard.press("k")
    expect(dashboard).to_have_url(re.compile(f"#/reports/{newest_first[0]}$"))
    keyboard.press("k")  # already the newest: stays
    expect(dashboard.get_by_test_id("report-title")).to_have_text("KeyError: 'report 3'")

    # Esc goes back to the list, with the report just seen selected and focused.
    keyboard.press("Escape")
    expect(dashboard).to_have_url(re.compile("#/reports$"))
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    assert_focus_on(dashboard, newest_first[0])

    # / focuses the search; typing there is text, not shortcuts; Esc clears, then leaves.
    keyboard.press("/")
    search = dashboard.get_by_test_id("report-search")
    expect(search).to_be_focused()
    keyboard.type("report 1 j")
    expect(search).to_have_value("report 1 j")
    expect(rows).to_have_count(0)
    expect(dashboard.get_by_role("status").filter(has_text="No report matches")).to_be_visible()
    search.fill("'report 1'")
    expect(rows).to_have_count(1)
    expect(dashboard.get_by_test_id("report-count")).to_have_text("1 of 4")
    keyboard.press("ArrowDown")  # from the search into the results
    assert_focus_on(dashboard, newest_first[2])
    keyboard.press("/")
    keyboard.press("Escape")
    expect(search).to_have_value("")
    expect(rows).to_have_count(4)
    keyboard.press("Escape")
    expect(search).not_to_be_focused()

    # ? shows the help as a modal dialog; Esc closes it.
    keyboard.press("?")
    help_dialog = dashboard.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Next / previous report")
    expect(help_dialog.locator("kbd", has_text="/")).to_be_visible()
    keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    dashboard.get_by_test_id("help-button").click()
    expect(help_dialog).to_be_visible()
    help_dialog.get_by_role("button", name="Close").click()
    expect(help_dialog).to_be_hidden()
    expect(dashboard).to_have_url(re.compile("#/reports$"))


# --- accessibility --------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations(
    broker: Broker, open_page: OpenPage, seed: Seed, scheme: str
) -> None:
    from tests.e2e.browser import accessibility_problems, log_in, show_reports

    page, guard = open_page(color_scheme=scheme)
    guard.allow(r"status of 401")
    problems: dict[str, list[str]] = {}

    page.goto(broker.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    problems["login form"] = accessibility_problems(page)

    log_in(page, broker)
    expect(page.get_by_text("No errors yet")).to_be_visible()
    problems["empty home"] = accessibility_problems(page)

    sent = [seed(1, f"report {number}")[0] for number in range(3)]
    groups = page.get_by_test_id("group")
    expect(groups.get_by_test_id("group-count")).to_have_text(["3"])
    page.keyboard.press("j")
    expect(groups.first).to_have_class(re.compile(r"\bselected\b"))
    problems["errors, grouped"] = accessibility_problems(page)
    page.keyboard.press("m")
    mute = page.get_by_role("dialog", name="Mute this error")
    expect(mute).to_be_visible()
    problems["mute dialog"] = accessibility_problems(page)
    page.keyboard.press("Escape")
    expect(mute).to_be_hidden()
    page.get_by_test_id("clear-all").click()
    clear = page.get_by_role("dialog", name="Clear everything?")
    expect(clear).to_be_visible()
    problems["clear dialog"] = accessibility_problems(page)
    clear.get_by_role("button", name="Cancel").click()
    expect(clear).to_be_hidden()

    show_reports(page)
    rows = page.get_by_test_id("report-row")
    expect(rows).to_have_count(3)
    page.keyboard.press("j")
    expect(rows.first).to_have_class(re.compile(r"\bselected\b"))
    problems["list"] = accessibility_problems(page)

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    problems["help"] = accessibility_problems(page)
    page.keyboard.press("Escape")

    page.goto(f"{broker.url}/#/reports/{sent[-1].id}")
    frame = page.get_by_test_id("frame").last
    frame.get_by_test_id("console-toggle").click()
    frame.get_by_test_id("console-input").fill("table, {'a': [1, 2.5, None, True]}")
    frame.get_by_test_id("console-input").press("Enter")
    expect(frame.get_by_test_id("console-entry")).to_have_attribute("aria-busy", "false")
    problems["report with console"] = accessibility_problems(page)

    page.get_by_test_id("plaintext-toggle").click()
    expect(page.get_by_test_id("plaintext")).to_be_visible()
    problems["plain text"] = accessibility_problems(page)

    page.get_by_test_id("groups-link").click()
    expect(page.get_by_test_id("groups-link")).to_have_attribute("aria-current", "page")
    page.wait_for_load_state("networkidle")
    problems["groups"] = accessibility_problems(page)

    found = {view: lines for view, lines in problems.items() if lines}
    assert not found, "\n".join(
        f"{view}:\n  " + "\n  ".join(lines) for view, lines in found.items()
    )


FOCUSABLE = (
    "a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), "
    "select:not([disabled]), summary, [tabindex]:not([tabindex='-1'])"
)


def tab_through(page: Page, limit: int = 400) -> tuple[set[str], set[str]]:
    """Press Tab until the focus comes round; the controls reached and all visible controls."""
    all_controls: list[str] = page.evaluate(
        """selector => [...document.querySelectorAll(selector)]
            .filter(e => e.checkVisibility() && !e.closest('[inert], dialog:not([open])'))
            .map((e, n) => (e.dataset.kbd = String(n)))""",
        FOCUSABLE,
    )
    page.evaluate("document.activeElement?.blur(); window.scrollTo(0, 0)")
    reached: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        current = page.evaluate("document.activeElement?.dataset?.kbd ?? null")
        if current is not None and reached and current == reached[0]:
            break
        if current is not None:
            reached.append(current)
    return set(reached), set(all_controls)


def describe_controls(page: Page, ids: set[str]) -> list[str]:
    found: list[str] = page.evaluate(
        "ids => ids.map(id => document.querySelector(`[data-kbd='${id}']`)?.outerHTML"
        ".slice(0, 120))",
        sorted(ids),
    )
    return found


def test_keyboard_alone_reaches_every_control_and_runs_code_in_a_frame(
    dashboard: Page, seed: Seed
) -> None:
    sent = seed(1, "keyboard only")[0]
    rows = dashboard.get_by_test_id("report-row")
    expect(rows).to_have_count(1)

    reached, controls = tab_through(dashboard)
    missing = controls - reached
    assert not missing, describe_controls(dashboard, missing)
    assert len(controls) >= 6  # nav links, theme, help, search, the report row

    # Open the report with the keyboard alone.
    dashboard.evaluate("document.activeElement?.blur()")
    focus_row = dashboard.get_by_test_id("report-row").locator("a")
    for _ in range(20):
        dashboard.keyboard.press("Tab")
        if focus_row.evaluate("e => e === document.activeElement"):
            break
    dashboard.keyboard.press("Enter")
    expect(dashboard).to_have_url(re.compile(f"#/reports/{sent.id}$"))
    frame = dashboard.get_by_test_id("frame").last
    expect(frame).to_be_visible()

    reached, controls = tab_through(dashboard)
    missing = controls - reached
    assert not missing, describe_controls(dashboard, missing)

    # Tab to the last frame's console toggle, open it with Space, type, run with Enter.
    toggle = frame.get_by_test_id("console-toggle")
    dashboard.evaluate("document.activeElement?.blur(); window.scrollTo(0, 0)")
    for _ in range(200):
        dashboard.keyboard.press("Tab")
        if toggle.evaluate("e => e === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the console button")
    dashboard.keyboard.press("Space")
    console_input = frame.get_by_test_id("console-input")
    expect(console_input).to_be_focused()
    dashboard.keyboard.type("sorted(table), key")
    dashboard.keyboard.press("Enter")
    output = frame.get_by_test_id("console-output")
    expect(output).to_have_text("(['known'], 'keyboard only')")

    # Shift+Tab leaves the console; Escape (outside fields) goes back to the list.
    dashboard.keyboard.press("Shift+Tab")
    expect(console_input).not_to_be_focused()
    dashboard.evaluate("document.activeElement?.blur()")
    dashboard.keyboard.press("Escape")
    expect(dashboard).to_have_url(re.compile("#/reports$"))


def test_keyboard_moves_between_frames_and_into_a_console(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    from tests.e2e.browser import log_in

    sent = seed(1, "frames")[0]
    indexes = [frame.index for info in sent.exceptions for frame in info.frames]
    page, _ = open_page()
    log_in(page, broker)
    page.goto(f"{broker.url}/#/reports/{sent.id}")
    expect(page.get_by_test_id("report-title")).to_have_text("KeyError: 'frames'")
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(f"/frames/{indexes[0]}$"))
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(f"/frames/{indexes[1]}$"))
    target = page.locator(f'[data-testid="frame"][data-index="{indexes[1]}"]')
    expect(target).to_be_focused()
    page.keyboard.press("p")
    expect(page).to_have_url(re.compile(f"/frames/{indexes[0]}$"))
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(f"/frames/{indexes[1]}$"))

    # c opens the console of that frame with the cursor in it; the key itself is not typed.
    page.keyboard.press("c")
    console_input = target.get_by_test_id("console-input")
    expect(console_input).to_be_focused()
    expect(console_input).to_have_value("")
    page.keyboard.type("key")
    page.keyboard.press("Enter")
    expect(target.get_by_test_id("console-output")).to_have_text("'frames'")
    # Back out of the field, and c finds the open console again.
    target.focus()
    page.keyboard.press("c")
    expect(console_input).to_be_focused()


# --- permalinks -----------------------------------------------------------------------------


def test_permalinks_open_a_report_and_a_frame_directly(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    from tests.e2e.browser import log_in

    # A report with several frames, in a small window: the linked frame starts off screen.
    sent = seed(1, "linked")[0]
    frames = [frame for info in sent.exceptions for frame in info.frames]
    assert len(frames) >= 2
    first, last = frames[0], frames[-1]
    page, guard = open_page(viewport={"width": 1000, "height": 500})
    log_in(page, broker)

    # A report's permalink.
    page.goto(f"{broker.url}/#/reports/{sent.id}")
    expect(page.get_by_test_id("report-title")).to_have_text("KeyError: 'linked'")

    # A frame's permalink, opened in a new tab: that frame is marked, on screen and focused.
    other = page.context.new_page()
    other.goto(f"{broker.url}/#/reports/{sent.id}/frames/{last.index}")
    target = other.locator(f'[data-testid="frame"][data-index="{last.index}"]')
    expect(target).to_have_class(re.compile(r"\btargeted\b"))
    expect(target).to_be_in_viewport()
    expect(target).to_be_focused()
    expect(target.locator(".frame-expand")).to_have_attribute("aria-expanded", "true")
    expect(other.locator(".frame.targeted")).to_have_count(1)
    other.close()

    # Each frame's "#" link is its permalink.
    link = page.locator(f'[data-testid="frame"][data-index="{first.index}"] a.frame-link')
    link.click()
    expect(page).to_have_url(f"{broker.url}/#/reports/{sent.id}/frames/{first.index}")
    expect(page.locator(f'[data-testid="frame"][data-index="{first.index}"]')).to_have_class(
        re.compile(r"\btargeted\b")
    )

    # A permalink to a report the broker does not have says so.
    guard.allow(r"status of 404")
    page.goto(f"{broker.url}/#/reports/no-such-report/frames/3")
    expect(page.get_by_role("alert")).to_contain_text("no report with id 'no-such-report'")


# --- zoom -----------------------------------------------------------------------------------


def test_readable_at_200_percent_zoom_without_sideways_scrolling(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    """A 1440x900 laptop at 200% zoom is a 720x450 CSS-pixel viewport."""
    from tests.e2e.browser import log_in, show_reports

    sent = seed(1, "zoomed in " + "long message " * 20)[0]
    page, _ = open_page(viewport={"width": 720, "height": 450}, device_scale_factor=2)
    log_in(page, broker)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    expect(page.get_by_test_id("group")).to_have_count(1)  # the home, grouped
    assert page.evaluate(overflow) <= 0
    show_reports(page)
    expect(page.get_by_test_id("report-row")).to_have_count(1)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    page.goto(f"{broker.url}/#/reports/{sent.id}")
    expect(page.get_by_test_id("report-title")).to_be_visible()
    page.get_by_test_id("frame").last.get_by_test_id("console-toggle").click()
    expect(page.get_by_test_id("console-input")).to_be_visible()
    assert page.evaluate(overflow) <= 0
    # The top bar's controls stay inside the window, each on one line.
    for control in page.locator(".topbar button, .topbar a, .topbar summary").all():
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 720, box
        assert box["height"] < 36, (control.inner_text(), box)


# --- timeline -------------------------------------------------------------------------------


def test_each_agent_shows_its_errors_of_the_last_hour(dashboard: Page, seed: Seed) -> None:
    timeline = dashboard.get_by_test_id("agent-row").get_by_test_id("agent-timeline")
    expect(timeline).to_have_attribute("aria-label", "0 errors in the last hour")
    expect(timeline.locator(".timeline-bar.hit")).to_have_count(0)
    seed(3, "timeline")
    expect(timeline).to_have_attribute("aria-label", "3 errors in the last hour")
    bars = timeline.locator(".timeline-bar")
    expect(bars).to_have_count(12)
    expect(bars.last).to_have_class(re.compile(r"\bhit\b"))  # just now: the newest bucket
    expect(timeline.locator(".timeline-bar.hit")).to_have_count(1)


# --- desktop notifications ------------------------------------------------------------------

# Records notifications instead of showing them, and lets the test hide the tab.
NOTIFICATION_SPY = """
Object.defineProperty(document, "visibilityState", {
  configurable: true, get: () => (window.__hidden ? "hidden" : "visible"),
});
const RealNotification = window.Notification;
window.__notes = [];
function SpyNotification(title, options) {
  window.__notes.push({ title, body: options && options.body });
  return { close() {}, onclick: null };
}
Object.defineProperty(SpyNotification, "permission", { get: () => RealNotification.permission });
SpyNotification.requestPermission = () => RealNotification.requestPermission();
window.Notification = SpyNotification;
"""


def test_desktop_notifications_of_errors_arriving_while_the_tab_is_hidden(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    from tests.e2e.browser import log_in, show_reports

    page, _ = open_page(permissions=["notifications"])
    page.add_init_script(NOTIFICATION_SPY)
    show_reports(log_in(page, broker))
    switch = page.get_by_test_id("notify-switch")
    expect(switch).to_have_attribute("aria-pressed", "false")
    page.evaluate("window.__hidden = true")
    seed(1, "before switching on")
    expect(page.get_by_test_id("report-row")).to_have_count(1)
    assert page.evaluate("window.__notes") == []

    switch.click()
    expect(switch).to_have_attribute("aria-pressed", "true")
    seed(1, "note me")
    expect(page.get_by_test_id("report-row")).to_have_count(2)
    notes = wait_for(lambda: page.evaluate("window.__notes"), what="a notification")
    assert notes == [{"title": "New error: KeyError", "body": "KeyError: 'note me'"}]

    # Visible tab: no notification. The switch is remembered across a reload.
    page.evaluate("window.__hidden = false")
    seed(1, "seen anyway")
    expect(page.get_by_test_id("report-row")).to_have_count(3)
    assert len(page.evaluate("window.__notes")) == 1
    page.reload()
    expect(switch).to_have_attribute("aria-pressed", "true")
    switch.click()
    expect(switch).to_have_attribute("aria-pressed", "false")
    page.evaluate("window.__hidden = true")
    seed(1, "switched off")
    expect(page.get_by_test_id("report-row")).to_have_count(4)
    assert page.evaluate("window.__notes") == []
