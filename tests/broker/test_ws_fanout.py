"""The event fan-out: a dashboard that falls behind is always told to reconnect."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from debugbroker.broker.http.ws import EventHub
from tests.conftest import DEADLINE


def test_a_client_whose_queue_is_full_gets_the_close_not_silence() -> None:
    # The close sentinel went into the client's full queue, so it was dropped: the client,
    # already out of the fan-out, drained its queue and then waited forever on an open
    # socket that would never carry another event. The sentinel must always get in.
    async def run() -> list[str]:
        hub = EventHub()
        app = web.Application()
        app.router.add_get("/ws", hub.handle)
        server = TestServer(app)
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.make_url("/ws")) as socket:
                    while not hub.client_count:  # the handler registered the client
                        await asyncio.sleep(0)
                    # No await in between: the client's send task cannot run, so its queue
                    # fills (1,000) and the next event finds it full.
                    for number in range(1_500):
                        await hub.publish({"type": "test", "n": number})
                    assert hub.client_count == 0, "the slow client stayed in the fan-out"
                    seen: list[str] = []

                    async def read_until_closed() -> None:
                        async for message in socket:
                            if message.type != WSMsgType.TEXT:
                                break
                            seen.append(message.data)

                    await asyncio.wait_for(read_until_closed(), DEADLINE)
                    assert socket.closed, "the slow client was never told to reconnect"
                    assert socket.close_code is not None
                    return seen
        finally:
            await hub.close()
            await server.close()

    seen = asyncio.run(run())
    assert len(seen) < 1_000  # what was queued for it was dropped: it refetches anyway


def test_a_commands_answer_follows_the_events_queued_before_it_in_order() -> None:
    # The answer goes out at once, with the events already queued for that tab (an eval's
    # "done" entry) sent just before it, together (one TCP segment where the system can
    # cork): nothing is lost, nothing is reordered, and the send loop carries what follows.
    async def run() -> list[dict[str, object]]:
        hub = EventHub()

        async def command(caller: object, message: dict[str, object]) -> tuple[int, str]:
            await hub.publish({"type": "console", "n": 1})
            await hub.publish({"type": "console", "n": 2})
            return 200, json.dumps({"ok": True})

        hub.commands = command
        app = web.Application()
        app.router.add_get("/ws", hub.handle)
        server = TestServer(app)
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.make_url("/ws")) as socket:
                    await socket.send_str(json.dumps({"type": "eval", "id": 7}))
                    seen = [json.loads(await socket.receive_str(timeout=DEADLINE))]
                    while seen[-1]["type"] != "answer":
                        seen.append(json.loads(await socket.receive_str(timeout=DEADLINE)))
                    await hub.publish({"type": "console", "n": 3})  # later: the send loop's
                    seen.append(json.loads(await socket.receive_str(timeout=DEADLINE)))
                    return seen
        finally:
            await hub.close()
            await server.close()

    assert asyncio.run(run()) == [
        {"type": "console", "n": 1},
        {"type": "console", "n": 2},
        {"type": "answer", "id": 7, "status": 200, "body": {"ok": True}},
        {"type": "console", "n": 3},
    ]
