"""A Starlette app for breakpoints set from the dashboard in async code: ``/double?n=N``
awaits a helper that doubles ``n``. Nothing in it calls ``breakpoint()``."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from debugbroker import DebuggedASGIApplication


async def compute(n: int) -> int:
    await asyncio.sleep(0)
    doubled = n * 2
    return doubled


async def double(request: Request) -> Response:
    n = int(request.query_params.get("n", "1"))
    result = await compute(n)
    return PlainTextResponse(f"{n} doubled: {result}")


async def index(request: Request) -> Response:
    return PlainTextResponse("ok")


app = DebuggedASGIApplication(
    Starlette(routes=[Route("/double", double), Route("/", index)]),
    app_name="breakpoints-asgi",
    console=True,
)
