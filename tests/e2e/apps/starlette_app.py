"""A Starlette app with async endpoints that fail on purpose, for uvicorn in the tests.

``app`` adds the agent as a Starlette middleware (inside Starlette's own error middleware);
``outer_app`` wraps a whole Starlette app from outside, the way a raw ASGI app is wrapped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from debugbroker import DebuggedASGIApplication


async def fetch_total(items: list[int]) -> float:
    """An async helper that fails after an await, with locals to read."""
    await asyncio.sleep(0)
    count = len(items) - len(items)
    return sum(items) / count


async def boom(request: Request) -> Response:
    order_id = request.query_params.get("order", "7")
    total = await fetch_total([1, 2, 3])
    return PlainTextResponse(f"{order_id}: {total}")


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        raise RuntimeError("failed while streaming")

    return StreamingResponse(chunks(), media_type="text/plain")


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


async def ready(request: Request) -> Response:
    return PlainTextResponse(str(request.app.state.ready))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.ready = "lifespan ran"
    yield


routes = [
    Route("/", pid),
    Route("/boom", boom),
    Route("/stream", stream),
    Route("/ready", ready),
]
app = Starlette(routes=routes, lifespan=lifespan)
app.add_middleware(DebuggedASGIApplication, app_name="starlette-test")
outer_app = DebuggedASGIApplication(Starlette(routes=routes, lifespan=lifespan))
console_app = DebuggedASGIApplication(
    Starlette(routes=routes, lifespan=lifespan), console=True, app_name="asgi-console"
)
