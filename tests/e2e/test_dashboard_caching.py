"""A returning user's browser takes the dashboard's bundle from its cache, not the broker.

Real Chromium against a real broker: the first visit fetches the versioned bundle and CSS;
the next navigation asks the broker for the page only (``no-cache``: revalidated) and takes
the bundle and CSS from the HTTP cache (Resource Timing's ``transferSize`` is 0 for a cache
hit without a network request, and above 0 for a fetch or a 304 revalidation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from playwright.sync_api import Request, expect

from tests.conftest import Broker
from tests.e2e.browser import log_in

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage

pytest_plugins = ["tests.e2e.browser"]

_STATIC_ENTRIES = """
() => performance.getEntriesByType('resource')
  .filter((entry) => new URL(entry.name).pathname.startsWith('/static/'))
  .map((entry) => ({
    path: new URL(entry.name).pathname + new URL(entry.name).search,
    transferSize: entry.transferSize,
    decodedBodySize: entry.decodedBodySize,
  }))
"""


def static_entries(page: Any) -> dict[str, dict[str, Any]]:
    """The page's ``/static/`` resources by path (with query), from Resource Timing."""
    return {entry["path"].split("?")[0]: entry for entry in page.evaluate(_STATIC_ENTRIES)}


def test_a_second_visit_takes_the_bundle_from_the_cache(
    broker: Broker, open_page: OpenPage
) -> None:
    page, _ = open_page()
    log_in(page, broker)
    first = static_entries(page)
    for path in ("/static/app.js", "/static/app.css"):
        assert first[path]["transferSize"] > 0, (path, first[path])  # from the broker
    asked: list[str] = []

    def note(request: Request) -> None:
        asked.append(request.url.removeprefix(broker.url))

    page.on("request", note)
    page.goto("about:blank")
    page.goto(f"{broker.url}/")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    again = static_entries(page)
    for path in ("/static/app.js", "/static/app.css"):
        entry = again[path]
        assert entry["transferSize"] == 0, (path, entry)  # the cache, no request to the broker
        assert entry["decodedBodySize"] > 0, (path, entry)
    script = page.locator("script[type=module]")
    expect(script).to_have_attribute("src", first_script_url(asked))
    assert "/" in asked  # the page itself is asked for again (no-cache)


def first_script_url(asked: list[str]) -> str:
    """The versioned bundle URL among the requests the page made (from cache or not)."""
    found = [url for url in asked if url.startswith("/static/app.js?v=")]
    assert found, asked
    return found[0]
