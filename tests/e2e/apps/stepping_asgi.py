"""A Starlette app with an async view to step through under uvicorn: ``/checkout`` pauses
at ``breakpoint()`` (``PYTHONBREAKPOINT=debugbroker.set_trace``), then awaits the prices."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from debugbroker import DebuggedASGIApplication

PRICES = {"tea": 30, "cake": 40}


async def price_of(sku: str) -> int:
    await asyncio.sleep(0)
    price = PRICES[sku]
    return price


async def checkout(request: Request) -> Response:
    basket = ["tea", "cake"]
    breakpoint()  # the event loop's thread pauses here; the tests step from it
    count = len(basket)
    first = await price_of(basket[0])
    second = await price_of(basket[1])
    total = first + second
    return PlainTextResponse(f"{count} items, total {total}")


async def index(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = Starlette(routes=[Route("/", index), Route("/checkout", checkout)])
app.add_middleware(DebuggedASGIApplication, app_name="stepping-asgi")
