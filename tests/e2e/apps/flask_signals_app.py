"""A Flask app that answers its own 500s (no propagation, no middleware): ``install_flask``.

It also reports logged errors (``install_logging``): ``/logged/<id>`` logs a missing order and
re-raises, and Flask logs the error again once it sent ``got_request_exception``.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, request

import debugbroker

ORDERS = {1: [3, 4, 5], 2: []}

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = False
debugbroker.install_flask(app)
debugbroker.install_logging()
log = logging.getLogger("shop.orders")


def average(items: list[int]) -> float:
    return sum(items) / len(items)


@app.route("/")
def index() -> str:
    return str(os.getpid())


@app.route("/orders/<int:order_id>")
def order(order_id: int) -> str:
    customer = request.args.get("customer", "ada")
    items = ORDERS[order_id]
    return f"{customer}: {average(items)}"


@app.route("/logged/<int:order_id>")
def logged(order_id: int) -> str:
    try:
        items = ORDERS[order_id]
    except KeyError:
        log.exception("order %s is missing", order_id)
        raise
    return str(items)
