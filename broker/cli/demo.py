"""``debugbroker demo``: a broker, a small WSGI app with the agent, and a first error.

The app runs in a thread of this process with the standard library's threaded WSGI server,
exactly as a user's app would: wrapped in ``DebuggedApplication`` and talking to the broker
over zmq. Once the broker is up, the demo requests a failing page so the dashboard has a
report to open, and prints where to look.
"""

from __future__ import annotations

import asyncio
import html
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from debugbroker.agent import DebuggedApplication, Options
from debugbroker.broker.app import BrokerConfig

__all__ = ["demo_app", "run_demo"]

_PRICES = {"apple": 0.5, "pear": 0.75, "fig": 1.2}


def order_total(cart: dict[str, int], coupon: str | None) -> float:
    """Sum the cart; an unknown coupon divides by zero (the demo's bug)."""
    subtotal = sum(_PRICES[item] * count for item, count in cart.items())
    discounts = {"HALF": 2, "NONE": 1}
    divisor = discounts.get(coupon or "NONE", 0)
    return round(subtotal / divisor, 2)


def checkout(query: str) -> str:
    """The order page: reads the coupon from the query string."""
    cart = {"apple": 3, "pear": 2, "fig": 1}
    coupon = query.partition("coupon=")[2] or None
    try:
        total = order_total(cart, coupon)
    except ZeroDivisionError as error:
        raise ValueError(f"cannot price the order with coupon {coupon!r}") from error
    return f"Total: {total}"


def demo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A tiny shop: ``/`` links to pages, ``/checkout?coupon=X`` fails for unknown coupons."""
    path = environ.get("PATH_INFO", "/")
    if path == "/checkout":
        body = checkout(environ.get("QUERY_STRING", ""))
    else:
        body = (
            "<h1>debugbroker demo shop</h1><ul>"
            '<li><a href="/checkout?coupon=HALF">checkout with a good coupon</a></li>'
            '<li><a href="/checkout?coupon=BOGUS">checkout with a bad coupon (an error)</a></li>'
            "</ul>"
        )
    page = f"<!doctype html><title>demo</title>{body if path == '/' else html.escape(body)}"
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [page.encode()]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def _start_app(config: BrokerConfig, address: tuple[str, int]) -> tuple[Any, Options]:
    options = Options.from_environment(
        broker_url=config.zmq_endpoint.replace("0.0.0.0", "127.0.0.1").replace("*", "127.0.0.1"),
        secret=config.secret,
        dashboard_url=config.dashboard_url,
        app_name="demo-shop",
        insecure_plaintext=config.insecure_plaintext,
    )
    app = DebuggedApplication(demo_app, options=options)
    server = make_server(
        address[0], address[1], app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="demo-app", daemon=True).start()
    return server, options


def _first_error(app_url: str) -> str | None:
    request = urllib.request.Request(f"{app_url}/checkout?coupon=BOGUS")
    request.add_header("Accept", "application/json")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error.headers.get("X-Debugbroker-Report")
    except OSError:
        return None
    return None


def run_demo(config: BrokerConfig, show_token: bool, app_address: tuple[str, int]) -> None:
    """Run the broker and the demo app until interrupted."""
    from debugbroker.broker.cli.main import start_serving

    async def main() -> None:
        broker = await start_serving(config, show_token)
        if broker is None:
            return
        server, options = _start_app(config, app_address)
        app_url = f"http://{app_address[0]}:{server.server_port}"
        from debugbroker.agent.process import get_transport

        connected = await asyncio.to_thread(get_transport(options).wait_connected, 10.0)
        report_url = await asyncio.to_thread(_first_error, app_url)
        print(
            f"demo app:  {app_url}/  (the agent is {'connected' if connected else 'NOT connected'})"
        )
        if report_url:
            print(f"first error: {report_url}")
        print("Press Ctrl+C to stop.", flush=True)
        try:
            await broker
        finally:
            server.shutdown()

    asyncio.run(main())
