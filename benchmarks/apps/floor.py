"""The console's path with no work in it: what this machine allows for benchmark 3.

``python floor.py echo TCP_URL SECRET``: a process whose one thread serves a CurveZMQ DEALER
the way the agent's I/O thread does (a ``zmq.Poller`` over the socket and a socketpair), and
sends every message straight back (its monitor socket polled too, as the agent's:
without it this machine's round trip is 0.1 ms slower): no decoding, no eval, no repr.

``python floor.py relay HTTP_PORT ZMQ_PORT SECRET``: a process serving one WebSocket route
(aiohttp) and a CurveZMQ ROUTER, read as the broker's relay reads it (its descriptor on the
event loop): each WebSocket message goes to the one peer as it is, and the peer's answer
goes back to the tab. No authentication, no audit row, no transcript, no JSON parsing.

The benchmark times the same messages through these as through the real broker and agent:
the difference is the work debugbroker does, the rest is the machine.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

import zmq
from aiohttp import web

from debugbroker.protocol import keys


def echo(url: str, secret: str) -> None:
    """Serve the DEALER on a thread polling it beside a socketpair, as the agent's does."""

    def serve() -> None:
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        client_secret = keys.client_secret_key(secret).encode("ascii")
        dealer.curve_serverkey = zmq.curve_public(keys.server_secret_key(secret).encode())
        dealer.curve_publickey = zmq.curve_public(client_secret)
        dealer.curve_secretkey = client_secret
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(url)
        monitor = dealer.get_monitor_socket()  # as the agent's: polled too (it matters)
        reader, _writer = socket.socketpair()
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(reader.fileno(), zmq.POLLIN)
        dealer.send(b"hello")
        while True:
            events = dict(poller.poll(100))
            if monitor in events:
                monitor.recv_multipart()
            if dealer in events:
                dealer.send(dealer.recv())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join()


async def relay(http_port: int, zmq_port: int, secret: str) -> None:
    """Relay WebSocket messages to the one DEALER peer and its answers back."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.curve_server = True
    router.curve_secretkey = keys.server_secret_key(secret).encode()
    router.bind(f"tcp://127.0.0.1:{zmq_port}")
    loop = asyncio.get_running_loop()
    peer: list[bytes] = []
    waiting: list[asyncio.Future[bytes]] = []

    def readable() -> None:  # zmq's descriptor signals edges: read until nothing is left
        while router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            identity, payload = router.recv_multipart(zmq.NOBLOCK)
            if not peer:
                peer.append(identity)
            elif waiting:
                waiting.pop(0).set_result(payload)

    loop.add_reader(router.getsockopt(zmq.FD), readable)

    async def tab(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            future: asyncio.Future[bytes] = loop.create_future()
            waiting.append(future)
            router.send_multipart([peer[0], message.data.encode()], zmq.NOBLOCK)
            readable()  # a send may take the descriptor's edge
            await ws.send_str((await future).decode())
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(status=200 if peer else 503)

    app = web.Application()
    app.router.add_get("/ws", tab)
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], sys.argv[3])
    else:
        asyncio.run(relay(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
