"""A real Flask app with the agent on ``app.wsgi_app``, as docs/frameworks.md shows."""

from __future__ import annotations

import os

from flask import Flask, request

from debugbroker import DebuggedApplication

ORDERS = {1: [3, 4, 5], 2: []}

app = Flask(__name__)
# Let errors reach the middleware instead of Flask's own 500 page (debug mode does the same).
app.config["PROPAGATE_EXCEPTIONS"] = True


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


app.wsgi_app = DebuggedApplication(app.wsgi_app, app_name="flask-test")  # type: ignore[method-assign]
