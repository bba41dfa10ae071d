"""A small WSGI app that fails on purpose, wrapped in the agent, for gunicorn in the tests."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from debugbroker import DebuggedApplication


def compute_ratio(total: int, count: int) -> float:
    """Divide, failing for count == 0 with interesting locals around."""
    label = f"ratio of {total}"
    numbers = list(range(20))
    return total / count + len(label) + len(numbers)


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/boom":
        worker_pid = os.getpid()  # noqa: F841 - a local the console reads
        compute_ratio(10, 0)
    if path.startswith("/stream-"):  # a streamed body failing before or after its first chunk
        start_response("200 OK", [("Content-Type", "text/plain")])
        return streamed(late=path == "/stream-late")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def streamed(late: bool) -> Iterator[bytes]:
    if late:
        yield b"partial "
    compute_ratio(10, 0)
    yield b"never"


app = DebuggedApplication(raw_app, evalex=True)
