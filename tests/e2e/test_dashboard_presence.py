"""Presence and follow mode: two browsers on one real broker, and what the broker accepts.

Each browser context is a different person (own storage, own session). The broker learns
where each tab is from its WebSocket messages; those messages are validated, capped and
rate-limited, which the raw-socket test checks with garbage a hostile tab could send.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import aiohttp
from playwright.sync_api import Page, expect

from tests.conftest import Broker, wait_for
from tests.e2e.browser import person, show_reports

if TYPE_CHECKING:
    from tests.e2e.browser import OpenPage, Seed

pytest_plugins = ["tests.e2e.browser"]


def viewer_row(page: Page, name: str) -> Any:
    """The row of ``name`` in the page's "others here" menu (opened if closed)."""
    menu = page.get_by_test_id("presence")
    if not menu.evaluate("details => details.open"):
        page.get_by_test_id("presence-count").click()
    return page.get_by_test_id("viewer").filter(has=page.locator(".viewer-name", has_text=name))


def test_presence_shows_who_looks_where_and_follow_mode_keeps_up(
    broker: Broker, open_page: OpenPage, seed: Seed
) -> None:
    reports = [seed(1, f"shared {number}")[0] for number in range(2)]
    ada = person(open_page, broker, "Ada")
    bob = show_reports(person(open_page, broker, "Bob"))  # Esc takes him back to the flat list

    # Each sees the other, on the list.
    expect(ada.get_by_test_id("presence-count")).to_have_text("1 other here")
    expect(bob.get_by_test_id("presence-count")).to_have_text("1 other here")
    bob_in_ada = viewer_row(ada, "Bob")
    expect(bob_in_ada.locator(".viewer-place")).to_have_text("the report list")

    # Bob opens a frame of a report: Ada sees where, and the report page names Bob.
    frame_index = reports[0].exceptions[0].frames[-1].index
    bob.goto(f"{broker.url}/#/reports/{reports[0].id}/frames/{frame_index}")
    expect(bob_in_ada.locator(".viewer-place")).to_have_text(
        f"KeyError: 'shared 0' (frame {frame_index})"
    )
    bob_in_ada.locator(".viewer-place").click()
    expect(ada).to_have_url(re.compile(f"#/reports/{reports[0].id}/frames/{frame_index}$"))
    expect(ada.get_by_test_id("also-here")).to_have_text(
        f"Also on this report: Bob (frame {frame_index})"
    )

    # Ada follows Bob: Bob's moves carry Ada along.
    viewer_row(ada, "Bob").get_by_test_id("follow").click()
    expect(ada.get_by_test_id("following")).to_contain_text("Following Bob")
    bob.goto(f"{broker.url}/#/reports/{reports[1].id}")
    expect(ada).to_have_url(re.compile(f"#/reports/{reports[1].id}$"))
    expect(ada.get_by_test_id("report-title")).to_have_text("KeyError: 'shared 1'")
    bob.keyboard.press("Escape")  # back to the list
    expect(ada).to_have_url(re.compile("#/$"))
    bob.keyboard.press("j")  # from the report he just left, to the next (older) one
    bob.keyboard.press("Enter")
    expect(bob).to_have_url(re.compile(f"#/reports/{reports[0].id}$"))
    expect(ada).to_have_url(re.compile(f"#/reports/{reports[0].id}$"))

    # Ada moving on her own ends follow mode; Bob's next move no longer carries her.
    ada.keyboard.press("Escape")
    expect(ada.get_by_test_id("following")).to_have_count(0)
    bob.keyboard.press("k")
    expect(bob).to_have_url(re.compile(f"#/reports/{reports[1].id}$"))
    expect(viewer_row(ada, "Bob").locator(".viewer-place")).to_have_text("KeyError: 'shared 1'")
    assert ada.url.endswith("#/")

    # Bob leaves: Ada sees nobody.
    bob.close()
    expect(ada.get_by_test_id("presence-count")).to_have_text("Just you")


async def _raw_socket_session(broker: Broker) -> dict[str, Any]:
    """Send what a hostile tab might; return what the broker sent back and how it ended."""
    headers = {"Authorization": f"Bearer {broker.token}"}
    seen: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.ws_connect(broker.url + "/api/ws") as watcher:
            # A watcher that never says where it is gets no welcome and is never listed.
            async with session.ws_connect(broker.url + "/api/ws") as hostile:
                for garbage in [
                    "not json",
                    "[1, 2]",
                    json.dumps({"type": "eval", "code": "1"}),
                    json.dumps({"type": "presence", "name": 5}),
                    json.dumps({"type": "presence", "name": "x" * 2000}),
                    json.dumps({"type": "presence", "report": "../../etc"}),
                    json.dumps({"type": "presence", "report": "r1", "frame": True}),
                    json.dumps({"type": "presence", "report": "r1", "frame": -1}),
                    json.dumps({"type": "presence", "frame": 3}),  # a frame needs a report
                ]:
                    await hostile.send_str(garbage)
                await hostile.send_bytes(b"\x00binary")
                evil_name = "<img src=x onerror=alert(1)>\u202e\x07" + "n" * 60
                await hostile.send_json({"type": "presence", "name": evil_name, "report": "r-1"})
                welcome = await hostile.receive_json(timeout=10)
                assert welcome["type"] == "welcome"
                hostile_id = welcome["viewer"]
                assert re.fullmatch(r"[0-9a-f]{12}", hostile_id)

                while True:  # the watcher only hears about the one valid message
                    event = await watcher.receive_json(timeout=10)
                    if event["type"] == "presence" and event["viewers"]:
                        break
                seen["viewers"] = event["viewers"]
                assert seen["viewers"][0]["id"] == hostile_id

                # A flood: the first messages pass the rate limit, then the tab is cut off.
                for number in range(400):
                    if hostile.closed:
                        break
                    try:
                        await hostile.send_json(
                            {"type": "presence", "name": "flood", "report": f"r{number}"}
                        )
                    except ConnectionError:
                        break
                message = await hostile.receive(timeout=10)
                while message.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    message = await hostile.receive(timeout=10)
                seen["close_code"] = hostile.close_code

            async with session.ws_connect(broker.url + "/api/ws") as big:
                await big.send_str(json.dumps({"type": "presence", "name": "b" * 4000}))
                message = await big.receive(timeout=10)
                while message.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    message = await big.receive(timeout=10)
                seen["big_close_code"] = big.close_code

            # The watcher is still served, and hears that the hostile tab left.
            while True:
                event = await watcher.receive_json(timeout=10)
                if event["type"] == "presence" and not event["viewers"]:
                    break
    return seen


def test_the_broker_validates_caps_and_rate_limits_what_tabs_send(broker: Broker) -> None:
    # Its own thread: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        seen = thread.submit(asyncio.run, _raw_socket_session(broker)).result()
    (viewer,) = seen["viewers"]
    # Control and bidi characters gone, capped to 40 characters, still only text.
    assert viewer["name"] == ("<img src=x onerror=alert(1)>" + "n" * 60)[:40]
    assert viewer["report"] == "r-1" and viewer["frame"] is None
    assert seen["close_code"] == 1008  # too many invalid (here: too fast) messages
    assert seen["big_close_code"] == 1009  # message too big
    assert broker.get("/api/agents").status == 200
    wait_for(lambda: broker.process is not None and broker.process.alive(), what="the broker")
