"""The event fan-out: a dashboard that falls behind is always told to reconnect."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from debugbroker.broker.http.ws import EventHub
from tests.conftest import DEADLINE, Broker


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


def test_a_commands_answer_comes_after_the_events_of_its_tab_in_order() -> None:
    # While a tab's command runs, the events for that tab wait and go out with its answer,
    # before it, in order (one TCP segment where the system can cork); another tab gets
    # them at once; a command still running after HOLD_SECONDS lets its tab's events go.
    async def run() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        hub = EventHub()
        go_on = asyncio.Event()

        async def command(caller: object, message: dict[str, object]) -> tuple[int, str]:
            await hub.publish({"type": "console", "n": message["id"]})
            if message["id"] == 2:
                await go_on.wait()  # a slow eval: its tab sees it start meanwhile
            await hub.publish({"type": "console", "n": -1})
            return 200, json.dumps({"ok": True})

        hub.commands = command
        app = web.Application()
        app.router.add_get("/ws", hub.handle)
        server = TestServer(app)
        await server.start_server()

        async def read(socket: aiohttp.ClientWebSocketResponse[bool]) -> dict[str, object]:
            data: dict[str, object] = json.loads(await socket.receive_str(timeout=DEADLINE))
            return data

        try:
            async with aiohttp.ClientSession() as session:
                url = server.make_url("/ws")
                async with session.ws_connect(url) as tab, session.ws_connect(url) as other:
                    while hub.client_count < 2:  # both handlers registered their clients
                        await asyncio.sleep(0)
                    seen: list[dict[str, object]] = []
                    await tab.send_str(json.dumps({"type": "eval", "id": 1}))
                    while not seen or seen[-1]["type"] != "answer":
                        seen.append(await read(tab))
                    await tab.send_str(json.dumps({"type": "eval", "id": 2}))
                    seen.append(await read(tab))  # released while the command waits
                    go_on.set()
                    while seen[-1]["type"] != "answer":
                        seen.append(await read(tab))
                    await hub.publish({"type": "console", "n": 3})  # later: the send loop's
                    seen.append(await read(tab))
                    others = [await read(other) for _ in range(5)]
                    return seen, others
        finally:
            await hub.close()
            await server.close()

    seen, others = asyncio.run(run())
    answer = {"status": 200, "body": {"ok": True}}
    assert seen == [
        {"type": "console", "n": 1},
        {"type": "console", "n": -1},
        {"type": "answer", "id": 1, **answer},
        {"type": "console", "n": 2},
        {"type": "console", "n": -1},
        {"type": "answer", "id": 2, **answer},
        {"type": "console", "n": 3},
    ]
    assert [event["n"] for event in others] == [1, -1, 2, -1, 3]


def test_a_broker_stopping_closes_the_dashboards_sockets_and_exits_cleanly(
    tmp_path: Path,
) -> None:
    """SIGTERM with a dashboard's WebSocket open: the page is told at once (a close frame)
    and the broker exits by itself. It used to keep the socket open until aiohttp's
    shutdown timeout: 32 s in which the page thought itself connected while its requests
    were refused, and a supervisor's stop (docker's 10 s, this fixture's) killed it."""
    broker = Broker(tmp_path).start()
    process = broker.process
    assert process is not None and process.popen is not None

    async def watch() -> WSMsgType:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(broker.url + "/api/ws", headers=broker.auth()) as ws:
                await asyncio.to_thread(os.killpg, process.pid, signal.SIGTERM)
                while True:
                    message = await ws.receive(timeout=DEADLINE)
                    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                        return message.type

    try:
        assert asyncio.run(watch()) in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert process.popen.wait(DEADLINE) == 0, process.output()[-2000:]
    finally:
        broker.stop()
