"""A WSGI app that calls ``breakpoint()``; run with ``PYTHONBREAKPOINT=debugbroker.set_trace``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from debugbroker import DebuggedApplication


def price_basket(basket: dict[str, int]) -> int:
    total = sum(basket.values())
    breakpoint()  # the thread pauses here until Continue in the dashboard
    return total


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ.get("PATH_INFO") == "/pause":
        return [f"total {price_basket({'apple': 3, 'pear': 4})}".encode()]
    return [str(os.getpid()).encode()]


app = DebuggedApplication(raw_app, app_name="breakpoint-test")
