"""A failed request's locals are freed by reference counting once its frames are released.

Capture reads ``f_locals`` of the middleware's own running frame, whose snapshot then holds
the caught error: error -> traceback -> frame -> snapshot -> error is a cycle that keeps every
local of the failed request (a 1 MB upload, say) alive until a full collection. Both
middlewares break it; these tests run with the cyclic collector off to see that.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from debugbroker.agent import DebuggedApplication
from debugbroker.agent.asgi import DebuggedASGIApplication
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport
from tests.conftest import free_port


class Payload:
    """Stands for a big local of a failed request."""


@pytest.fixture
def options() -> Iterator[Options]:
    made = Options(broker_url=f"tcp://127.0.0.1:{free_port()}", secret="s", held_reports=1)
    yield made
    get_transport(made).close()


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def failing_handler(refs: list[weakref.ref[Payload]]) -> Callable[[], None]:
    def handler() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        raise ValueError("boom")

    return handler


def test_wsgi_locals_are_freed_without_the_cyclic_collector(
    options: Options, no_cyclic_gc: None
) -> None:
    refs: list[weakref.ref[Payload]] = []
    handler = failing_handler(refs)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        handler()
        return [b"unreachable"]

    wrapped = DebuggedApplication(app, options=options)
    for _ in range(3):  # held_reports=1: each new report releases the one before
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        body = b"".join(wrapped(environ, ignore_start))
        assert b"ValueError" in body
    assert [ref() is None for ref in refs] == [True, True, False]


def ignore_start(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], object]:
    """A WSGI ``start_response`` that keeps nothing."""
    return lambda data: None


def test_asgi_locals_are_freed_without_the_cyclic_collector(
    options: Options, no_cyclic_gc: None
) -> None:
    refs: list[weakref.ref[Payload]] = []
    handler = failing_handler(refs)

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        handler()

    wrapped = DebuggedASGIApplication(app, options=options)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def one_request() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
        with pytest.raises(ValueError):
            await wrapped(scope, receive, send)

    for _ in range(3):
        asyncio.run(one_request())
    assert sent[0]["status"] == 500
    assert [ref() is None for ref in refs] == [True, True, False]
