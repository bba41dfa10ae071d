"""A Flask app that answers its own 500s (no propagation, no middleware): ``install_flask``."""

from __future__ import annotations

import os

from flask import Flask, request

import debugbroker

ORDERS = {1: [3, 4, 5], 2: []}

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = False
debugbroker.install_flask(app)


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
