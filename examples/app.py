"""The example app of ``docker-compose.yml``: a tiny WSGI shop with a bug, agent attached.

Run it like any WSGI app (``gunicorn --chdir examples app:app``); it reports to the broker
at ``DEBUGBROKER_URL`` with ``DEBUGBROKER_SECRET``. ``/checkout?coupon=BOGUS`` fails;
``/ship?warehouse=east`` queues a Celery task (``tasks.py``) that fails in the worker.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from debugbroker import DebuggedApplication

PRICES = {"apple": 0.5, "pear": 0.75, "fig": 1.2}
DISCOUNTS = {"HALF": 2, "NONE": 1}


def order_total(cart: dict[str, int], coupon: str) -> float:
    """Sum the cart; an unknown coupon divides by zero (the example's bug)."""
    subtotal = sum(PRICES[item] * count for item, count in cart.items())
    divisor = DISCOUNTS.get(coupon, 0)
    return round(subtotal / divisor, 2)


def shop(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``/`` links to the pages; ``/checkout?coupon=X`` prices a fixed cart."""
    path = environ.get("PATH_INFO", "/")
    if path == "/checkout":
        coupon = parse_qs(environ.get("QUERY_STRING", "")).get("coupon", ["NONE"])[0]
        total = order_total({"apple": 3, "pear": 2, "fig": 1}, coupon)
        body = f"<p>Total with {html.escape(coupon)}: {total}</p>"
    elif path == "/ship":
        from tasks import ship_order  # only this page needs Celery and Redis

        warehouse = parse_qs(environ.get("QUERY_STRING", "")).get("warehouse", ["north"])[0]
        task = ship_order.delay(7, warehouse)
        body = f"<p>Queued task {html.escape(str(task.id))} for {html.escape(warehouse)}</p>"
    elif path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"ok {os.getpid()}".encode()]
    else:
        body = (
            "<h1>Example shop</h1><ul>"
            '<li><a href="/checkout?coupon=HALF">checkout with a good coupon</a></li>'
            '<li><a href="/checkout?coupon=BOGUS">checkout with a bad coupon (an error)</a></li>'
            '<li><a href="/ship?warehouse=east">ship from a missing warehouse (a task error in '
            "the Celery worker)</a></li>"
            "</ul>"
        )
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [f"<!doctype html><title>example shop</title>{body}".encode()]


app = DebuggedApplication(shop, app_name="example-shop")
