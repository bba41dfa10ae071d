"""A Flask app to step through from the dashboard: ``/checkout`` pauses at ``breakpoint()``
(run it with ``PYTHONBREAKPOINT=debugbroker.set_trace``), then prices a basket through a
helper. ``STEPPING_EVALEX=0`` starts it with ``evalex=False``: steps are refused."""

from __future__ import annotations

import os

from flask import Flask

from debugbroker import DebuggedApplication

flask_app = Flask("stepping")
flask_app.config["PROPAGATE_EXCEPTIONS"] = True


def with_tax(amount: int) -> int:
    tax = amount // 10
    return amount + tax


@flask_app.route("/")
def index() -> str:
    return str(os.getpid())


@flask_app.route("/checkout")
def checkout() -> str:
    basket = {"apple": 3, "pear": 4}
    breakpoint()  # the thread pauses here; the tests step from it
    count = len(basket)
    subtotal = sum(basket.values()) * 10
    total = with_tax(subtotal)
    summary = f"{count} items, total {total}"
    return summary


app = DebuggedApplication(
    flask_app, app_name="stepping-flask", evalex=os.environ.get("STEPPING_EVALEX", "1") == "1"
)
