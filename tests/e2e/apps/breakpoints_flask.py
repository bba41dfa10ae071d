"""A Flask app for breakpoints set from the dashboard: ``/price?n=N`` prices an order in a
view and a helper; nothing in it calls ``breakpoint()``. The console starts the agent as each
worker imports it, so every worker is listed before its first request."""

from __future__ import annotations

import os

from flask import Flask, request

from debugbroker import DebuggedApplication

flask_app = Flask(__name__)
# Let errors reach the middleware instead of Flask's own 500 page (debug mode does the same).
flask_app.config["PROPAGATE_EXCEPTIONS"] = True


def with_discount(amount: int) -> int:
    discount = amount // 10
    return amount - discount


@flask_app.route("/price")
def price() -> str:
    count = int(request.args.get("n", "1"))
    subtotal = count * 100
    total = with_discount(subtotal)
    return f"{count} items: {total} (pid {os.getpid()})"


@flask_app.route("/boom")
def boom() -> str:
    return str(with_discount(None))  # type: ignore[arg-type]  # a TypeError in the helper


@flask_app.route("/")
def index() -> str:
    return "ok"


# BREAKPOINTS_EVALEX=0 starts it with evalex=False: every breakpoint is refused.
app = DebuggedApplication(
    flask_app,
    app_name="breakpoints-e2e",
    evalex=os.environ.get("BREAKPOINTS_EVALEX", "1") == "1",
    console=True,
)
