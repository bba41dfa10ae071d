"""A Starlette app with async endpoints that fail on purpose, for uvicorn in the tests.

``app`` adds the agent as a Starlette middleware (inside Starlette's own error middleware);
``outer_app`` wraps a whole Starlette app from outside, the way a raw ASGI app is wrapped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from debugbroker import DebuggedASGIApplication
from tests.e2e.apps.leaky import Login


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


async def restock(sku: str) -> None:
    """A background task that fails; nobody awaits it."""
    await asyncio.sleep(0)
    shelf = {"sku": sku}
    raise LookupError(f"no shelf for {shelf['sku']}")


async def forget(request: Request) -> Response:
    asyncio.get_running_loop().create_task(restock(request.query_params.get("sku", "B-2")))
    return PlainTextResponse("queued")


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


async def ready(request: Request) -> Response:
    return PlainTextResponse(str(request.app.state.ready))


async def leak(request: Request) -> Response:
    """Holds the request's secrets the ways an app does, then fails with one in its message.

    The form is parsed by hand into Starlette's ``FormData`` (``request.form()`` needs
    python-multipart, which these tests do not install)."""
    fields: list[tuple[str, str | UploadFile]] = list(parse_qsl((await request.body()).decode()))
    form = FormData(fields)
    query = request.query_params
    headers = request.headers  # noqa: F841
    cookies = request.cookies  # noqa: F841
    url = request.url  # noqa: F841
    login = Login(user="ada", password=str(form["password"]))  # noqa: F841
    raw = {b"password": str(form["password"]).encode(), b"user": b"ada"}  # noqa: F841
    pairs = list(request.headers.raw)  # noqa: F841 - the ASGI scope's (name, value) byte pairs
    dsn = os.environ.get("DATABASE_URL", "")  # noqa: F841
    raise PermissionError(f"refused token={query['api_token']}")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.ready = "lifespan ran"
    yield


routes = [
    Route("/", pid),
    Route("/boom", boom),
    Route("/stream", stream),
    Route("/ready", ready),
    Route("/leak", leak, methods=["POST"]),
    Route("/forget", forget),
]
app = Starlette(routes=routes, lifespan=lifespan)
app.add_middleware(DebuggedASGIApplication, app_name="starlette-test")
outer_app = DebuggedASGIApplication(Starlette(routes=routes, lifespan=lifespan))
console_app = DebuggedASGIApplication(
    Starlette(routes=routes, lifespan=lifespan), console=True, app_name="asgi-console"
)
