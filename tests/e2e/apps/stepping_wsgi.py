"""A WSGI app to step through: ``/checkout`` pauses at ``breakpoint()`` (run it with
``PYTHONBREAKPOINT=debugbroker.set_trace``), then prices a basket through a helper."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from debugbroker import DebuggedApplication


def with_tax(amount: int) -> int:
    tax = amount // 10
    return amount + tax


def checkout(basket: dict[str, int]) -> str:
    breakpoint()  # the thread pauses here; the tests step from it
    count = len(basket)
    subtotal = sum(basket.values()) * 10
    total = with_tax(subtotal)
    summary = f"{count} items, total {total}"
    return summary


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ.get("PATH_INFO") == "/checkout":
        return [checkout({"apple": 3, "pear": 4}).encode()]
    return [b"ok"]


# STEPPING_EVALEX=0 starts it with evalex=False: steps are refused, Continue still works.
app = DebuggedApplication(
    raw_app, app_name="stepping-test", evalex=os.environ.get("STEPPING_EVALEX", "1") == "1"
)
