"""The live event stream: one WebSocket per dashboard tab, every event fanned out to all.

A slow tab must not hold up the others or grow the broker's memory: each client has a
bounded queue drained by its own task, and a client whose queue is full is disconnected
(the dashboard reconnects and refetches what it missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["EventHub"]

log = logging.getLogger("debugbroker.ws")
_QUEUE_SIZE = 1_000
_MAX_INCOMING = 64 * 1024  # the dashboard sends nothing big; anything larger closes the socket


class _Client:
    __slots__ = ("socket", "queue", "task")

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE_SIZE)
        self.task: asyncio.Task[None] | None = None


class EventHub:
    """The connected dashboards and the fan-out of events to them."""

    def __init__(self) -> None:
        self._clients: set[_Client] = set()

    @property
    def client_count(self) -> int:
        """How many dashboards are connected."""
        return len(self._clients)

    async def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every connected dashboard; never waits on a client."""
        if not self._clients:
            return
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("a dashboard fell behind; disconnecting it so it resyncs")
                self._clients.discard(client)
                with contextlib.suppress(asyncio.QueueFull):
                    client.queue.put_nowait(None)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /api/ws``: the event stream (authenticated by the security middleware)."""
        socket = web.WebSocketResponse(heartbeat=20.0, max_msg_size=_MAX_INCOMING)
        await socket.prepare(request)
        client = _Client(socket)
        client.task = asyncio.create_task(self._send_loop(client))
        self._clients.add(client)
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
                # The dashboard only listens for now; incoming text is ignored.
        finally:
            self._clients.discard(client)
            client.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client.task
        return socket

    async def _send_loop(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None:
                await client.socket.close(message=b"too slow; reconnect")
                return
            try:
                await client.socket.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self) -> None:
        """Close every dashboard connection (broker shutdown)."""
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.socket.close(message=b"broker shutting down")
        self._clients.clear()
